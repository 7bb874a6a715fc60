"""All settings in one typed place, read from the environment and overridden by CLI flags.

Every field has an environment variable ``MMM_BACKFILL_<FIELD>`` (upper case). The emulator
switches are Google's own variables, ``PUBSUB_EMULATOR_HOST`` and ``STORAGE_EMULATOR_HOST``.
The project follows the Google client convention when it is not given (``resolve_project``).
"""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Callable, Mapping
from dataclasses import dataclass, fields
from typing import Any

ENV_PREFIX = "MMM_BACKFILL_"
#: Google's switches to the local emulators; either one means "no real project is needed".
EMULATOR_HOSTS = ("PUBSUB_EMULATOR_HOST", "STORAGE_EMULATOR_HOST")
#: The project used on the emulators when none is given: they accept any name.
EMULATOR_PROJECT = "mmm-backfill-local"


class ProjectNotFound(ValueError):
    """No project was given and none could be found the way Google's clients look for one."""


@dataclass(frozen=True)
class RdsLimits:
    """Cost bounds for one run's files (its RDS files, and the small text files beside them).

    max_file_bytes: refuse files larger than this on disk. Default 512 MiB.
    max_serialized_bytes: refuse when the decompressed stream exceeds this. Default 1 GiB.
    max_depth: deepest nesting of objects; R's reader recurses once per level and a few hundred
        thousand overflow its stack. Default 1,000 (the real Robyn runs reach 129-135).
    max_string_bytes: longest single string. Default 1 MiB (the real runs' longest: 146 bytes).
    max_altrep_length: longest compact sequence, deferred string or wrapper. Default 10 million
        (the real runs hold 6-37 compact integer sequences, each a data frame's row names).
    max_memory_bytes: estimated memory of the R objects the stream describes, ALTREP vectors counted
        expanded. Default 1 GiB (the real runs: 3-36 MiB). With the stream itself (at most
        ``max_serialized_bytes``) a run stays near 2.3 GiB, inside the worker pod's 4 GiB.
    max_models: most rows of ``resultHypParam``. Default 100,000 (the real runs keep 1-31 of 600-1,000).
    max_text_bytes: largest ``best_model_id.txt`` or ``timings.csv``. Default 64 KiB (the real ones: 44-61 bytes).
    """

    max_file_bytes: int = 512 * 1024 * 1024
    max_serialized_bytes: int = 1024 * 1024 * 1024
    max_depth: int = 1_000
    max_string_bytes: int = 1024 * 1024
    max_altrep_length: int = 10_000_000
    max_memory_bytes: int = 1024 * 1024 * 1024
    max_models: int = 100_000
    max_text_bytes: int = 64 * 1024


