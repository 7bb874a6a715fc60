"""The verdict of ``enqueue --wait``: per revision × country, the runs that failed or are late, the country files.

Exit codes (the README and ``enqueue --help`` list them): 0 when every run is summarised and every
country file touched holds it; EXIT_DEAD_LETTERED when some run was dead-lettered (the others
summarised and aggregated); EXIT_TIMED_OUT when the timeout came first (what is pending is named);
128 + the signal after SIGTERM/SIGINT, like the other operator commands.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

from producer.enqueue import EnqueueReport
from producer.tracker import DEAD_LETTERED, PENDING, SUMMARISED, Tracker

EXIT_DEAD_LETTERED = 3
EXIT_TIMED_OUT = 4
#: Runs named one by one in the tables; the JSON names up to MAX_JSON_RUNS of each kind.
MAX_TABLE_RUNS = 50
MAX_JSON_RUNS = 10_000


@dataclass(frozen=True)
class CountryFileCheck:
    """Whether one country file holds every run of the backfill summarised in that country."""

    country: str
    runs: int
    generation: int | None
    missing: int
    missing_examples: list[str] = field(default_factory=list)

    @property
    def current(self) -> bool:
        return self.missing == 0


@dataclass
class WaitReport:
    """What became of one backfill. ``timed_out`` / ``interrupted_by``: why the wait ended early."""

    backfill_id: str
    tracker: Tracker
    country_files: list[CountryFileCheck] = field(default_factory=list)
    timed_out: bool = False
    interrupted_by: str | None = None
    seconds: float = 0.0
    stall_warnings: int = 0
    listings: int = 0
    foreign_messages: int = 0

    @property
    def countries_current(self) -> bool:
        return all(c.current for c in self.country_files)

    @property
    def exit_code(self) -> int:
        """0, EXIT_DEAD_LETTERED or EXIT_TIMED_OUT (a signal's code is the caller's: see the module doc)."""
        if self.timed_out or self.tracker.pending or not self.countries_current:
            return EXIT_TIMED_OUT
        return EXIT_DEAD_LETTERED if self.tracker.counts[DEAD_LETTERED] else 0

    @property
    def verdict(self) -> str:
        if self.interrupted_by:
            return f"interrupted by {self.interrupted_by}"
        return {0: "complete", EXIT_DEAD_LETTERED: "dead-lettered runs", EXIT_TIMED_OUT: "timed out"}[self.exit_code]

    def to_dict(self) -> dict[str, Any]:
        t = self.tracker
        dead = t.in_state(DEAD_LETTERED)
        pending = t.in_state(PENDING)
        return {
            "backfill_id": self.backfill_id,
            "verdict": self.verdict,
            "exit_code": self.exit_code,
            "runs": len(t.runs),
            "summarised": t.counts[SUMMARISED],
            "dead_lettered": t.counts[DEAD_LETTERED],
            "pending": t.counts[PENDING],
            "outcomes": _outcomes(t),
            "by_revision_country": t.rows(),
            "dead_letters": [
                {"run_path": s.run.prefix, "reason": s.reason, "message": s.message} for s in dead[:MAX_JSON_RUNS]
            ],
            "pending_runs": [s.run.prefix for s in pending[:MAX_JSON_RUNS]],
            "country_files": [{**asdict(c), "current": c.current} for c in self.country_files],
            "timed_out": self.timed_out,
            "interrupted_by": self.interrupted_by,
            "seconds": round(self.seconds, 2),
            "stall_warnings": self.stall_warnings,
            "listings": self.listings,
            "foreign_messages": self.foreign_messages,
        }

    def tables(self) -> list[tuple[str, list[str], list[list[Any]]]]:
        t = self.tracker
        columns = ["revision", "country", "runs", SUMMARISED, DEAD_LETTERED, PENDING]
        rows = [[row[c] for c in columns] for row in t.rows()]
        rows.append(["all", "", len(t.runs), t.counts[SUMMARISED], t.counts[DEAD_LETTERED], t.counts[PENDING]])
        title = f"backfill {self.backfill_id}: {self.verdict} after {self.seconds:.0f}s"
        tables: list[tuple[str, list[str], list[list[Any]]]] = [(title, [c.replace("_", "-") for c in columns], rows)]
        dead = t.in_state(DEAD_LETTERED)
        if dead:
            tables.append(
                (
                    _named("dead-lettered runs", len(dead)),
                    ["run path", "reason", "message"],
                    [[s.run.prefix, s.reason, s.message] for s in dead[:MAX_TABLE_RUNS]],
                )
            )
        pending = t.in_state(PENDING)
        if pending:
            tables.append(
                (
                    _named("still pending", len(pending)),
                    ["run path"],
                    [[s.run.prefix] for s in pending[:MAX_TABLE_RUNS]],
                )
            )
        files = [
            [
                c.country,
                c.generation,
                c.runs,
                "yes" if c.current else f"no: {c.missing} missing",
                " ".join(c.missing_examples),
            ]
            for c in self.country_files
        ]
        if files:
            tables.append(
                (
                    "country files",
                    ["country", "generation", "runs it must hold", "current", "missing (examples)"],
                    files,
                )
            )
        return tables


def _outcomes(tracker: Tracker) -> dict[str, int]:
    counts: dict[str, int] = {}
    for state in tracker.in_state(SUMMARISED):
        counts[state.outcome or ""] = counts.get(state.outcome or "", 0) + 1
    return dict(sorted(counts.items()))


def _named(what: str, count: int) -> str:
    return what + (f" (first {MAX_TABLE_RUNS} of {count})" if count > MAX_TABLE_RUNS else f" ({count})")


@dataclass
class BackfillReport:
    """``enqueue --wait``'s output: what was enqueued, then what became of it (``--json``: under ``wait``)."""

    enqueue: EnqueueReport
    wait: WaitReport

    def to_dict(self) -> dict[str, Any]:
        return {**self.enqueue.to_dict(), "wait": self.wait.to_dict()}

    def tables(self) -> list[tuple[str, list[str], list[list[Any]]]]:
        return self.enqueue.tables() + self.wait.tables()
