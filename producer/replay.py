"""``mmm-backfill replay``: show dead letters by reason and republish them as fresh requests.

Safe to repeat, to interrupt, and to run while workers run:

- Bounded: only dead letters published before the replay started are handled, each at most once;
  the replay stops at the first pull that brings none. Letters that arrive meanwhile (a replayed
  run that fails again) wait for the next replay, so a replay cannot chase its own tail.
- Nothing lost: a dead letter is acked only after its republish is confirmed. Every other message
  pulled (filtered out, over the limit, malformed, exhausted, arrived later, all of a dry run) is
  held to the end, then handed back (nacked); the replay subscription has no retry policy, so the
  next replay, however soon, sees it again. A pull is never abandoned (see ``Bus.pull``).
- A run already replayed ``max_replays`` times stays in the dead letters, reported as exhausted.
- SIGTERM/SIGINT (``stop``): the batch in hand is confirmed and acked, the rest handed back.
"""

from __future__ import annotations

import dataclasses
import logging
import time
from concurrent.futures import Future

from mmm_backfill.bus import PUBLISH_TIMEOUT, Bus, Received
from mmm_backfill.config import Settings
from mmm_backfill.errors import PermanentError
from mmm_backfill.messages import SummaryRequest
from mmm_backfill.retry import is_transient
from mmm_backfill.stopping import StopRequest
from producer.replay_report import MAX_DELIVERY_REASON, DeadLetter, ReplayReport, describe
from producer.scan import check_filters

__all__ = ["MAX_DELIVERY_REASON", "DeadLetter", "ReplayReport", "replay"]

log = logging.getLogger(__name__)

#: Messages asked for per pull; the server may return fewer.
PULL_BATCH = 100
#: Deadline sent with each pull, in seconds. The server answers an empty pull before it (the
#: emulator about a second before), so it bounds both the final empty pull and how long a signal
#: waits for the pull in hand.
PULL_TIMEOUT = 4.0
#: Ack ids per nack request, well under the API's request size limit.
NACK_CHUNK = 500


def read_request(received: Received) -> tuple[SummaryRequest | None, str | None]:
    """The request in the body, or None and why it is not a valid one."""
    try:
        return SummaryRequest.decode(received.data), None
    except PermanentError as exc:
        return None, str(exc)


def matches(received: Received, request: SummaryRequest | None, revision: str | None, country: str | None) -> bool:
    """Whether a dead letter is in scope: by its body when valid, else by its attributes."""
    if request is not None:
        rev, ctry = request.revision, request.country
    else:
        rev, ctry = received.attributes.get("revision"), received.attributes.get("country")
    return (revision is None or rev == revision) and (country is None or ctry == country)


def replay(
    settings: Settings,
    bus: Bus,
    *,
    limit: int | None,
    country: str | None,
    revision: str | None,
    dry_run: bool,
    stop: StopRequest | None = None,
) -> ReplayReport:
    """Replay the matching dead letters present at the start (at most ``limit``); see the module doc.

    Republished requests carry ``replay_count + 1``.
    """
    check_filters(revision, country)
    session = _Session(settings, bus, dry_run, started=time.time())
    try:
        while limit is None or len(session.report.letters) < limit:
            if stop is not None and stop.requested:
                session.report.interrupted_by = stop.name
                break
            room = PULL_BATCH if limit is None else min(PULL_BATCH, limit - len(session.report.letters))
            fresh = session.admit(session.pull(room))
            if not fresh:
                break
            session.handle(session.select(fresh, limit, revision, country))
    finally:
        session.release()
    return session.report


Chosen = tuple[Received, SummaryRequest | None, str | None]