@dataclass(frozen=True)
class Settings:
    """Configuration shared by every role.

    project: Google Cloud project of the topics and subscriptions; empty until resolved
        (``with_resolved_project``).
    bucket: bucket holding ``robyn/`` runs and ``model_summary/`` files.
    request_topic / request_subscription: summary requests and the workers' subscription.
    dead_letter_topic / dead_letter_subscription: failed requests and the replay subscription.
    event_topic / event_subscription: completion events and the aggregator's subscription.
    max_delivery_attempts: deliveries before Pub/Sub dead-letters a request (5-100).
    ack_deadline_seconds: the workers' subscription's ack deadline (``setup``): how long a pulled
        request stays with its worker unless renewed. Workers renew their lease of it every half
        that time while a run is in work, so it also bounds how long the request of a worker that
        died (or was being handed one) waits to be redelivered. Default 60 s (10-600).
    retry_min_backoff_seconds / retry_max_backoff_seconds: Pub/Sub's redelivery backoff after a nack.
    max_rds_bytes / max_rds_serialized_bytes: cost bounds for one RDS file (bytes on disk, decompressed).
    max_rds_depth / max_rds_string_bytes / max_rds_altrep_length / max_rds_memory_bytes / max_models:
        the stream check's bounds; see RdsLimits for each default and the figures behind it.
    max_run_text_bytes: largest small text file of a run; see RdsLimits.max_text_bytes.
    max_summary_bytes: largest run summary (``model_summary.json``) the aggregator reads; a larger one is
        skipped as ``too_large`` from its listed size, never downloaded. Default 1 MiB: the real runs'
        summaries are 1.1-10.1 KB (the old extractor's) and 1.7-17.6 KB (mmm-backfill's; about 50 KB
        at the 100 candidate models it lists at most); parsing the worst 1 MiB of JSON costs 25 MiB.
    max_country_file_bytes: largest country file the aggregator reads back to compare with a rebuild;
        a larger one is replaced unread (by compare-and-swap, like any other). Default 8 MiB: an
        entry takes at most about 1 KB (typed and bounded fields), so over 8,000 runs a country.
    max_worker_crashes: a run whose handling killed this many worker processes is dead-lettered
        (``worker_crashed``) instead of being tried again. Must stay below max_delivery_attempts.
    max_run_seconds: a run that holds a worker longer is given up (``run_timeout``) and the worker
        process replaced. Default 300 s; a real run takes 0.1-1 s.
    prefetch: requests a worker process holds and fetches ahead of the one in R, 0 or 1. Default 1:
        at cloud latency the next run's files arrive while R reads this one, and the last run's
        summary is written, reported and acked meanwhile (worker/write_behind.py). A request is only
        fetched ahead while the subscription has a backlog, so at the end of a backfill no process
        holds more than one run beyond its own (worker/prefetch.py). 0: one request at a time.
    prefetch_max_bytes: a request whose run files are larger is held ahead but fetched only once it is
        taken, so a pod's temp space (memory, on Cloud Run) holds at most one large run. Default 256 MiB.
    fetch_streams: connections a run's files are fetched over, all at once; 1 fetches them one after
        another. Default 4.
    slice_bytes: an RDS file larger than this is fetched in ``fetch_streams`` ranged slices at once
        (one stream's bandwidth is bounded); 0 never slices. Default 16 MiB.
    max_replays: replays of one run after which ``replay`` leaves it in the dead letters as exhausted.
    coalesce_seconds: how long the aggregator gathers events for a country before rebuilding it.
    wait_timeout_seconds: how long ``enqueue --wait`` may take, from its start, before it gives up
        (exit 4); 0 waits until the backfill is done. ``--timeout`` overrides it.
    wait_progress_seconds: between two progress log lines of ``enqueue --wait`` off a terminal.
    wait_stall_seconds: without any run settling before ``enqueue --wait`` warns and checks the
        bucket listing. Default 5 minutes: workers scaled to zero take a minute or two to start.
    metrics_port: port of ``/healthz``, ``/readyz`` and ``/metrics`` (0 disables the server).
    log_format: ``json`` (one object per line, for Cloud Logging) or ``text``; ``auto`` picks text on a TTY.
    """

    project: str = ""
    bucket: str = "mmm-robyn"
    request_topic: str = "summary-requests"
    request_subscription: str = "summary-requests-workers"
    dead_letter_topic: str = "summary-requests-dead"
    dead_letter_subscription: str = "summary-requests-dead-replay"
    event_topic: str = "summary-events"
    event_subscription: str = "summary-events-aggregator"
    max_delivery_attempts: int = 5
    ack_deadline_seconds: int = 60
    retry_min_backoff_seconds: int = 10
    retry_max_backoff_seconds: int = 600
    max_rds_bytes: int = RdsLimits.max_file_bytes
    max_rds_serialized_bytes: int = RdsLimits.max_serialized_bytes
    max_rds_depth: int = RdsLimits.max_depth
    max_rds_string_bytes: int = RdsLimits.max_string_bytes
    max_rds_altrep_length: int = RdsLimits.max_altrep_length
    max_rds_memory_bytes: int = RdsLimits.max_memory_bytes
    max_models: int = RdsLimits.max_models
    max_run_text_bytes: int = RdsLimits.max_text_bytes
    max_summary_bytes: int = 1024 * 1024
    max_country_file_bytes: int = 8 * 1024 * 1024
    max_worker_crashes: int = 2
    max_run_seconds: float = 300.0
    prefetch: int = 1
    prefetch_max_bytes: int = 256 * 1024 * 1024
    fetch_streams: int = 4
    slice_bytes: int = 16 * 1024 * 1024
    max_replays: int = 3
    coalesce_seconds: float = 2.0
    wait_timeout_seconds: float = 0.0
    wait_progress_seconds: float = 30.0
    wait_stall_seconds: float = 300.0
    metrics_port: int = 0
    log_format: str = "auto"

    @classmethod
    def load(cls, overrides: Mapping[str, Any] | None = None, environ: Mapping[str, str] | None = None) -> Settings:
        """Defaults, then ``MMM_BACKFILL_*`` variables, then ``overrides`` that are not None."""
        env = os.environ if environ is None else environ
        values: dict[str, Any] = {}
        for f in fields(cls):
            raw = env.get(ENV_PREFIX + f.name.upper())
            if raw is not None and raw != "":
                values[f.name] = _convert(f, raw)
        values.update({k: v for k, v in (overrides or {}).items() if v is not None})
        return cls(**values)

    def replace(self, **changes: Any) -> Settings:
        return dataclasses.replace(self, **{k: v for k, v in changes.items() if v is not None})

    def with_resolved_project(
        self, environ: Mapping[str, str] | None = None, adc_project: Callable[[], str | None] | None = None
    ) -> Settings:
        """These settings with ``project`` filled in by ``resolve_project`` when it is empty."""
        if self.project:
            return self
        return self.replace(project=resolve_project(environ, adc_project))

    @property
    def rds_limits(self) -> RdsLimits:
        return RdsLimits(
            max_file_bytes=self.max_rds_bytes,
            max_serialized_bytes=self.max_rds_serialized_bytes,
            max_depth=self.max_rds_depth,
            max_string_bytes=self.max_rds_string_bytes,
            max_altrep_length=self.max_rds_altrep_length,
            max_memory_bytes=self.max_rds_memory_bytes,
            max_models=self.max_models,
            max_text_bytes=self.max_run_text_bytes,
        )

    @staticmethod
    def env_names() -> list[str]:
        """Every environment variable the settings read (for docs and manifest checks)."""
        return [ENV_PREFIX + f.name.upper() for f in fields(Settings)] + [
            *EMULATOR_HOSTS,
            "GOOGLE_CLOUD_PROJECT",
        ]


