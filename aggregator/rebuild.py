"""Rebuild a country file from the bucket: list, fetch through the cache, build, conditional write.

The write is conditional on the generation read *before* listing, so a rebuild whose listing may
be older than the file it would replace loses the race and starts again: no run is ever dropped
by two aggregators writing at once.
"""

from __future__ import annotations

import collections
import dataclasses
import datetime as dt
import logging
import random
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from aggregator.cache import SummaryCache
from aggregator.country import (
    CountryBuild,
    Skipped,
    build_country_file,
    encode_country_file,
    parse_summary,
    run_of,
    same_content,
)
from mmm_backfill import metrics
from mmm_backfill.config import Settings
from mmm_backfill.errors import InvalidRunPath, ObjectTooLarge, TransientError
from mmm_backfill.runpath import RUNS_ROOT, check_segment, country_summary_name
from mmm_backfill.stopping import StopRequest
from mmm_backfill.storage import ObjectInfo, PreconditionFailed, Storage

log = logging.getLogger(__name__)

#: Rebuilds of one country before giving up when other writers keep winning the race.
MAX_ATTEMPTS = 10
#: Sleep between lost races: attempt x this, plus up to the same again at random, in seconds.
CONFLICT_BACKOFF_SECONDS = 0.05
#: Summaries left out that a rebuild names one by one in its log, and ``aggregate`` in its report
#: (each country's count by reason is always complete): a bucket of bad summaries cannot flood either.
MAX_SKIPPED_LOGGED = 20
MAX_SKIPPED_REPORTED = 100


class RebuildConflict(TransientError):
    """Other writers changed the country file on every attempt; try again later."""

    reason = "rebuild_conflict"


@dataclass(frozen=True)
class RebuildResult:
    """What one rebuild did: ``result`` is ``written`` or ``unchanged``; ``generation`` is the file's now."""

    country: str
    result: str
    generation: int
    document: dict[str, Any]
    skipped: list[Skipped] = field(default_factory=list)
    attempts: int = 1

    @property
    def best_model(self) -> str | None:
        best = self.document.get("best_model_overall")
        return None if best is None else f"{best.get('model_id')} ({best['revision']}/{best['timestamp']})"


def utc_now() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


def list_revisions(storage: Storage) -> list[str]:
    """Revision names under ``robyn/`` (folders whose name is not a valid segment are ignored)."""
    return _segments(storage, f"{RUNS_ROOT}/", "revision")


def list_countries(storage: Storage) -> list[str]:
    """Every country that has a folder under some revision."""
    countries = set()
    for revision in list_revisions(storage):
        countries.update(_segments(storage, f"{RUNS_ROOT}/{revision}/", "country"))
    return sorted(countries)


def _segments(storage: Storage, prefix: str, what: str) -> list[str]:
    names = []
    for folder in storage.list_prefixes(prefix):
        name = folder[len(prefix) :].rstrip("/")
        try:
            names.append(check_segment(name, what))
        except InvalidRunPath:
            log.warning("ignoring folder %s: not a valid %s", folder, what)
    return names


def list_summary_objects(storage: Storage, country: str) -> list[ObjectInfo]:
    """Every run summary of ``country`` as listed (name, generation, size), across revisions.

    The emulator ignores ``match_glob``, so the listing is filtered here: only
    ``robyn/R/C/T/model_summary.json``, not files deeper in a run's folder.
    """
    found = []
    for revision in list_revisions(storage):
        found.extend(obj for obj in storage.list(f"{RUNS_ROOT}/{revision}/{country}/") if run_of(obj.name) is not None)
    return found


def list_run_summaries(storage: Storage, country: str) -> list[tuple[str, int]]:
    """``(name, generation)`` of every run summary of ``country``, across revisions."""
    return [(obj.name, obj.generation) for obj in list_summary_objects(storage, country)]


def build_from_bucket(
    storage: Storage, country: str, cache: SummaryCache, now: Callable[[], dt.datetime] = utc_now
) -> CountryBuild:
    """``country``'s file as the bucket's run summaries make it now (read through ``cache``), unwritten."""
    summaries = cache.get_many(list_summary_objects(storage, country))
    return build_country_file(country, ((name, s) for (name, _), s in summaries.items()), now())


def read_country_file(
    storage: Storage, country: str, max_bytes: int = Settings.max_country_file_bytes
) -> tuple[Any, int]:
    """The current country file (None if absent, unreadable or over ``max_bytes``) and its generation (0 if absent).

    A file over the limit is not read: the rebuild replaces it, conditioned on this generation.
    Raises PreconditionFailed when the version found vanished before it could be read.
    """
    found = storage.stat(country_summary_name(country))
    if found is None:
        return None, 0
    try:
        data = storage.read_object(found, max_bytes)
    except ObjectTooLarge:  # listed larger, or stored compressed and larger once decoded
        log.warning("country file over %d bytes: replaced unread", max_bytes, extra={"country": country})
        return None, found.generation
    if data is None:
        raise PreconditionFailed(found.name)
    document = parse_summary(data)
    return (document if isinstance(document, dict) else None), found.generation


