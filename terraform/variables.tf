variable "project_id" {
  description = "Google Cloud project of the topics, subscriptions, service accounts and Cloud Run resources."
  type        = string
}

variable "region" {
  description = "Region of the Cloud Run worker pools, jobs and the CREMA autoscaler."
  type        = string
  default     = "europe-west1"
}

variable "bucket" {
  description = "Existing bucket of Robyn runs (robyn/REV/COUNTRY/TS/), with uniform bucket-level access."
  type        = string
}

variable "image" {
  description = "The mmm-backfill image, e.g. REGION-docker.pkg.dev/PROJECT/mmm/mmm-backfill:0.1.0."
  type        = string
}

variable "enable_cloud_run" {
  description = "Create the Cloud Run path: worker pools, jobs and the CREMA autoscaler."
  type        = bool
  default     = true
}

variable "gke_namespace" {
  description = "Kubernetes namespace of k8s/ for the Workload Identity bindings; null skips them (Cloud Run only)."
  type        = string
  default     = "mmm-backfill"
}

variable "enable_refresh" {
  description = "Allow `enqueue --refresh`: the worker may replace run summaries (custom role, conditioned)."
  type        = bool
  default     = false
}

variable "max_workers" {
  description = "Most worker instances CREMA starts on a backlog (like the KEDA ScaledObject's maxReplicaCount)."
  type        = number
  default     = 20
}

variable "crema_image" {
  description = "Image of Cloud Run External Metrics Autoscaling (CREMA)."
  type        = string
  default     = "us-central1-docker.pkg.dev/cloud-run-oss-images/crema-v1/autoscaler:1.0"
}
