# The topics and subscriptions `mmm-backfill setup` creates (mmm_backfill/topology.py), with the same
# names and delivery settings as mmm_backfill/config.py Settings: tests/deploy/test_terraform.py
# holds these locals equal to what setup asks for. Apply this or run setup, not both on one project.

locals {
  topics = {
    requests    = "summary-requests"
    dead_letter = "summary-requests-dead"
    events      = "summary-events"
  }

  # The workers' and the aggregator's subscriptions are redelivered with backoff 10-600 s after a
  # nack; only the workers' one dead-letters (after 5 deliveries). Its ack deadline is the workers'
  # lease: they renew it every 30 s while a run is in work, so a request a dead worker held (or was
  # being handed) is back within a minute. The replay subscription has no retry policy: with one,
  # every dead letter that `replay --dry-run` hands back would stay hidden from the next replay for
  # up to 10 minutes. It keeps a dead letter 31 days, the longest Pub/Sub allows (others: 7 days).
  subscriptions = {
    workers = {
      name                       = "summary-requests-workers"
      topic                      = "requests"
      ack_deadline_seconds       = 60
      max_delivery_attempts      = 5
      retry_backoff              = true
      message_retention_duration = null
    }
    dead_letter_replay = {
      name                       = "summary-requests-dead-replay"
      topic                      = "dead_letter"
      ack_deadline_seconds       = 60
      max_delivery_attempts      = null
      retry_backoff              = false
      message_retention_duration = "2678400s"
    }
    aggregator = {
      name                       = "summary-events-aggregator"
      topic                      = "events"
      ack_deadline_seconds       = 60
      max_delivery_attempts      = null
      retry_backoff              = true
      message_retention_duration = null
    }
  }
  retry_minimum_backoff = "10s"
  retry_maximum_backoff = "600s"
}

resource "google_pubsub_topic" "this" {
  # checkov:skip=CKV_GCP_83: messages hold run paths and outcomes only (no data of the runs); Google-managed encryption suffices.
  for_each = local.topics
  name     = each.value
}

resource "google_pubsub_subscription" "this" {
  for_each                   = local.subscriptions
  name                       = each.value.name
  topic                      = google_pubsub_topic.this[each.value.topic].id
  ack_deadline_seconds       = each.value.ack_deadline_seconds
  message_retention_duration = each.value.message_retention_duration

  dynamic "retry_policy" {
    for_each = each.value.retry_backoff ? [1] : []
    content {
      minimum_backoff = local.retry_minimum_backoff
      maximum_backoff = local.retry_maximum_backoff
    }
  }

  dynamic "dead_letter_policy" {
    for_each = each.value.max_delivery_attempts == null ? [] : [each.value.max_delivery_attempts]
    content {
      dead_letter_topic     = google_pubsub_topic.this["dead_letter"].id
      max_delivery_attempts = dead_letter_policy.value
    }
  }

  # A backfill may sit idle for weeks between revisions; the subscriptions must not expire.
  expiration_policy {
    ttl = ""
  }
}

# Pub/Sub itself moves a request that failed max_delivery_attempts deliveries to the dead-letter
# topic: its service agent publishes there and acknowledges on the workers' subscription.
resource "google_pubsub_topic_iam_member" "dead_letter_agent" {
  topic  = google_pubsub_topic.this["dead_letter"].name
  role   = "roles/pubsub.publisher"
  member = local.pubsub_agent
}

resource "google_pubsub_subscription_iam_member" "dead_letter_agent" {
  subscription = google_pubsub_subscription.this["workers"].name
  role         = "roles/pubsub.subscriber"
  member       = local.pubsub_agent
}

data "google_project" "this" {}

locals {
  pubsub_agent = "serviceAccount:service-${data.google_project.this.number}@gcp-sa-pubsub.iam.gserviceaccount.com"
}
