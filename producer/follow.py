"""The follower's own subscriptions: completion events and dead letters of one backfill.

Each ``enqueue --wait`` attaches two subscriptions of its own, one to the event topic and one to the
dead-letter topic, before it publishes anything, and deletes them when it ends. Pub/Sub gives every
subscription its own copy of each message, so the follower takes nothing from the aggregator's or
the replay subscription, however it pulls, and two waits on different revisions never see each
other's messages as their own.

Real Pub/Sub applies the filter on ``backfill_id`` and delivers only this backfill's messages; the
emulator stores the filter without applying it, so everything is checked here too (attribute and
body) and whatever is not ours is acked and dropped. A follower killed outright leaves its two
subscriptions behind: they expire after a day without activity (the shortest expiry Pub/Sub allows).
"""

from __future__ import annotations

import contextlib
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass

from mmm_backfill.bus import Bus, Received
from mmm_backfill.config import Settings
from mmm_backfill.errors import BackfillError
from mmm_backfill.messages import (
    BACKFILL_ID_ATTRIBUTE,
    SUMMARY_CREATED_AT_ATTRIBUTE,
    CompletionEvent,
    SummaryRequest,
)
from producer.replay_report import describe

log = logging.getLogger(__name__)

#: Messages asked for per pull (Pub/Sub's maximum).
PULL_BATCH = 1000
#: Ack ids per acknowledge request, well under the API's request size limit.
ACK_CHUNK = 500
#: Longest between two pulls of the dead letters while events keep coming, in seconds.
DEAD_LETTER_PULL_SECONDS = 5.0
#: Expiry of a follower's subscription without activity, in seconds: one day, Pub/Sub's minimum.
FOLLOWER_TTL_SECONDS = 24 * 3600
#: Label on a follower's subscriptions, so an operator can tell (and clean up) what a wait left.
LABELS = {"mmm-backfill": "wait"}


class FollowUnavailable(BackfillError):
    """The wait's own subscriptions could not be made (most often: the follower role is missing)."""

    reason = "follow_unavailable"


@dataclass(frozen=True)
class Completed:
    run_path: str
    outcome: str
    created_at: str | None


@dataclass(frozen=True)
class DeadLettered:
    run_path: str
    reason: str
    message: str


Update = Completed | DeadLettered


class Follower:
    """Context manager: the two subscriptions of backfill ``backfill_id``, made on entry, deleted on exit."""

    def __init__(self, settings: Settings, bus: Bus, backfill_id: str) -> None:
        self.settings, self.bus, self.backfill_id = settings, bus, backfill_id
        self.events = f"{settings.event_topic}-wait-{backfill_id}"
        self.dead_letters = f"{settings.dead_letter_topic}-wait-{backfill_id}"
        self.names = (self.events, self.dead_letters)
        self._dead_letters_pulled = 0.0
        self.foreign = 0  # messages of other backfills (or unreadable) pulled and dropped

    def __enter__(self) -> Follower:
        only_ours = f'attributes.{BACKFILL_ID_ATTRIBUTE} = "{self.backfill_id}"'
        try:
            for name, topic in zip(
                self.names, (self.settings.event_topic, self.settings.dead_letter_topic), strict=True
            ):
                self.bus.create_follower(name, topic, only_ours, FOLLOWER_TTL_SECONDS, LABELS)
        except Exception as exc:
            self.__exit__()
            raise FollowUnavailable(
                f"could not attach the wait's subscriptions ({exc}); nothing was published. Following a backfill "
                "needs pubsub.subscriptions.create, consume and delete (the mmm-backfill follower role, docs/deploy.md)"
            ) from exc
        return self

    def __exit__(self, *exc: object) -> None:
        for name in self.names:
            try:
                self.bus.delete_subscription(name)  # False when it was never made
            except Exception as err:  # noqa: BLE001 - it expires by itself; the verdict stands
                log.warning("could not delete the wait's subscription %s: %s (it expires in a day)", name, err)

    def poll(self, wait_seconds: float) -> list[Update]:
        """This backfill's events and dead letters that arrived since the last poll.

        Each pull waits at most ``wait_seconds`` for the server's answer, which an empty subscription
        gives only near then. While events flow, the dead letters (far fewer) are pulled only every
        DEAD_LETTER_PULL_SECONDS, so their empty pull does not throttle the events.
        """
        updates = self._pull(self.events, self._event, wait_seconds)
        now = time.monotonic()
        if not updates or now - self._dead_letters_pulled >= DEAD_LETTER_PULL_SECONDS:
            self._dead_letters_pulled = now
            updates += self._pull(self.dead_letters, self._dead_letter, wait_seconds)
        return updates

    def _pull(self, subscription: str, read: Callable[[Received], Update | None], wait_seconds: float) -> list[Update]:
        received = self.bus.pull(subscription, PULL_BATCH, timeout=wait_seconds)
        updates = []
        for message in received:
            update = read(message)
            if update is None:
                self.foreign += 1
            else:
                updates.append(update)
        self._ack(subscription, [m.ack_id for m in received])
        return updates

    def _ack(self, subscription: str, ack_ids: list[str]) -> None:
        for start in range(0, len(ack_ids), ACK_CHUNK):
            with contextlib.suppress(Exception):  # unacked, it comes again and is counted once: states only move on
                self.bus.ack(subscription, ack_ids[start : start + ACK_CHUNK])

    def _event(self, message: Received) -> Completed | None:
        if message.attributes.get(BACKFILL_ID_ATTRIBUTE) != self.backfill_id:
            return None
        try:
            event = CompletionEvent.decode(message.data)
        except BackfillError:
            return None
        return Completed(event.run_path, event.outcome, message.attributes.get(SUMMARY_CREATED_AT_ATTRIBUTE))

    def _dead_letter(self, message: Received) -> DeadLettered | None:
        try:
            request = SummaryRequest.decode(message.data)
        except BackfillError:
            return None
        if request.backfill_id != self.backfill_id:
            return None
        letter = describe(message)
        return DeadLettered(request.run_path, letter.reason, letter.message)
