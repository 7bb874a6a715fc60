"""``mmm-backfill enqueue``: list the bucket by prefix, publish one request per run lacking a summary.

Enqueuing is idempotent by design: a worker writes a summary only if none exists, so running
enqueue twice (or while workers run) costs duplicate work at worst, never a duplicate summary.
With ``refresh``, runs whose summary is legacy or outdated are enqueued too, each request naming
the generation to replace; the worker swaps it only if that version is still there and not current.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

from mmm_backfill import metrics
from mmm_backfill.bus import Bus
from mmm_backfill.config import Settings
from mmm_backfill.errors import TransientError
from mmm_backfill.messages import SummaryRequest, utc_now
from mmm_backfill.runpath import RUNS_ROOT
from mmm_backfill.storage import ObjectInfo, Storage
from producer.scan import Run, ScanResult, check_filters, listing_prefixes, needs_revisions, revision_names, scan

#: Listed objects between progress updates (one update per object would cost more than the scan).
PROGRESS_EVERY = 500


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
        rows.append(["backfill id", self.backfill_id])
        title = "enqueue" + (" --refresh" if self.refresh else "") + (" (dry run)" if self.dry_run else "")
        tables = [(title, ["", "count"], rows)]
        if self.skipped_examples:
            tables.append(("skipped names (examples)", ["name"], [[n] for n in self.skipped_examples]))
        return tables


def list_run_objects(storage: Storage, revision: str | None, country: str | None) -> Iterator[ObjectInfo]:
    """Every object (name, generation, metadata) under the narrowest prefixes for the filters:
    one listing pass per prefix."""
    revisions = revision_names(storage.list_prefixes(f"{RUNS_ROOT}/")) if needs_revisions(revision, country) else ()
    for prefix in listing_prefixes(revision, country, revisions):
        yield from storage.list(prefix)


def list_run_names(storage: Storage, revision: str | None, country: str | None) -> Iterator[str]:
    """Every object name under the narrowest prefixes for the filters."""
    for obj in list_run_objects(storage, revision, country):
        yield obj.name


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
) -> EnqueueReport:
    """Publish a SummaryRequest for each run without a summary (sorted, at most ``limit``).

    With ``refresh``, also for each run whose summary is legacy or outdated (see
    ``mmm_backfill.summary_state``), naming the generation to replace; still listing calls only.

    Returns once every publish is confirmed; raises PublishFailed when any was not. ``bus`` may be
    None in a dry run. Progress goes to stderr so ``--json`` output on stdout stays clean.
    """
    if bus is None and not dry_run:
        raise ValueError("a bus is required unless dry_run")
    check_filters(revision, country)
    started, list_calls_before = time.monotonic(), storage.calls.get("list_page", 0)
    report = EnqueueReport(backfill_id=uuid.uuid4().hex, dry_run=dry_run, refresh=refresh)
    with _progress(show_progress) as progress:
        found = _scan(storage, revision, country, progress)
        report.runs_seen, report.already_summarised = len(found.runs), found.summarised
        report.skipped, report.skipped_examples = found.skipped, found.skipped_examples
        report.list_calls = storage.calls.get("list_page", 0) - list_calls_before
        report.states = found.state_counts()
        report.missing = len(found.missing)
        wanted = found.to_refresh if refresh else [r for r in found.runs if not r.summarised]
        todo = wanted if limit is None else wanted[:limit]
        if dry_run:
            report.would_enqueue = len(todo)
        elif todo:
            assert bus is not None
            _publish(settings, bus, todo, report, progress)
    report.seconds = time.monotonic() - started
    return report


def _publish(settings: Settings, bus: Bus, runs: list[Run], report: EnqueueReport, progress: Progress) -> None:
    """Publish in batches and wait for every confirmation; count only what was confirmed.

    A run with a summary gets the generation to replace; a missing one a create-only request.
    """
    requested_at = utc_now()
    requests = (
        SummaryRequest.for_run(settings.bucket, run.path, report.backfill_id, requested_at, run.generation)
        for run in runs
    )
    task = progress.add_task("publishing requests", total=len(runs))
    started = time.monotonic()
    try:
        ids = bus.publish_many(
            settings.request_topic,
            ((r.encode(), r.attributes()) for r in requests),
            on_confirmed=lambda n: progress.advance(task, n),
        )
    except Exception as exc:  # noqa: BLE001 - surfaced as one typed error the CLI reports
        raise PublishFailed(f"not every request was confirmed ({exc}); enqueue again, it is safe") from exc
    report.publish_seconds = time.monotonic() - started
    report.enqueued = len(ids)
    report.publish_per_second = len(ids) / report.publish_seconds if report.publish_seconds > 0 else None
    metrics.ENQUEUED.inc(len(ids))


def _progress(show: bool) -> Progress:
    """A progress display on stderr; a disabled one when not shown (same calls, no output)."""
    columns = (TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn())
    return Progress(*columns, console=Console(stderr=True), disable=not show, transient=False)


def _scan(storage: Storage, revision: str | None, country: str | None, progress: Progress) -> ScanResult:
    """List and scan, counting listed objects on the progress display."""
    task, listed = progress.add_task("listing objects", total=None), 0

    def names() -> Iterator[ObjectInfo]:
        nonlocal listed
        for obj in list_run_objects(storage, revision, country):
            listed += 1
            if listed % PROGRESS_EVERY == 0:
                progress.update(task, completed=listed)
            yield obj

    found = scan(names(), revision, country)
    progress.update(task, total=listed, completed=listed)
    return found
