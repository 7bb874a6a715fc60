# The Cloud Run path: workers as a worker pool (the resource for pull-based consumers) scaled on
# the request backlog by CREMA, the aggregator as a worker pool of one instance, and the enqueue,
# replay and refresh commands as Cloud Run jobs. Every role runs as its own service account.

locals {
  cloud_run = var.enable_cloud_run ? 1 : 0

  # The settings of every role (MMM_BACKFILL_*, mmm_backfill/config.py), as in k8s/base/configmap.yaml.
  app_env = {
    MMM_BACKFILL_PROJECT                  = var.project_id
    MMM_BACKFILL_BUCKET                   = var.bucket
    MMM_BACKFILL_REQUEST_TOPIC            = local.topics.requests
    MMM_BACKFILL_REQUEST_SUBSCRIPTION     = local.subscriptions.workers.name
    MMM_BACKFILL_DEAD_LETTER_TOPIC        = local.topics.dead_letter
    MMM_BACKFILL_DEAD_LETTER_SUBSCRIPTION = local.subscriptions.dead_letter_replay.name
    MMM_BACKFILL_EVENT_TOPIC              = local.topics.events
    MMM_BACKFILL_EVENT_SUBSCRIPTION       = local.subscriptions.aggregator.name
    MMM_BACKFILL_ACK_DEADLINE_SECONDS     = tostring(local.subscriptions.workers.ack_deadline_seconds)
    MMM_BACKFILL_LOG_FORMAT               = "json"
  }

  # The Cloud Run jobs: name => (the command line, whether it exists, the task's timeout, retries).
  # Execute one with `gcloud run jobs execute NAME --wait --args=...` to change its options
  # (docs/deploy.md). enqueue and refresh follow their backfill to a verdict (`--wait`) and give up
  # (exit 4, naming what is pending) 15 minutes before Cloud Run would stop the task, so their report
  # always reaches the log. They are not retried: a verdict would only come again, and a deploy step
  # that failed is run again by its pipeline.
  jobs = {
    enqueue = {
      args        = ["enqueue", "--wait", "--timeout", "5h45m", "--json"]
      enabled     = true
      timeout     = "21600s"
      max_retries = 0
    }
    replay = { args = ["replay", "--json"], enabled = true, timeout = "3600s", max_retries = 1 }
    refresh = {
      args        = ["enqueue", "--refresh", "--wait", "--timeout", "5h45m", "--json"]
      enabled     = var.enable_refresh
      timeout     = "21600s"
      max_retries = 0
    }
  }
}

resource "google_cloud_run_v2_worker_pool" "worker" {
  count               = local.cloud_run
  name                = "mmm-backfill-worker"
  location            = var.region
  deletion_protection = false

  # CREMA owns the instance count (0 while the backlog is empty), like KEDA owns replicas on GKE.
  scaling {
    scaling_mode          = "MANUAL"
    manual_instance_count = 0
  }
  lifecycle {
    ignore_changes = [scaling[0].manual_instance_count]
  }

  template {
    service_account = google_service_account.role["worker"].email
    containers {
      image = var.image
      args  = ["worker", "--processes", "1"]
      # One OutputCollect.RDS unserialized in R fits in 2 GiB; the limit leaves room for the largest.
      # Cloud Run's /tmp is memory too: the largest run's files (1 GiB) + R (2.3 GiB) + the run fetched
      # ahead (at most MMM_BACKFILL_PREFETCH_MAX_BYTES, 256 MiB) stay under 4 GiB.
      resources {
        limits = { cpu = "1", memory = "4Gi" }
      }
      dynamic "env" {
        for_each = local.app_env
        content {
          name  = env.key
          value = env.value
        }
      }
    }
  }
}

resource "google_cloud_run_v2_worker_pool" "aggregator" {
  count               = local.cloud_run
  name                = "mmm-backfill-aggregator"
  location            = var.region
  deletion_protection = false

  # Exactly one: the aggregator's compare-and-swap writes are safe with more, but one suffices.
  scaling {
    scaling_mode          = "MANUAL"
    manual_instance_count = 1
  }

  template {
    service_account = google_service_account.role["aggregator"].email
    containers {
      image = var.image
      args  = ["aggregator"]
      resources {
        limits = { cpu = "1", memory = "1Gi" }
      }
      dynamic "env" {
        for_each = local.app_env
        content {
          name  = env.key
          value = env.value
        }
      }
    }
  }
}

resource "google_cloud_run_v2_job" "this" {
  for_each            = { for name, job in local.jobs : name => job if job.enabled && var.enable_cloud_run }
  name                = "mmm-backfill-${each.key}"
  location            = var.region
  deletion_protection = false

  template {
    task_count = 1
    template {
      service_account = google_service_account.role["jobs"].email
      max_retries     = each.value.max_retries
      timeout         = each.value.timeout
      containers {
        image = var.image
        args  = each.value.args
        resources {
          limits = { cpu = "1", memory = "512Mi" }
        }
        dynamic "env" {
          for_each = local.app_env
          content {
            name  = env.key
            value = env.value
          }
        }
      }
    }
  }
}
