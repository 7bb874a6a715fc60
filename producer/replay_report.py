"""What one ``replay`` found and did: dead letters by reason and one by one (table and ``--json``)."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

from mmm_backfill.bus import Received

#: Reason of dead letters that Pub/Sub forwarded itself after too many deliveries (no worker attributes).
MAX_DELIVERY_REASON = "max_delivery_attempts"
#: Dead letters listed in the table; the JSON lists them all.
MAX_TABLE_ROWS = 100


@dataclass(frozen=True)
class DeadLetter:
    """One dead letter as read from its attributes, and what replay did with it (``detail``: why).

    action: ``replayed``, ``would_replay`` (dry run), or left in place: ``unreplayable``,
    ``exhausted`` (replayed ``max_replays`` times already), ``publish_failed``.
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
    """Dead letters handled by one replay, by reason and one by one (the ``--json`` output).

    arrived_later: dead letters published after the replay started, left for the next one.
    interrupted_by: the signal that stopped the replay early, if any.
    """

    dry_run: bool
    pulled: int = 0
    left_in_place: int = 0
    arrived_later: int = 0
    ack_failed: int = 0
    pull_error: str | None = None
    interrupted_by: str | None = None
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
            "exhausted": [asdict(x) for x in self.letters if x.action == "exhausted"],
            "publish_failed": self.count("publish_failed"),
            "left_in_place": self.left_in_place,
            "arrived_later": self.arrived_later,
            "ack_failed": self.ack_failed,
            "pull_error": self.pull_error,
            "interrupted_by": self.interrupted_by,
            "reasons": self.reasons,
            "dead_letters": [asdict(x) for x in self.letters],
        }

    def tables(self) -> list[tuple[str, list[str], list[list[Any]]]]:
        d = self.to_dict()
        keys = ["pulled", "matched", "replayed", "would_replay", "publish_failed", "left_in_place", "arrived_later"]
        counts = [[k.replace("_", " "), d[k]] for k in [*keys, "ack_failed"]]
        counts += [["unreplayable", len(d["unreplayable"])], ["exhausted", len(d["exhausted"])]]
        counts += [["pull stopped by", self.pull_error]] if self.pull_error else []
        counts += [["interrupted by", self.interrupted_by]] if self.interrupted_by else []
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