def resolve_project(
    environ: Mapping[str, str] | None = None, adc_project: Callable[[], str | None] | None = None
) -> str:
    """The project when neither ``--project`` nor ``MMM_BACKFILL_PROJECT`` gave one.

    ``GOOGLE_CLOUD_PROJECT`` first, then the project Application Default Credentials report (the
    order of Google's own clients); on the emulators, ``EMULATOR_PROJECT`` instead of ADC, which
    they do not use (anonymous credentials) and which may be slow to ask off Google Cloud.
    """
    env = os.environ if environ is None else environ
    if env.get("GOOGLE_CLOUD_PROJECT"):
        return env["GOOGLE_CLOUD_PROJECT"]
    if any(env.get(name) for name in EMULATOR_HOSTS):
        return EMULATOR_PROJECT
    project = (adc_project or _adc_project)()
    if project:
        return project
    raise ProjectNotFound(
        "no Google Cloud project: give --project, or set MMM_BACKFILL_PROJECT or GOOGLE_CLOUD_PROJECT, "
        "or use credentials that carry one (gcloud auth application-default login, a service account)"
    )


def _adc_project() -> str | None:
    import google.auth
    from google.auth.exceptions import DefaultCredentialsError

    try:
        _, project = google.auth.default()
    except DefaultCredentialsError:
        return None
    return project


def _convert(f: dataclasses.Field, raw: str) -> Any:
    kind = f.type if isinstance(f.type, str) else f.type.__name__
    try:
        if kind == "int":
            return int(raw)
        if kind == "float":
            return float(raw)
    except ValueError:
        raise ValueError(f"{ENV_PREFIX}{f.name.upper()}={raw!r} is not a valid {kind}") from None
    return raw
