"""``mmm-backfill setup``: create topics, subscriptions (and the emulator's bucket) idempotently."""

from __future__ import annotations

import logging
import os
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from mmm_backfill.bus import Bus
from mmm_backfill.config import Settings
from mmm_backfill.errors import EmulatorRefused
from mmm_backfill.lifetimes import MAX_RETENTION_SECONDS, Lifetimes, stale_fields
from mmm_backfill.stopping import StopRequest
from mmm_backfill.storage import Storage

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Resource:
    kind: str
    name: str
    created: bool
    updated: bool = False

    @property
    def state(self) -> str:
        return "created" if self.created else "updated" if self.updated else "exists"


@dataclass(frozen=True)
class SetupReport:
    resources: list[Resource]
    interrupted_by: str | None = None

    def to_dict(self) -> dict:
        return {"resources": [vars(r) for r in self.resources], "interrupted_by": self.interrupted_by}

    def tables(self) -> list:
        rows = [[r.kind, r.name, r.state] for r in self.resources]
        title = "setup" + (f" (interrupted by {self.interrupted_by})" if self.interrupted_by else "")
        return [(title, ["kind", "name", "state"], rows)]


#: How long the replay subscription keeps a dead letter: the longest Pub/Sub allows (31 days, against
#: a default of 7), as ``replay`` may come weeks after a failure. After that Pub/Sub drops the letter
#: and its run shows as ``missing`` in ``status``, so the next ``enqueue`` requests it again.
DEAD_LETTER_RETENTION_SECONDS = MAX_RETENTION_SECONDS
#: Ack deadline of the replay and aggregator subscriptions: their consumers ack within seconds.
SHORT_ACK_DEADLINE_SECONDS = 60


def setup_topology(
    settings: Settings, bus: Bus, storage: Storage | None = None, stop: StopRequest | None = None
) -> list[Resource]:
    """Ensure every topic and subscription exists; create the bucket only on the storage emulator.

    Subscriptions never expire (a backfill may sit idle for weeks). Those an older setup made are
    brought up to date in place, their messages kept: no expiry, the ack deadline of these settings,
    the dead letters' retention, and no retry policy on the replay subscription, because replay hands
    back what it does not republish and must see it again at once (with a backoff, each hand-back hid
    a dead letter from the next replay for 10 s and more). Other policies stay as they were made.
    What the Pub/Sub emulator cannot change (an expiry, a retention over 7 days) is logged, one line
    each, and setup goes on. A ``stop`` request ends setup between two resources; the list says what
    was done.
    """
    done: list[Resource] = []
    for step in _steps(settings, bus, storage):
        if stop is not None and stop.requested:
            break
        done.append(step())
    return done


def _steps(settings: Settings, bus: Bus, storage: Storage | None) -> list[Callable[[], Resource]]:
    s = settings
    steps: list[Callable[[], Resource]] = [
        lambda t=t: Resource("topic", t, bus.ensure_topic(t))
        for t in (s.request_topic, s.dead_letter_topic, s.event_topic)
    ]
    backoff = {"min_backoff_seconds": s.retry_min_backoff_seconds, "max_backoff_seconds": s.retry_max_backoff_seconds}
    steps.append(
        lambda: _subscription(
            bus,
            s.request_subscription,
            s.request_topic,
            Lifetimes(s.ack_deadline_seconds),
            dead_letter_topic=s.dead_letter_topic,
            max_delivery_attempts=s.max_delivery_attempts,
            **backoff,
        )
    )
    steps.append(
        lambda: _subscription(
            bus,
            s.dead_letter_subscription,
            s.dead_letter_topic,
            Lifetimes(SHORT_ACK_DEADLINE_SECONDS, DEAD_LETTER_RETENTION_SECONDS, retry_backoff=False),
        )
    )
    steps.append(
        lambda: _subscription(
            bus, s.event_subscription, s.event_topic, Lifetimes(SHORT_ACK_DEADLINE_SECONDS), **backoff
        )
    )
    if storage is not None and os.environ.get("STORAGE_EMULATOR_HOST"):
        steps.append(lambda: Resource("bucket", storage.bucket_name, storage.ensure_bucket()))
    return steps


def _subscription(bus: Bus, name: str, topic: str, wanted: Lifetimes, **policies: Any) -> Resource:
    created = bus.ensure_subscription(
        name,
        topic,
        ack_deadline_seconds=wanted.ack_deadline_seconds,
        retry_backoff=wanted.retry_backoff,
        retention_seconds=wanted.retention_seconds or None,
        **policies,
    )
    return Resource("subscription", name, created, updated=not created and _bring_up_to_date(bus, name, wanted))


def _bring_up_to_date(bus: Bus, name: str, wanted: Lifetimes) -> bool:
    """Change in place what an older setup made otherwise; True when anything changed."""
    changed = False
    for field in stale_fields(bus.lifetimes(name), wanted):
        try:
            bus.set_lifetime(name, field, wanted)
            changed = True
        except EmulatorRefused as exc:
            log.warning("%s keeps its %s: the Pub/Sub emulator cannot change it (%s)", name, field, exc)
    return changed
