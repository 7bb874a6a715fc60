"""All settings in one typed place, read from the environment and overridden by CLI flags.

Every field has an environment variable ``MMM_BACKFILL_<FIELD>`` (upper case). The emulator
switches are Google's own variables, ``PUBSUB_EMULATOR_HOST`` and ``STORAGE_EMULATOR_HOST``.
"""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Mapping
from dataclasses import dataclass, fields
from typing import Any

ENV_PREFIX = "MMM_BACKFILL_"


@dataclass(frozen=True)
class RdsLimits:
    """Cost bounds for one RDS file.

    max_file_bytes: refuse files larger than this on disk. Default 512 MiB.
    max_serialized_bytes: refuse when the decompressed stream exceeds this. Default 2 GiB.
    """

    max_file_bytes: int = 512 * 1024 * 1024
    max_serialized_bytes: int = 2 * 1024 * 1024 * 1024


@dataclass(frozen=True)
class Settings:
    """Configuration shared by every role.

    project: Google Cloud project of the topics and subscriptions.
    bucket: bucket holding ``robyn/`` runs and ``model_summary/`` files.
    request_topic / request_subscription: summary requests and the workers' subscription.
    dead_letter_topic / dead_letter_subscription: failed requests and the replay subscription.
    event_topic / event_subscription: completion events and the aggregator's subscription.
    max_delivery_attempts: deliveries before Pub/Sub dead-letters a request (5-100).
    ack_deadline_seconds: initial lease of a request; the client extends it while a run is in work.
    retry_min_backoff_seconds / retry_max_backoff_seconds: Pub/Sub's redelivery backoff after a nack.
    max_rds_bytes / max_rds_serialized_bytes: cost bounds for one RDS file (bytes on disk, decompressed).
    max_replays: replays of one run after which ``replay`` leaves it in the dead letters as exhausted.
    coalesce_seconds: how long the aggregator gathers events for a country before rebuilding it.
    metrics_port: port of ``/healthz``, ``/readyz`` and ``/metrics`` (0 disables the server).
    log_format: ``json`` (one object per line, for Cloud Logging) or ``text``; ``auto`` picks text on a TTY.
    """

    project: str = "mmm-backfill-local"
    bucket: str = "mmm-robyn"
    request_topic: str = "summary-requests"
    request_subscription: str = "summary-requests-workers"
    dead_letter_topic: str = "summary-requests-dead"
    dead_letter_subscription: str = "summary-requests-dead-replay"
    event_topic: str = "summary-events"
    event_subscription: str = "summary-events-aggregator"
    max_delivery_attempts: int = 5
    ack_deadline_seconds: int = 600
    retry_min_backoff_seconds: int = 10
    retry_max_backoff_seconds: int = 600
    max_rds_bytes: int = RdsLimits.max_file_bytes
    max_rds_serialized_bytes: int = RdsLimits.max_serialized_bytes
    max_replays: int = 3
    coalesce_seconds: float = 2.0
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

    @property
    def rds_limits(self) -> RdsLimits:
        return RdsLimits(max_file_bytes=self.max_rds_bytes, max_serialized_bytes=self.max_rds_serialized_bytes)

    @staticmethod
    def env_names() -> list[str]:
        """Every environment variable the settings read (for docs and manifest checks)."""
        return [ENV_PREFIX + f.name.upper() for f in fields(Settings)] + [
            "PUBSUB_EMULATOR_HOST",
            "STORAGE_EMULATOR_HOST",
        ]


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
