"""``mmm-backfill status``: coverage per revision and country, and how fresh the country files are.

Each run's summary is counted by state (missing, legacy, outdated, current; see
``mmm_backfill.summary_state``), read from the listing's custom metadata, so a user sees how much
of a bucket a refresh would rewrite.

Read-only and cheap: the same prefix listings as ``enqueue`` plus one listing of
``model_summary/``; no object is downloaded.
"""

from __future__ import annotations

import datetime as dt
import time
from collections.abc import Callable, Iterable
from dataclasses import asdict, dataclass, field
from typing import Any

from mmm_backfill.config import Settings
from mmm_backfill.errors import InvalidRunPath
from mmm_backfill.runpath import COUNTRY_ROOT, COUNTRY_SUMMARY_NAME, check_segment
from mmm_backfill.storage import ObjectInfo, Storage
from mmm_backfill.summary_state import SummaryState
from producer.enqueue import list_run_objects, run_prefixes
from producer.scan import Run, check_filters, scan


@dataclass(frozen=True)
class Coverage:
    """Runs of one revision × country, how many have a summary, and the summaries by state."""

    revision: str
    country: str
    runs: int
    summarised: int
    legacy: int = 0
    outdated: int = 0
    current: int = 0

    @property
    def missing(self) -> int:
        return self.runs - self.summarised

    @property
    def percent(self) -> float:
        return percent(self.summarised, self.runs)

    def to_dict(self) -> dict[str, Any]:
        return {**asdict(self), "missing": self.missing, "percent": self.percent}


@dataclass(frozen=True)
class CountryFile:
    """A country's aggregate file: whether it exists, its generation and age in seconds."""

    country: str
    present: bool
    generation: int | None = None
    updated: str | None = None
    age_seconds: float | None = None


@dataclass
class StatusReport:
    """Coverage rows, country files and the names that did not fit the layout."""

    bucket: str
    coverage: list[Coverage] = field(default_factory=list)
    country_files: list[CountryFile] = field(default_factory=list)
    skipped: int = 0
    skipped_examples: list[str] = field(default_factory=list)
    list_calls: int = 0

    @property
    def totals(self) -> dict[str, Any]:
        runs, summarised = sum(c.runs for c in self.coverage), sum(c.summarised for c in self.coverage)
        return {
            "runs": runs,
            "summarised": summarised,
            "missing": runs - summarised,
            "percent": percent(summarised, runs),
            **{state: sum(getattr(c, state) for c in self.coverage) for state in STATE_COLUMNS},
        }

    def to_dict(self) -> dict[str, Any]:
        return {
            "bucket": self.bucket,
            "coverage": [c.to_dict() for c in self.coverage],
            "totals": self.totals,
            "country_files": [asdict(f) for f in self.country_files],
            "skipped": self.skipped,
            "skipped_examples": self.skipped_examples,
            "list_calls": self.list_calls,
        }

    def tables(self) -> list[tuple[str, list[str], list[list[Any]]]]:
        t = self.totals
        # "%" is the share with a summary of any state; the summarised count is runs - missing.
        rows = [
            [c.revision, c.country, c.runs, c.percent, c.missing, c.legacy, c.outdated, c.current]
            for c in self.coverage
        ]
        rows.append(["all", "", *(t[k] for k in ("runs", "percent", "missing", *STATE_COLUMNS))])
        columns = ["revision", "country", "runs", "%", "missing", "legacy", "outdated", "current"]
        files = [
            [f.country, "yes" if f.present else "no", f.generation, f.updated, _age(f.age_seconds)]
            for f in self.country_files
        ]
        tables = [
            (f"coverage of gs://{self.bucket}", columns, rows),
            ("country files", ["country", "present", "generation", "updated", "age"], files),
        ]
        if self.skipped:
            tables.append((f"skipped names: {self.skipped} (examples)", ["name"], [[n] for n in self.skipped_examples]))
        return tables


def percent(part: int, whole: int) -> float:
    """Share in percent with one decimal; an empty whole counts as fully covered."""
    return round(100.0 * part / whole, 1) if whole else 100.0


#: Summary states counted beside ``missing`` (which is ``runs - summarised``).
STATE_COLUMNS = (SummaryState.LEGACY.value, SummaryState.OUTDATED.value, SummaryState.CURRENT.value)


def coverage_rows(runs: Iterable[Run]) -> list[Coverage]:
    """Group runs by revision and country, in that order, counting summaries by state."""
    counts: dict[tuple[str, str], dict[str, int]] = {}
    for run in runs:
        row = counts.setdefault((run.path.revision, run.path.country), dict.fromkeys(("runs", *STATE_COLUMNS), 0))
        row["runs"] += 1
        if run.summarised:
            row[run.state.value] += 1
    return [
        Coverage(rev, country, row["runs"], sum(row[s] for s in STATE_COLUMNS), **{s: row[s] for s in STATE_COLUMNS})
        for (rev, country), row in sorted(counts.items())
    ]


def country_files(objects: Iterable[ObjectInfo], countries: Iterable[str], now: float) -> list[CountryFile]:
    """One row per country among ``countries`` and those with a file; absent files are rows too."""
    found: dict[str, ObjectInfo] = {}
    for obj in objects:
        parts = obj.name.split("/")
        if len(parts) == 3 and parts[0] == COUNTRY_ROOT and parts[2] == COUNTRY_SUMMARY_NAME and _segment(parts[1]):
            found[parts[1]] = obj
    rows = []
    for country in sorted(set(countries) | set(found)):
        obj = found.get(country)
        if obj is None:
            rows.append(CountryFile(country, False))
            continue
        updated = None if obj.updated is None else _iso(obj.updated)
        age = None if obj.updated is None else round(max(0.0, now - obj.updated), 1)
        rows.append(CountryFile(country, True, obj.generation, updated, age))
    return rows


def coverage(
    settings: Settings,
    storage: Storage,
    *,
    revision: str | None,
    country: str | None,
    now: Callable[[], float] = time.time,
) -> StatusReport:
    """Coverage of the runs matching the filters, and the country files of their countries.

    Without a revision filter every country file is shown, even one whose runs are gone.
    """
    check_filters(revision, country)
    calls_before = storage.calls.get("list_page", 0)
    found = scan(list_run_objects(storage, run_prefixes(storage, revision, country)), revision, country)
    report = StatusReport(settings.bucket, coverage_rows(found.runs), [], found.skipped, found.skipped_examples)
    countries = {c.country for c in report.coverage} | ({country} if country else set())
    objects = storage.list(f"{COUNTRY_ROOT}/{country}/" if country else f"{COUNTRY_ROOT}/")
    files = country_files(objects, countries, now())
    report.country_files = files if revision is None else [f for f in files if f.country in countries]
    report.list_calls = storage.calls.get("list_page", 0) - calls_before
    return report


def _segment(name: str) -> bool:
    try:
        check_segment(name, "country")
    except InvalidRunPath:
        return False
    return True


def _iso(seconds: float) -> str:
    return dt.datetime.fromtimestamp(seconds, dt.UTC).isoformat(timespec="seconds").replace("+00:00", "Z")


def _age(seconds: float | None) -> str:
    """Human age: ``42s``, ``5m``, ``3h``, ``2d``."""
    if seconds is None:
        return ""
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60)):
        if seconds >= size:
            return f"{int(seconds // size)}{unit}"
    return f"{int(seconds)}s"
