"""``mmm-backfill setup``: create topics, subscriptions (and the emulator's bucket) idempotently."""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass

from mmm_backfill.bus import Bus
from mmm_backfill.config import Settings
from mmm_backfill.stopping import StopRequest
from mmm_backfill.storage import Storage


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


def setup_topology(
    settings: Settings, bus: Bus, storage: Storage | None = None, stop: StopRequest | None = None
) -> list[Resource]:
    """Ensure every topic and subscription exists; create the bucket only on the storage emulator.

    Existing resources keep their policies, but for one: the replay subscription must have no retry
    policy, because replay hands back what it does not republish and must see it again at once
    (with a backoff, each hand-back hid a dead letter from the next replay for 10 s and more).
    A ``stop`` request ends setup between two resources; the list says what was done.
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
    steps.append(
        lambda: Resource(
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
    steps.append(lambda: _replay_subscription(s, bus))
    steps.append(
        lambda: Resource(
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
        steps.append(lambda: Resource("bucket", storage.bucket_name, storage.ensure_bucket()))
    return steps


def _replay_subscription(s: Settings, bus: Bus) -> Resource:
    name = s.dead_letter_subscription
    created = bus.ensure_subscription(name, s.dead_letter_topic, ack_deadline_seconds=60, retry_backoff=False)
    return Resource("subscription", name, created, updated=not created and bus.drop_retry_policy(name))
