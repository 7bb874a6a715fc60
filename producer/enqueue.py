"""``mmm-backfill enqueue``: list the bucket by prefix, publish one request per run lacking a summary.

Enqueuing is idempotent by design: a worker writes a summary only if none exists, so running
enqueue twice (or while workers run) costs duplicate work at worst, never a duplicate summary.
With ``refresh``, runs whose summary is legacy or outdated are enqueued too, each request naming
the generation to replace; the worker swaps it only if that version is still there and not current.
Finding no run at all is an error (a mistyped revision must not look like success) unless
``allow_empty``. A ``stop`` request (SIGTERM/SIGINT) ends the listing, or the publishing after the
chunk in hand is confirmed; the report then counts exactly the requests the server confirmed.
"""

from __future__ import annotations

import logging
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

from mmm_backfill import metrics
from mmm_backfill.bus import Bus
from mmm_backfill.config import Settings
from mmm_backfill.errors import BackfillError, TransientError
from mmm_backfill.messages import SummaryRequest, utc_now
from mmm_backfill.runpath import RUNS_ROOT
from mmm_backfill.stopping import StopRequest
from mmm_backfill.storage import ObjectInfo, Storage
from producer.preflight import check_delivery, delivery_problems
from producer.scan import Run, ScanResult, check_filters, listing_prefixes, needs_revisions, revision_names, scan

log = logging.getLogger(__name__)

#: Listed objects between progress updates (one update per object would cost more than the scan).
PROGRESS_EVERY = 500
#: Requests published, then confirmed, at a time; a stop request is honoured between chunks.
PUBLISH_CHUNK = 1000


class NoRunsFound(BackfillError):
    """The listing found no run at all: most often a mistyped revision or country."""

    reason = "no_runs"


class PublishFailed(TransientError):
    """Some requests were not confirmed; enqueue again (it is safe to repeat)."""

    reason = "publish_failed"


@dataclass
class EnqueueReport:
    """What one enqueue found and published (the ``--json`` output)."""

    backfill_id: str
    dry_run: bool
    runs_seen: int = 0
    already_summarised: int = 0
    missing: int = 0
    enqueued: int = 0
    would_enqueue: int = 0
    skipped: int = 0
    skipped_examples: list[str] = field(default_factory=list)
    refresh: bool = False
    states: dict[str, int] = field(default_factory=dict)
    seconds: float = 0.0
    list_calls: int = 0
    publish_seconds: float = 0.0
    publish_per_second: float | None = None
    prefixes: list[str] = field(default_factory=list)
    interrupted_by: str | None = None
    #: What is missing for the requests to be received (a dry run reports it; a real run refuses).
    delivery_problems: list[str] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return dict(vars(self))

    def tables(self) -> list[tuple[str, list[str], list[list[Any]]]]:
        rows: list[list[Any]] = [["runs seen", self.runs_seen], ["already summarised", self.already_summarised]]
        rows += [[f"summary {state}", n] for state, n in self.states.items()] if self.refresh else []
        rows += [
            ["missing", self.missing],
            ["would enqueue" if self.dry_run else "enqueued", self.would_enqueue if self.dry_run else self.enqueued],
            ["skipped names", self.skipped],
            ["storage list calls", self.list_calls],
            ["seconds", round(self.seconds, 2)],
        ]
        if self.publish_per_second is not None:
            rows.append(["requests per second", round(self.publish_per_second, 1)])
        rows.append(["listed", " ".join(self.prefixes)])
        rows.append(["backfill id", self.backfill_id])
        if self.interrupted_by:
            rows.append(["interrupted by", self.interrupted_by])
        rows += [["not deliverable", problem] for problem in self.delivery_problems]
        title = "enqueue" + (" --refresh" if self.refresh else "") + (" (dry run)" if self.dry_run else "")
        tables = [(title, ["", "count"], rows)]
        if self.skipped_examples:
            tables.append(("skipped names (examples)", ["name"], [[n] for n in self.skipped_examples]))
        return tables


def run_prefixes(storage: Storage, revision: str | None, country: str | None) -> list[str]:
    """The narrowest prefixes to list for the filters (a country alone needs the revision folders)."""
    revisions = revision_names(storage.list_prefixes(f"{RUNS_ROOT}/")) if needs_revisions(revision, country) else ()
    return listing_prefixes(revision, country, revisions)


def list_run_objects(storage: Storage, prefixes: list[str]) -> Iterator[ObjectInfo]:
    """Every object (name, generation, metadata) under ``prefixes``: one listing pass per prefix."""
    for prefix in prefixes:
        yield from storage.list(prefix)


