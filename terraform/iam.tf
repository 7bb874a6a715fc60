# One service account per role, each with only the grants that role uses (docs/deploy.md, the
# per-role table). Every grant is on one topic, one subscription or a prefix of the bucket.
# The same names are used by k8s/ (one Kubernetes service account each) and docker-compose.yml.

locals {
  service_accounts = {
    worker     = "mmm-backfill-worker"
    aggregator = "mmm-backfill-aggregator"
    jobs       = "mmm-backfill-jobs" # enqueue, replay, refresh
  }

  # "account/what" => the topic it publishes to.
  topic_publishers = {
    "worker/events"      = { account = "worker", topic = "events" }
    "worker/dead_letter" = { account = "worker", topic = "dead_letter" }
    "jobs/requests"      = { account = "jobs", topic = "requests" }
  }

  # "account/what" => a topic it looks at: `enqueue` checks, before publishing, that the workers'
  # subscription is attached (and, with --wait, the aggregator's and the dead-letter topic).
  topic_viewers = {
    "jobs/requests"    = { account = "jobs", topic = "requests" }
    "jobs/events"      = { account = "jobs", topic = "events" }
    "jobs/dead_letter" = { account = "jobs", topic = "dead_letter" }
  }

  # "account/what" => a topic it attaches subscriptions of its own to (`enqueue --wait` follows
  # completion events and dead letters of its backfill that way; roles/pubsub.subscriber on a topic
  # grants only pubsub.topics.attachSubscription).
  topic_attachers = {
    "jobs/events"      = { account = "jobs", topic = "events" }
    "jobs/dead_letter" = { account = "jobs", topic = "dead_letter" }
  }

  # "account/what" => the subscription it pulls from.
  subscription_subscribers = {
    "worker/workers"          = { account = "worker", subscription = "workers" }
    "aggregator/aggregator"   = { account = "aggregator", subscription = "aggregator" }
    "jobs/dead_letter_replay" = { account = "jobs", subscription = "dead_letter_replay" }
  }

  # "account/what" => a predefined storage role on the bucket, limited by a condition below.
  bucket_grants = {
    "worker/read_runs"         = { account = "worker", role = "roles/storage.objectViewer", condition = "read_runs" }
    "worker/create_summaries"  = { account = "worker", role = "roles/storage.objectCreator", condition = "create_summaries" }
    "aggregator/read_runs"     = { account = "aggregator", role = "roles/storage.objectViewer", condition = "read_runs" }
    "aggregator/country_files" = { account = "aggregator", role = "roles/storage.objectUser", condition = "country_files" }
    "jobs/read_runs"           = { account = "jobs", role = "roles/storage.objectViewer", condition = "read_runs" }
    "jobs/country_files"       = { account = "jobs", role = "roles/storage.objectViewer", condition = "country_files" }
  }

  objects = "projects/_/buckets/${var.bucket}/objects"
  # Listing is checked against the bucket, so a condition also admits listings whose prefix lies
  # inside the allowed one (the code always lists with such a prefix).
  bucket_conditions = {
    read_runs = {
      title       = "mmm-backfill-read-runs"
      description = "Read and list Robyn runs under robyn/"
      expression  = "resource.name.startsWith(\"${local.objects}/robyn/\") || api.getAttribute(\"storage.googleapis.com/objectListPrefix\", \"\").startsWith(\"robyn/\")"
    }
    create_summaries = {
      title       = "mmm-backfill-create-run-summaries"
      description = "Create robyn/REV/COUNTRY/TS/model_summary.json, never anything else"
      expression  = "resource.name.startsWith(\"${local.objects}/robyn/\") && resource.name.endsWith(\"/model_summary.json\")"
    }
    replace_summaries = {
      title       = "mmm-backfill-replace-run-summaries"
      description = "Replace robyn/REV/COUNTRY/TS/model_summary.json and model_summary.previous.json only"
      expression  = "resource.name.startsWith(\"${local.objects}/robyn/\") && (resource.name.endsWith(\"/model_summary.json\") || resource.name.endsWith(\"/model_summary.previous.json\"))"
    }
    country_files = {
      title       = "mmm-backfill-country-files"
      description = "Read, list and rewrite model_summary/COUNTRY/summary.json"
      expression  = "resource.name.startsWith(\"${local.objects}/model_summary/\") || api.getAttribute(\"storage.googleapis.com/objectListPrefix\", \"\").startsWith(\"model_summary/\")"
    }
  }
}

