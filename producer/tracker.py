"""What became of each run one backfill published: pure bookkeeping, no I/O.

A run is pending until a completion event or a dead letter of this backfill names it. A summary
outranks a dead letter (a replayed run may succeed later; a summary, once written, stays), so a run
never goes back from summarised. Rates and the estimate of time left count only from the first run
settled, so the minutes workers take to start from zero do not drag the estimate.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable
from dataclasses import dataclass

from mmm_backfill.runpath import RunPath

PENDING, SUMMARISED, DEAD_LETTERED = "pending", "summarised", "dead_lettered"
#: Outcome of a run found summarised by a listing rather than by an event (see ``producer.wait``).
FOUND_IN_LISTING = "found_in_listing"


@dataclass
class RunState:
    """One run of the backfill. ``created_at``: of the summary this backfill wrote, when it wrote one."""

    run: RunPath
    state: str = PENDING
    outcome: str | None = None
    created_at: str | None = None
    reason: str | None = None
    message: str | None = None


class Tracker:
    """The runs of one backfill by state, and how fast they settle."""

    def __init__(self, runs: Iterable[RunPath], now: float) -> None:
        self.runs = {run.prefix: RunState(run) for run in runs}
        self.started = now
        self.first_settled: float | None = None
        self.last_change = now
        self.counts = {PENDING: len(self.runs), SUMMARISED: 0, DEAD_LETTERED: 0}

    def summarised(self, run_path: str, outcome: str, created_at: str | None, now: float) -> bool:
        """Record a summary of ``run_path``; True when that changed its state."""
        state = self.runs.get(run_path)
        if state is None or state.state == SUMMARISED:
            return False
        self._move(state, SUMMARISED, now)
        state.outcome, state.created_at, state.reason, state.message = outcome, created_at, None, None
        return True

    def dead_lettered(self, run_path: str, reason: str, message: str, now: float) -> bool:
        """Record a dead letter of ``run_path`` (ignored once it is summarised); True when it changed."""
        state = self.runs.get(run_path)
        if state is None or state.state != PENDING:
            return False
        self._move(state, DEAD_LETTERED, now)
        state.reason, state.message = reason, message
        return True

    def _move(self, state: RunState, to: str, now: float) -> None:
        self.counts[state.state] -= 1
        self.counts[to] += 1
        state.state = to
        self.last_change = now
        if self.first_settled is None:
            self.first_settled = now

    @property
    def pending(self) -> int:
        return self.counts[PENDING]

    @property
    def settled(self) -> int:
        return len(self.runs) - self.pending

    def in_state(self, state: str) -> list[RunState]:
        return [s for s in self.runs.values() if s.state == state]

    def runs_per_minute(self, now: float) -> float | None:
        """Runs settled per minute since the first one settled (None before two data points)."""
        if self.first_settled is None or now - self.first_settled < 1.0:
            return None
        return 60.0 * self.settled / (now - self.first_settled)

    def seconds_left(self, now: float) -> float | None:
        rate = self.runs_per_minute(now)
        return None if not rate else 60.0 * self.pending / rate

    def by_country(self) -> dict[str, list[RunState]]:
        """Summarised runs by country: what each country file must hold."""
        found: dict[str, list[RunState]] = {}
        for state in self.in_state(SUMMARISED):
            found.setdefault(state.run.country, []).append(state)
        return found

    def rows(self) -> list[dict[str, int | str]]:
        """Per revision × country: runs, summarised, dead-lettered, pending."""
        rows: dict[tuple[str, str], dict[str, int | str]] = {}
        for state in self.runs.values():
            key = (state.run.revision, state.run.country)
            row = rows.setdefault(
                key, {"revision": key[0], "country": key[1], "runs": 0, SUMMARISED: 0, DEAD_LETTERED: 0, PENDING: 0}
            )
            row["runs"] = int(row["runs"]) + 1
            row[state.state] = int(row[state.state]) + 1
        return [rows[key] for key in sorted(rows)]


def runs_held(document: object) -> dict[str, object]:
    """Run path → ``created_at`` of each entry of a country file (nothing when it is not one)."""
    entries = document.get("runs") if isinstance(document, dict) else None
    held: dict[str, object] = {}
    for entry in entries if isinstance(entries, list) else []:
        if isinstance(entry, dict) and isinstance(entry.get("run_path"), str):
            held[entry["run_path"]] = entry.get("created_at")
    return held


def missing_from(held: dict[str, object], runs: Iterable[RunState]) -> list[str]:
    """Run paths of ``runs`` that a country file holding ``held`` (see ``runs_held``) lacks.

    A run whose summary this backfill wrote must appear with that summary's ``created_at`` (a run
    refreshed by it is already listed, with its old summary, until the aggregator catches up); a run
    whose summary was found in place need only appear.
    """
    return [
        s.run.prefix
        for s in runs
        if s.run.prefix not in held or (s.created_at is not None and not same_moment(held[s.run.prefix], s.created_at))
    ]


def same_moment(a: object, b: str) -> bool:
    """Whether ``a`` names the same UTC second as the ISO 8601 ``b`` (a country file may reformat it)."""
    if a == b:
        return True
    if not isinstance(a, str):
        return False
    try:
        first, second = dt.datetime.fromisoformat(a), dt.datetime.fromisoformat(b)
    except ValueError:
        return False
    first = first if first.tzinfo else first.replace(tzinfo=dt.UTC)
    second = second if second.tzinfo else second.replace(tzinfo=dt.UTC)
    return first == second