def enqueue(
    settings: Settings,
    storage: Storage,
    bus: Bus | None,
    *,
    revision: str | None,
    country: str | None,
    limit: int | None,
    dry_run: bool,
    show_progress: bool,
    refresh: bool = False,
    allow_empty: bool = False,
    stop: StopRequest | None = None,
    backfill_id: str | None = None,
    follow: bool = False,
    on_scanned: Callable[[ScanResult, list[Run]], None] | None = None,
) -> EnqueueReport:
    """Publish a SummaryRequest for each run without a summary (sorted, at most ``limit``).

    With ``refresh``, also for each run whose summary is legacy or outdated (see
    ``mmm_backfill.summary_state``), naming the generation to replace; still listing calls only.

    First checks that the requests will be received (``producer.preflight``; with ``follow``, their
    outcomes too): a real run raises NotDelivered before listing, a dry run reports the problems.
    ``on_scanned(found, runs)`` is called with the scan and the runs to publish, before the first one
    is (``enqueue --wait`` attaches its subscriptions there, so no outcome can be missed).

    Returns once every publish is confirmed; raises PublishFailed when any was not, NoRunsFound when
    the listing found no run (unless ``allow_empty``). ``bus`` may be None in a dry run (nothing is
    checked then). Progress goes to stderr so ``--json`` output on stdout stays clean.
    """
    if bus is None and not dry_run:
        raise ValueError("a bus is required unless dry_run")
    check_filters(revision, country)
    stop = stop or StopRequest()
    started, list_calls_before = time.monotonic(), storage.calls.get("list_page", 0)
    report = EnqueueReport(backfill_id=backfill_id or new_backfill_id(), dry_run=dry_run, refresh=refresh)
    if bus is not None and dry_run:
        report.delivery_problems = delivery_problems(settings, bus, follow)
    elif bus is not None:
        check_delivery(settings, bus, follow)
    with _progress(show_progress) as progress:
        report.prefixes = run_prefixes(storage, revision, country)
        found = _scan(storage, report.prefixes, revision, country, progress, stop)
        report.runs_seen, report.already_summarised = len(found.runs), found.summarised
        report.skipped, report.skipped_examples = found.skipped, found.skipped_examples
        report.list_calls = storage.calls.get("list_page", 0) - list_calls_before
        report.states = found.state_counts()
        report.missing = len(found.missing)
        wanted = found.to_refresh if refresh else [r for r in found.runs if not r.summarised]
        todo = wanted if limit is None else wanted[:limit]
        if on_scanned is not None and not stop.requested:
            on_scanned(found, todo)
        if stop.requested:
            report.interrupted_by = stop.name
        elif not found.runs and not allow_empty:
            raise NoRunsFound(_nothing_found(storage.bucket_name, report.prefixes))
        elif dry_run:
            report.would_enqueue = len(todo)
        elif todo:
            assert bus is not None
            _publish(settings, bus, todo, report, progress, stop)
    report.seconds = time.monotonic() - started
    return report


def new_backfill_id() -> str:
    """A fresh backfill id: 32 hex digits (see ``SummaryRequest`` for what an id may be)."""
    return uuid.uuid4().hex


def _nothing_found(bucket: str, prefixes: list[str]) -> str:
    where = ", ".join(f"gs://{bucket}/{p}" for p in prefixes) or f"gs://{bucket}/{RUNS_ROOT}/ (no revision folder)"
    return f"no run found under {where}; check --revision and --country (--allow-empty accepts this)"


def _publish(
    settings: Settings, bus: Bus, runs: list[Run], report: EnqueueReport, progress: Progress, stop: StopRequest
) -> None:
    """Publish chunk by chunk, each confirmed before the next; count only what was confirmed.

    A run with a summary gets the generation to replace; a missing one a create-only request.
    """
    requested_at = utc_now()
    task = progress.add_task("publishing requests", total=len(runs))
    log.info("publishing requests", extra={"requests": len(runs), "backfill_id": report.backfill_id})
    started = time.monotonic()
    for start in range(0, len(runs), PUBLISH_CHUNK):
        if stop.requested:
            report.interrupted_by = stop.name
            break
        chunk = [
            SummaryRequest.for_run(settings.bucket, run.path, report.backfill_id, requested_at, run.generation)
            for run in runs[start : start + PUBLISH_CHUNK]
        ]
        try:
            ids = bus.publish_many(
                settings.request_topic,
                ((r.encode(), r.attributes()) for r in chunk),
                on_confirmed=lambda n: progress.advance(task, n),
            )
        except Exception as exc:  # noqa: BLE001 - surfaced as one typed error the CLI reports
            raise PublishFailed(f"not every request was confirmed ({exc}); enqueue again, it is safe") from exc
        report.enqueued += len(ids)
        metrics.ENQUEUED.inc(len(ids))
        log.info("requests confirmed", extra={"confirmed": report.enqueued, "requests": len(runs)})
    report.publish_seconds = time.monotonic() - started
    seconds = report.publish_seconds
    report.publish_per_second = report.enqueued / seconds if seconds > 0 else None


def _progress(show: bool) -> Progress:
    """A progress display on stderr; a disabled one when not shown (same calls, no output)."""
    columns = (TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn())
    return Progress(*columns, console=Console(stderr=True), disable=not show, transient=False)


def _scan(
    storage: Storage,
    prefixes: list[str],
    revision: str | None,
    country: str | None,
    progress: Progress,
    stop: StopRequest,
) -> ScanResult:
    """List and scan, counting listed objects on the progress display; a stop request ends the listing."""
    task, listed = progress.add_task("listing objects", total=None), 0

    def names() -> Iterator[ObjectInfo]:
        nonlocal listed
        for obj in list_run_objects(storage, prefixes):
            if stop.requested:
                return
            listed += 1
            if listed % PROGRESS_EVERY == 0:
                progress.update(task, completed=listed)
            yield obj

    found = scan(names(), revision, country)
    progress.update(task, total=listed, completed=listed)
    return found
