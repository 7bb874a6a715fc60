# The GKE path (k8s/): each Kubernetes service account acts as the Google service account of its
# role through Workload Identity, and KEDA's operator reads the backlog from Cloud Monitoring.
# Set gke_namespace = null for Cloud Run only.

locals {
  gke = var.gke_namespace == null ? {} : local.service_accounts
}

resource "google_service_account_iam_member" "workload_identity" {
  for_each           = local.gke
  service_account_id = google_service_account.role[each.key].name
  role               = "roles/iam.workloadIdentityUser"
  member             = "serviceAccount:${var.project_id}.svc.id.goog[${var.gke_namespace}/${each.value}]"
}

resource "google_service_account" "keda" {
  count        = var.gke_namespace == null ? 0 : 1
  account_id   = "keda-operator"
  display_name = "KEDA operator (reads the request backlog)"
}

# Cloud Monitoring has no narrower resource than the project for reading a metric.
resource "google_project_iam_member" "keda_reads_metrics" {
  count   = var.gke_namespace == null ? 0 : 1
  project = var.project_id
  role    = "roles/monitoring.viewer"
  member  = google_service_account.keda[0].member
}

resource "google_service_account_iam_member" "keda_workload_identity" {
  count              = var.gke_namespace == null ? 0 : 1
  service_account_id = google_service_account.keda[0].name
  role               = "roles/iam.workloadIdentityUser"
  member             = "serviceAccount:${var.project_id}.svc.id.goog[keda/keda-operator]"
}
