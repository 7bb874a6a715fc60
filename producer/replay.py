"""``mmm-backfill replay``: show dead letters by reason and republish them as fresh requests.

Nothing is lost half-way: a dead letter is acked only after its republish is confirmed. Every other
message pulled (filtered out, over the limit, malformed, failed to publish, all in a dry run) is held
to the end, then nacked so it stays: nacked at once, it would come straight back into this replay.
"""

from __future__ import annotations

import dataclasses
import logging
from concurrent.futures import Future
from dataclasses import asdict, dataclass, field
from typing import Any

from mmm_backfill.bus import PUBLISH_TIMEOUT, Bus, Received
from mmm_backfill.config import Settings
from mmm_backfill.errors import PermanentError
from mmm_backfill.messages import SummaryRequest
from mmm_backfill.retry import is_transient
from producer.scan import check_filters

log = logging.getLogger(__name__)

#: Messages asked for per pull; the server may return fewer.
PULL_BATCH = 100
#: Seconds one pull may wait for messages; a pull that brings nothing new ends the replay.
PULL_TIMEOUT = 3.0
#: Ack ids per nack request, well under the API's request size limit.
NACK_CHUNK = 500
#: Reason of dead letters that Pub/Sub forwarded itself after too many deliveries (no worker attributes).
MAX_DELIVERY_REASON = "max_delivery_attempts"
#: Dead letters listed in the table; the JSON lists them all.
MAX_TABLE_ROWS = 100


@dataclass(frozen=True)
class DeadLetter:
    """One dead letter as read from its attributes, and what replay did with it (``detail``: why).

    action: ``replayed``, ``would_replay`` (dry run), or left in place: ``unreplayable``, ``publish_failed``.
    """

    message_id: str
    run_path: str | None
    reason: str
    message: str
    error_class: str | None
    worker: str | None
    replay_count: str | None
    action: str = ""
    detail: str | None = None


@dataclass
class ReplayReport:
    """Dead letters handled by one replay, by reason and one by one (the ``--json`` output)."""

    dry_run: bool
    pulled: int = 0
    left_in_place: int = 0
    ack_failed: int = 0
    pull_error: str | None = None
    letters: list[DeadLetter] = field(default_factory=list)

    def count(self, action: str) -> int:
        return sum(1 for letter in self.letters if letter.action == action)

    @property
    def reasons(self) -> dict[str, dict[str, Any]]:
        """Reason → count and an example error message, most frequent first."""
        found: dict[str, dict[str, Any]] = {}
        for letter in self.letters:
            row = found.setdefault(letter.reason, {"count": 0, "example": letter.message})
            row["count"] += 1
        return dict(sorted(found.items(), key=lambda kv: (-kv[1]["count"], kv[0])))

    def to_dict(self) -> dict[str, Any]:
        return {
            "dry_run": self.dry_run,
            "pulled": self.pulled,
            "matched": len(self.letters),
            "replayed": self.count("replayed"),
            "would_replay": self.count("would_replay"),
            "unreplayable": [asdict(x) for x in self.letters if x.action == "unreplayable"],
            "publish_failed": self.count("publish_failed"),
            "left_in_place": self.left_in_place,
            "ack_failed": self.ack_failed,
            "pull_error": self.pull_error,
            "reasons": self.reasons,
            "dead_letters": [asdict(x) for x in self.letters],
        }

    def tables(self) -> list[tuple[str, list[str], list[list[Any]]]]:
        d = self.to_dict()
        keys = ["pulled", "matched", "replayed", "would_replay", "publish_failed", "left_in_place", "ack_failed"]
        counts = [[k.replace("_", " "), d[k]] for k in keys] + [["unreplayable", len(d["unreplayable"])]]
        counts += [["pull stopped by", self.pull_error]] if self.pull_error else []
        reasons = [[r, v["count"], v["example"]] for r, v in self.reasons.items()]
        columns = ["message id", "run path", "reason", "replays", "worker", "action", "detail"]
        rows = [
            [x.message_id, x.run_path, x.reason, x.replay_count, x.worker, x.action, x.detail]
            for x in self.letters[:MAX_TABLE_ROWS]
        ]
        more = f" (first {MAX_TABLE_ROWS} of {len(self.letters)})" if len(self.letters) > MAX_TABLE_ROWS else ""
        return [
            ("replay" + (" (dry run)" if self.dry_run else ""), ["", "count"], counts),
            ("dead letters by reason", ["reason", "count", "example message"], reasons),
            ("dead letters" + more, columns, rows),
        ]


def describe(received: Received) -> DeadLetter:
    """Read a dead letter's attributes (set by the worker, or only the request's own by Pub/Sub)."""
    attrs = received.attributes
    if "error_reason" in attrs:
        reason, message = attrs["error_reason"], attrs.get("error_message", "")
    else:
        deliveries = attrs.get("CloudPubSubDeadLetterSourceDeliveryCount")
        reason = MAX_DELIVERY_REASON
        message = f"not acknowledged after {deliveries} deliveries" if deliveries else "not acknowledged in time"
    get = attrs.get
    return DeadLetter(
        received.message_id, get("run_path"), reason, message, get("error_class"), get("worker"), get("replay_count")
    )


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
) -> ReplayReport:
    """Pull dead letters until ``limit`` matched or nothing new comes; replay the matching ones.

    Republished requests carry ``replay_count + 1``. Messages not replayed stay in the
    dead-letter subscription (see the module doc).
    """
    check_filters(revision, country)
    session = _Session(settings, bus, dry_run)
    try:
        while limit is None or len(session.report.letters) < limit:
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

    def __init__(self, settings: Settings, bus: Bus, dry_run: bool) -> None:
        self.settings, self.bus, self.dry_run = settings, bus, dry_run
        self.subscription, self.topic = settings.dead_letter_subscription, settings.request_topic
        self.report = ReplayReport(dry_run)
        self.held: dict[str, Received] = {}
        self.replayed: set[str] = set()

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
        """The messages not seen before; redeliveries (after a lease expired) are not handled twice."""
        fresh, again = [], []
        for received in batch:
            if received.message_id in self.replayed:
                again.append(received.ack_id)  # its earlier ack was lost: ack this delivery instead
            elif received.message_id in self.held:
                self.held[received.message_id] = received  # only the newest ack id is valid
            else:
                fresh.append(received)
        self._ack(again)
        self.report.pulled += len(fresh)
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
        """Report every chosen message; republish the valid ones unless this is a dry run."""
        sent = []
        for received, request, problem in chosen:
            letter = describe(received)
            if request is None or self.dry_run:
                action = "unreplayable" if request is None else "would_replay"
                self._keep(received, dataclasses.replace(letter, action=action, detail=problem))
                continue
            again = dataclasses.replace(request, replay_count=request.replay_count + 1)
            sent.append((received, letter, self.bus.publish(self.topic, again.encode(), again.attributes())))
        self._confirm(sent)

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
        self.report.left_in_place = sum(1 for m in self.held if m not in reported)
        ack_ids = [m.ack_id for m in self.held.values()]
        try:
            for start in range(0, len(ack_ids), NACK_CHUNK):
                self.bus.nack(self.subscription, ack_ids[start : start + NACK_CHUNK])
        except Exception as exc:  # noqa: BLE001 - leases expire and the messages return anyway
            log.warning("could not nack %d dead letters: %s", len(self.held), exc)
