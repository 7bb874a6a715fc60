"""Prometheus metrics of every role, defined once (served by ``health.py`` on ``/metrics``)."""

from __future__ import annotations

from prometheus_client import Counter, Gauge, Histogram

#: Requests handled by workers, by outcome: created, already_existed, dead_lettered, retried (nacked).
MESSAGES = Counter("mmm_backfill_messages_total", "Summary requests handled, by outcome", ["outcome"])
#: Wall time of one run, from message received to ack, in seconds.
RUN_SECONDS = Histogram(
    "mmm_backfill_run_seconds",
    "Seconds spent on one run",
    buckets=(0.1, 0.25, 0.5, 1, 2, 5, 10, 20, 40, 80, 160, 320, 640),
)
RDS_BYTES = Counter("mmm_backfill_rds_bytes_read_total", "Bytes of RDS files downloaded and read")
IN_FLIGHT = Gauge("mmm_backfill_runs_in_flight", "Runs currently being summarised")
DEAD_LETTERS = Counter("mmm_backfill_dead_letters_total", "Requests published to the dead-letter topic", ["reason"])
TRANSIENT_RETRIES = Counter("mmm_backfill_transient_failures_total", "Runs nacked after transient errors")
ENQUEUED = Counter("mmm_backfill_enqueued_total", "Summary requests published by the producer")
REBUILDS = Counter("mmm_backfill_aggregator_rebuilds_total", "Country files rebuilt", ["result"])
SUMMARIES_FETCHED = Counter("mmm_backfill_aggregator_summaries_fetched_total", "Run summaries downloaded")
EVENTS = Counter("mmm_backfill_aggregator_events_total", "Completion events consumed", ["result"])
