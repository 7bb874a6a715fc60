terraform {
  required_version = ">= 1.6"
  required_providers {
    google = {
      source = "hashicorp/google"
      # google_cloud_run_v2_worker_pool and google_parameter_manager_* are in 6.x.
      version = ">= 6.40, < 8"
    }
  }
}

provider "google" {
  project = var.project_id
  region  = var.region
}
