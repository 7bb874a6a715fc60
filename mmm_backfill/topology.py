"""``mmm-backfill setup``: create topics, subscriptions (and the emulator's bucket) idempotently."""

from __future__ import annotations

import os
from dataclasses import dataclass

from mmm_backfill.bus import Bus
from mmm_backfill.config import Settings
from mmm_backfill.storage import Storage


@dataclass(frozen=True)
class Resource:
    kind: str
    name: str
    created: bool


@dataclass(frozen=True)
class SetupReport:
    resources: list[Resource]

    def to_dict(self) -> dict:
        return {"resources": [vars(r) for r in self.resources]}

    def tables(self) -> list:
        rows = [[r.kind, r.name, "created" if r.created else "exists"] for r in self.resources]
        return [("setup", ["kind", "name", "state"], rows)]


def setup_topology(settings: Settings, bus: Bus, storage: Storage | None = None) -> list[Resource]:
    """Ensure every topic and subscription exists; create the bucket only on the storage emulator.

    Existing resources are left as they are (their policies are not rewritten).
    """
    s = settings
    done = [Resource("topic", t, bus.ensure_topic(t)) for t in (s.request_topic, s.dead_letter_topic, s.event_topic)]
    done.append(
        Resource(
            "subscription",
            s.request_subscription,
            bus.ensure_subscription(
                s.request_subscription,
                s.request_topic,
                ack_deadline_seconds=s.ack_deadline_seconds,
                dead_letter_topic=s.dead_letter_topic,
                max_delivery_attempts=s.max_delivery_attempts,
                min_backoff_seconds=s.retry_min_backoff_seconds,
                max_backoff_seconds=s.retry_max_backoff_seconds,
            ),
        )
    )
    done.append(
        Resource(
            "subscription",
            s.dead_letter_subscription,
            bus.ensure_subscription(s.dead_letter_subscription, s.dead_letter_topic, ack_deadline_seconds=60),
        )
    )
    done.append(
        Resource(
            "subscription",
            s.event_subscription,
            bus.ensure_subscription(
                s.event_subscription,
                s.event_topic,
                ack_deadline_seconds=60,
                min_backoff_seconds=s.retry_min_backoff_seconds,
                max_backoff_seconds=s.retry_max_backoff_seconds,
            ),
        )
    )
    if storage is not None and os.environ.get("STORAGE_EMULATOR_HOST"):
        done.append(Resource("bucket", storage.bucket_name, storage.ensure_bucket()))
    return done