resource "google_service_account" "role" {
  for_each     = local.service_accounts
  account_id   = each.value
  display_name = "mmm-backfill ${each.key}"
}

resource "google_pubsub_topic_iam_member" "publisher" {
  for_each = local.topic_publishers
  topic    = google_pubsub_topic.this[each.value.topic].name
  role     = "roles/pubsub.publisher"
  member   = google_service_account.role[each.value.account].member
}

resource "google_pubsub_topic_iam_member" "viewer" {
  for_each = local.topic_viewers
  topic    = google_pubsub_topic.this[each.value.topic].name
  role     = "roles/pubsub.viewer"
  member   = google_service_account.role[each.value.account].member
}

resource "google_pubsub_topic_iam_member" "attacher" {
  for_each = local.topic_attachers
  topic    = google_pubsub_topic.this[each.value.topic].name
  role     = "roles/pubsub.subscriber"
  member   = google_service_account.role[each.value.account].member
}

# `enqueue --wait` creates two subscriptions of its own (named `<topic>-wait-<backfill id>`, expiring
# after a day idle), pulls them and deletes them when it ends. Creating a subscription is a project
# permission, and Pub/Sub has no IAM conditions to narrow consume and delete to those names, so this
# role is granted on the project: keep mmm-backfill's topics in a project of their own where that is
# too wide (docs/deploy.md, step 4).
resource "google_project_iam_custom_role" "backfill_follower" {
  role_id     = "mmmBackfillFollower"
  title       = "mmm-backfill follower"
  description = "Create, pull and delete the subscriptions `enqueue --wait` follows its backfill on"
  permissions = ["pubsub.subscriptions.consume", "pubsub.subscriptions.create", "pubsub.subscriptions.delete"]
}

resource "google_project_iam_member" "jobs_follow_backfills" {
  project = var.project_id
  role    = google_project_iam_custom_role.backfill_follower.name
  member  = google_service_account.role["jobs"].member
}

resource "google_pubsub_subscription_iam_member" "subscriber" {
  for_each     = local.subscription_subscribers
  subscription = google_pubsub_subscription.this[each.value.subscription].name
  role         = "roles/pubsub.subscriber"
  member       = google_service_account.role[each.value.account].member
}

# IAM conditions on a bucket need uniform bucket-level access (docs/deploy.md).
resource "google_storage_bucket_iam_member" "object" {
  for_each = local.bucket_grants
  bucket   = var.bucket
  role     = each.value.role
  member   = google_service_account.role[each.value.account].member

  condition {
    title       = local.bucket_conditions[each.value.condition].title
    description = local.bucket_conditions[each.value.condition].description
    expression  = local.bucket_conditions[each.value.condition].expression
  }
}

# `enqueue --refresh` asks workers to replace summaries: replacing an object needs
# storage.objects.delete, which objectCreator lacks, and the replaced summary is first copied
# (a rewrite inside Cloud Storage: get on the source, create on the copy, delete when a copy is
# already there) to model_summary.previous.json, which objectCreator's condition does not cover.
# Only then, and only on those two names.
resource "google_project_iam_custom_role" "summary_replacer" {
  count       = var.enable_refresh ? 1 : 0
  role_id     = "mmmBackfillSummaryReplacer"
  title       = "mmm-backfill summary replacer"
  description = "Replace robyn/REV/COUNTRY/TS/model_summary.json and its .previous.json copy (with the bucket condition of its binding)"
  permissions = ["storage.objects.create", "storage.objects.delete"]
}

resource "google_storage_bucket_iam_member" "worker_replaces_summaries" {
  count  = var.enable_refresh ? 1 : 0
  bucket = var.bucket
  role   = google_project_iam_custom_role.summary_replacer[0].name
  member = google_service_account.role["worker"].member

  condition {
    title       = local.bucket_conditions.replace_summaries.title
    description = local.bucket_conditions.replace_summaries.description
    expression  = local.bucket_conditions.replace_summaries.expression
  }
}