def _attempt(
    storage: Storage, country: str, cache: SummaryCache, now: Callable[[], dt.datetime], max_file_bytes: int
) -> RebuildResult:
    """One read-list-build-write round; raises PreconditionFailed when another writer went first."""
    current, generation = read_country_file(storage, country, max_file_bytes)  # before listing: see the module doc
    build = build_from_bucket(storage, country, cache, now)
    if current is not None and same_content(current, build.document):
        return RebuildResult(country, "unchanged", generation, current, build.skipped)
    data = encode_country_file(build.document)
    written = storage.write(country_summary_name(country), data, if_generation_match=generation)
    return RebuildResult(country, "written", written, build.document, build.skipped)


def rebuild_country(
    storage: Storage,
    country: str,
    cache: SummaryCache,
    now: Callable[[], dt.datetime] = utc_now,
    max_attempts: int = MAX_ATTEMPTS,
    sleep: Callable[[float], None] = time.sleep,
    max_file_bytes: int = Settings.max_country_file_bytes,
) -> RebuildResult:
    """Bring ``country``'s file up to date with every run summary in the bucket.

    ``max_file_bytes``: the current file is read back only up to this size (see ``read_country_file``).
    Raises InvalidRunPath for a bad country name and RebuildConflict after ``max_attempts`` lost races.
    """
    check_segment(country, "country")
    for attempt in range(1, max_attempts + 1):
        try:
            result = _attempt(storage, country, cache, now, max_file_bytes)
        except PreconditionFailed:
            log.info("country file changed under the rebuild; again", extra={"country": country, "attempt": attempt})
            sleep(CONFLICT_BACKOFF_SECONDS * attempt * (1 + random.random()))
            continue
        metrics.REBUILDS.labels(result=result.result).inc()
        _log_skipped(country, result.skipped)
        return dataclasses.replace(result, attempts=attempt)
    metrics.REBUILDS.labels(result="conflict").inc()
    raise RebuildConflict(f"country file of {country!r} changed on each of {max_attempts} attempts")


def _log_skipped(country: str, skipped: list[Skipped]) -> None:
    """The first MAX_SKIPPED_LOGGED summaries left out by name, then how many by reason."""
    for item in skipped[:MAX_SKIPPED_LOGGED]:
        log.warning("run summary left out: %s", item.reason, extra={"country": country, "object": item.name})
    if len(skipped) > MAX_SKIPPED_LOGGED:
        log.warning(
            "%d run summaries left out in all",
            len(skipped),
            extra={"country": country, "reasons": skipped_reasons(skipped)},
        )


def skipped_reasons(skipped: list[Skipped]) -> dict[str, int]:
    """How many summaries were left out for each reason (reasons are a fixed vocabulary)."""
    return dict(sorted(collections.Counter(item.reason for item in skipped).items()))


@dataclass(frozen=True)
class AggregateReport:
    """The one-shot ``aggregate`` command's results, one per country."""

    results: list[RebuildResult]
    interrupted_by: str | None = None

    def to_dict(self) -> dict[str, Any]:
        return {
            "interrupted_by": self.interrupted_by,
            "countries": [
                {
                    "country": r.country,
                    "runs": r.document["total_runs"],
                    "runs_with_pareto_models": r.document["runs_with_pareto_models"],
                    "best_model_overall": r.document["best_model_overall"],
                    "result": r.result,
                    "generation": r.generation,
                    "skipped": [vars(s) for s in r.skipped[:MAX_SKIPPED_REPORTED]],
                    "skipped_count": len(r.skipped),
                    "skipped_reasons": skipped_reasons(r.skipped),
                }
                for r in self.results
            ],
        }

    def tables(self) -> list[tuple[str, list[str], list[list[Any]]]]:
        columns = ["country", "runs", "with pareto", "best model", "result", "generation"]
        rows = [
            [
                r.country,
                r.document["total_runs"],
                r.document["runs_with_pareto_models"],
                r.best_model,
                r.result,
                r.generation,
            ]
            for r in self.results
        ]
        title = "aggregate" + (f" (interrupted by {self.interrupted_by})" if self.interrupted_by else "")
        tables = [(title, columns, rows)]
        skipped = []
        for r in self.results:
            skipped += [[r.country, s.name, s.reason] for s in r.skipped[:MAX_SKIPPED_REPORTED]]
            if len(r.skipped) > MAX_SKIPPED_REPORTED:
                skipped.append([r.country, f"... and {len(r.skipped) - MAX_SKIPPED_REPORTED} more", ""])
        if skipped:
            tables.append(("run summaries left out", ["country", "object", "reason"], skipped))
        return tables


def aggregate(
    settings: Settings, storage: Storage, country: str | None = None, stop: StopRequest | None = None
) -> AggregateReport:
    """Rebuild every country found under ``robyn/*/`` (or only ``country``) once.

    A ``stop`` request lets the country in hand finish (its write is one compare-and-swap) and
    skips the others; the report lists the countries done.
    """
    cache = SummaryCache(storage, max_bytes=settings.max_summary_bytes)
    countries = [check_segment(country, "country")] if country else list_countries(storage)
    results = []
    for name in countries:
        if stop is not None and stop.requested:
            return AggregateReport(results, stop.name)
        results.append(rebuild_country(storage, name, cache, max_file_bytes=settings.max_country_file_bytes))
        log.info("country file rebuilt", extra={"country": name, "done": len(results), "countries": len(countries)})
    return AggregateReport(results)
