terraform {
  required_version = ">= 1.6"
  required_providers {
    google = {
      source = "hashicorp/google"
      # 7.18 is the floor for the worker pools: before 6.47 manual_instance_count = 0 was dropped
      # from the request (the pool did not start at zero), and before 7.18 a MANUAL pool showed a
      # permanent diff on scaling[0].scaling_mode (provider issue 25580).
      version = ">= 7.18, < 8"
    }
  }
}

provider "google" {
  project = var.project_id
  region  = var.region
}
