output "service_accounts" {
  description = "Email of each role's service account (the k8s overlay's iam.gke.io/gcp-service-account)."
  value       = { for role, account in google_service_account.role : role => account.email }
}

output "worker_pools" {
  description = "Cloud Run worker pools (empty without enable_cloud_run)."
  value       = concat(google_cloud_run_v2_worker_pool.worker[*].name, google_cloud_run_v2_worker_pool.aggregator[*].name)
}

output "jobs" {
  description = "Cloud Run jobs: run one with `gcloud run jobs execute NAME --region REGION --args=...`."
  value       = [for job in google_cloud_run_v2_job.this : job.name]
}