class _Session:
    """Messages of one replay: those held for a nack at the end, and those already replayed."""

    def __init__(self, settings: Settings, bus: Bus, dry_run: bool, started: float) -> None:
        self.settings, self.bus, self.dry_run, self.started = settings, bus, dry_run, started
        self.subscription, self.topic = settings.dead_letter_subscription, settings.request_topic
        self.report = ReplayReport(dry_run)
        self.held: dict[str, Received] = {}
        self.replayed: set[str] = set()
        self.later: set[str] = set()

    def pull(self, room: int) -> list[Received]:
        """Up to ``room`` messages; none when pulling keeps failing (reported: the replay ends early)."""
        try:
            return self.bus.pull(self.subscription, room, timeout=PULL_TIMEOUT)
        except Exception as exc:
            if not is_transient(exc):
                raise
            self.report.pull_error = f"{type(exc).__name__}: {exc}"[:300]
            return []

    def admit(self, batch: list[Received]) -> list[Received]:
        """The messages to handle: not seen before, published before the start; the others are held."""
        fresh, again = [], []
        for received in batch:
            if received.message_id in self.replayed:
                again.append(received.ack_id)  # its earlier ack was lost: ack this delivery instead
            elif received.message_id in self.held:
                self.held[received.message_id] = received  # only the newest ack id is valid
            elif received.publish_time > self.started:
                self.held[received.message_id] = received  # for the next replay
                self.later.add(received.message_id)
            else:
                fresh.append(received)
        self._ack(again)
        self.report.pulled += len(fresh)
        self.report.arrived_later = len(self.later)
        return fresh

    def select(
        self, fresh: list[Received], limit: int | None, revision: str | None, country: str | None
    ) -> list[Chosen]:
        """The in-scope messages, up to ``limit`` in all; the others are held to be left in place."""
        chosen: list[Chosen] = []
        for received in fresh:
            request, problem = read_request(received)
            room = limit is None or len(self.report.letters) + len(chosen) < limit
            if room and matches(received, request, revision, country):
                chosen.append((received, request, problem))
            else:
                self.held[received.message_id] = received
        return chosen

    def handle(self, chosen: list[Chosen]) -> None:
        """Report every chosen message; republish the valid, not exhausted ones unless this is a dry run."""
        sent = []
        for received, request, problem in chosen:
            letter = describe(received)
            kept = self._kept_because(request, problem)
            if kept is not None:
                self._keep(received, dataclasses.replace(letter, action=kept[0], detail=kept[1]))
                continue
            assert request is not None
            again = dataclasses.replace(request, replay_count=request.replay_count + 1)
            sent.append((received, letter, self.bus.publish(self.topic, again.encode(), again.attributes())))
        self._confirm(sent)

    def _kept_because(self, request: SummaryRequest | None, problem: str | None) -> tuple[str, str | None] | None:
        """(action, detail) of a dead letter that stays in place; None for one to republish."""
        if request is None:
            return "unreplayable", problem
        if request.replay_count >= self.settings.max_replays:
            return "exhausted", f"replayed {request.replay_count} times (max_replays {self.settings.max_replays})"
        return ("would_replay", None) if self.dry_run else None

    def _confirm(self, sent: list[tuple[Received, DeadLetter, Future]]) -> None:
        """Ack exactly the dead letters whose republish the server confirmed; keep the others."""
        confirmed = []
        for received, letter, future in sent:
            try:
                future.result(timeout=PUBLISH_TIMEOUT)
            except Exception as exc:  # noqa: BLE001 - the dead letter stays in place, reported
                self._keep(received, dataclasses.replace(letter, action="publish_failed", detail=str(exc)[:300]))
                continue
            confirmed.append(received.ack_id)
            self.replayed.add(received.message_id)
            self.report.letters.append(dataclasses.replace(letter, action="replayed"))
        self._ack(confirmed)
        if confirmed:
            log.info("dead letters replayed", extra={"replayed": len(confirmed), "so_far": len(self.replayed)})

    def _keep(self, received: Received, letter: DeadLetter) -> None:
        self.held[received.message_id] = received
        self.report.letters.append(letter)

    def _ack(self, ack_ids: list[str]) -> None:
        """Ack replayed dead letters; a failed ack only means a harmless duplicate request later."""
        if not ack_ids:
            return
        try:
            self.bus.ack(self.subscription, ack_ids)
        except Exception as exc:  # noqa: BLE001 - the requests are out; the dead letters come back
            self.report.ack_failed += len(ack_ids)
            log.warning("could not ack %d replayed dead letters: %s", len(ack_ids), exc)

    def release(self) -> None:
        """Nack every held message so it is available again at once (a failed nack only delays that)."""
        reported = {x.message_id for x in self.report.letters}
        self.report.left_in_place = sum(1 for m in self.held if m not in reported and m not in self.later)
        ack_ids = [m.ack_id for m in self.held.values()]
        try:
            for start in range(0, len(ack_ids), NACK_CHUNK):
                self.bus.nack(self.subscription, ack_ids[start : start + NACK_CHUNK])
        except Exception as exc:  # noqa: BLE001 - leases expire and the messages return anyway
            log.warning("could not nack %d dead letters: %s", len(self.held), exc)
