# Cloud Run External Metrics Autoscaling (CREMA) sets the worker pool's instance count from the
# request subscription's backlog. It runs KEDA scalers; this is the prometheus trigger of
# k8s/overlays/prometheus-scaler (same query, threshold and activation) read from Google Cloud
# Managed Service for Prometheus as CREMA's own identity.

locals {
  backlog_query = "sum(pubsub_googleapis_com:subscription_num_undelivered_messages{monitored_resource=\"pubsub_subscription\",project_id=\"${var.project_id}\",subscription_id=\"summary-requests-workers\"})"

  crema_config = {
    apiVersion = "crema/v1"
    kind       = "CremaConfig"
    spec = {
      pollingInterval = 30
      triggerAuthentications = [{
        metadata = { name = "mmm-backfill-gcp" }
        spec     = { podIdentity = { provider = "gcp" } }
      }]
      scaledObjects = [{
        spec = {
          scaleTargetRef  = { name = "projects/${var.project_id}/locations/${var.region}/workerpools/mmm-backfill-worker" }
          minReplicaCount = 0
          maxReplicaCount = var.max_workers
          triggers = [{
            type              = "prometheus"
            authenticationRef = { name = "mmm-backfill-gcp" }
            metadata = {
              serverAddress       = "https://monitoring.googleapis.com/v1/projects/${var.project_id}/location/global/prometheus"
              query               = local.backlog_query
              threshold           = "2"
              activationThreshold = "0"
              ignoreNullValues    = "true"
            }
          }]
          # A run can take minutes: scale down only after the backlog stayed low for 10 minutes.
          advanced = {
            horizontalPodAutoscalerConfig = {
              behavior = { scaleDown = { stabilizationWindowSeconds = 600 } }
            }
          }
        }
      }]
    }
  }
}

resource "google_service_account" "crema" {
  count        = local.cloud_run
  account_id   = "mmm-backfill-crema"
  display_name = "mmm-backfill worker autoscaler (CREMA)"
}

resource "google_parameter_manager_parameter" "crema" {
  count        = local.cloud_run
  parameter_id = "mmm-backfill-crema"
  format       = "YAML"
}

resource "google_parameter_manager_parameter_version" "crema" {
  count = local.cloud_run
  # A new version whenever the configuration changes; CREMA reads the one its service names.
  parameter_version_id = "v-${substr(sha256(yamlencode(local.crema_config)), 0, 12)}"
  parameter            = google_parameter_manager_parameter.crema[0].id
  parameter_data       = yamlencode(local.crema_config)

  # The new version exists before CREMA is pointed at it and the old one goes: a configuration
  # change never leaves CREMA naming a deleted version.
  lifecycle {
    create_before_destroy = true
  }
}

resource "google_cloud_run_v2_service" "crema" {
  count               = local.cloud_run
  name                = "mmm-backfill-crema"
  location            = var.region
  ingress             = "INGRESS_TRAFFIC_INTERNAL_ONLY"
  deletion_protection = false

  template {
    service_account = google_service_account.crema[0].email
    # It polls on its own (pollingInterval): one instance, CPU always allocated.
    scaling {
      min_instance_count = 1
      max_instance_count = 1
    }
    containers {
      image = var.crema_image
      resources {
        cpu_idle = false
        limits   = { cpu = "1", memory = "512Mi" }
      }
      env {
        name  = "CREMA_CONFIG"
        value = google_parameter_manager_parameter_version.crema[0].name
      }
    }
  }
}

# Reading the backlog: Cloud Monitoring has no narrower resource than the project for a metric.
resource "google_project_iam_member" "crema_reads_metrics" {
  count   = local.cloud_run
  project = var.project_id
  role    = "roles/monitoring.viewer"
  member  = google_service_account.crema[0].member
}

resource "google_project_iam_member" "crema_reads_its_config" {
  count   = local.cloud_run
  project = var.project_id
  role    = "roles/parametermanager.parameterViewer"
  member  = google_service_account.crema[0].member
}

# Setting the instance count of the worker pool, and of nothing else.
resource "google_cloud_run_v2_worker_pool_iam_member" "crema_scales_workers" {
  count    = local.cloud_run
  name     = google_cloud_run_v2_worker_pool.worker[0].name
  location = var.region
  role     = "roles/run.developer"
  member   = google_service_account.crema[0].member
}

resource "google_service_account_iam_member" "crema_acts_for_workers" {
  count              = local.cloud_run
  service_account_id = google_service_account.role["worker"].name
  role               = "roles/iam.serviceAccountUser"
  member             = google_service_account.crema[0].member
}
