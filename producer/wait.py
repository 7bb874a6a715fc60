"""``enqueue --wait``: follow one backfill until its runs are summarised or dead-lettered and aggregated.

How it follows, and what that costs at 100,000 runs:

- **Completion events and dead letters, on subscriptions of its own** (``producer.follow``): every
  completion event and dead letter carries the request's ``backfill_id``. Each message is pulled
  once: one pull per 1,000 events on Pub/Sub (100 on the emulator) and an ack per 500, so about
  100 pulls and 200 acks for 100,000 runs on Pub/Sub, however long the backfill takes; an idle
  follower costs two pulls a round. Measured (``python -m bench --sections wait``): 10,000 runs
  followed in 101 pulls and 100 acks on the emulator, 2.7 s in all, against 0.21 s and 11 pages
  for one bare listing of the same runs. On real Pub/Sub the filter on ``backfill_id`` makes
  those the only messages delivered; on the emulator, which stores filters without applying
  them, the follower also reads (and drops) other backfills' messages. Nothing is taken from the
  workers', the aggregator's or the replay subscription.
- **The bucket listing, only when nothing moves** (``stall_seconds``, default 5 minutes): one listing
  of the backfill's prefixes (175 pages for 100,000 runs, the same as ``enqueue`` itself; 10-20 s
  at real Cloud Storage latency) finds runs summarised without an event reaching the follower
  (workers older than the ``backfill_id`` attribute, a Pub/Sub emulator restarted). Polling the
  listing instead of following events would cost those 175 pages every interval, and could never
  see a dead letter.
- **The country files, once every run is settled**: one listing of ``model_summary/`` every few
  seconds and a read of each touched file whose generation moved (``producer.country_check``).

Workers scaled to zero by KEDA or CREMA start only once they see the backlog: nothing here fails for
want of progress. After ``stall_seconds`` without any run settling, a warning says so (and the
listing above runs); only ``timeout`` ends the wait.
"""

from __future__ import annotations

import contextlib
import logging
import sys
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass

from mmm_backfill.bus import Bus
from mmm_backfill.config import Settings
from mmm_backfill.stopping import StopRequest
from mmm_backfill.storage import Storage
from mmm_backfill.summary_state import SummaryState
from producer.country_check import CountryFiles
from producer.enqueue import enqueue, list_run_objects, new_backfill_id
from producer.follow import Completed, Follower, Update
from producer.scan import Run, ScanResult, scan
from producer.tracker import FOUND_IN_LISTING, Tracker
from producer.wait_progress import WaitProgress
from producer.wait_report import BackfillReport, WaitReport

log = logging.getLogger(__name__)

#: Longest a pull waits for the server (each of the two subscriptions, per round).
POLL_SECONDS = 2.0
#: Pause between two checks of the country files once every run is settled.
COUNTRY_CHECK_SECONDS = 2.0


@dataclass(frozen=True)
class WaitLimits:
    """deadline: monotonic time at which the wait gives up (None: never); progress_seconds: between two log
    lines off a terminal; stall_seconds: without any progress before a warning and a listing."""

    deadline: float | None
    progress_seconds: float = 30.0
    stall_seconds: float = 300.0


def wait_for_backfill(
    backfill_id: str,
    tracker: Tracker,
    follower: Follower,
    country_files: CountryFiles,
    summarised_in_listing: Callable[[], Iterable[str]],
    limits: WaitLimits,
    *,
    stop: StopRequest,
    live: bool,
    clock: Callable[[], float] = time.monotonic,
) -> WaitReport:
    """Follow until done, timed out or stopped; the report's ``exit_code`` is the verdict.

    ``summarised_in_listing()`` lists the run paths whose summary is done per the bucket (run on a stall).
    """
    started = clock()
    report = WaitReport(backfill_id, tracker)
    progress = WaitProgress(backfill_id, live, limits.progress_seconds, started)
    last_warning = started
    with progress:
        while True:
            if tracker.pending:
                _apply(tracker, follower.poll(_pull_wait(limits, clock())), clock())
            else:
                report.country_files = country_files.check(tracker.by_country())
                if report.countries_current:
                    break
                stop.event.wait(min(COUNTRY_CHECK_SECONDS, _time_left(limits, clock())))
            now = clock()
            current = sum(c.current for c in report.country_files)
            progress.show(tracker, current, len(report.country_files), now)
            if now - max(tracker.last_change, last_warning) >= limits.stall_seconds:
                last_warning = now
                _stalled(report, summarised_in_listing, now)
            if stop.requested:
                report.interrupted_by = stop.name
                break
            if limits.deadline is not None and now >= limits.deadline:
                report.timed_out = True
                break
        progress.show(tracker, sum(c.current for c in report.country_files), len(report.country_files), clock(), True)
    report.seconds, report.foreign_messages = clock() - started, follower.foreign
    return report


def _apply(tracker: Tracker, updates: list[Update], now: float) -> None:
    for update in updates:
        if isinstance(update, Completed):
            tracker.summarised(update.run_path, update.outcome, update.created_at, now)
        else:
            tracker.dead_lettered(update.run_path, update.reason, update.message, now)


def _stalled(report: WaitReport, summarised_in_listing: Callable[[], Iterable[str]], now: float) -> None:
    """Say that nothing moves, and ask the bucket which runs are done after all."""
    tracker = report.tracker
    report.stall_warnings += 1
    if tracker.pending:
        log.warning(
            "no run has settled for a while: %d pending; workers scaled to zero start once they see the backlog "
            "(check that workers run and pull from the requests subscription)",
            tracker.pending,
            extra={"backfill_id": report.backfill_id, "pending": tracker.pending},
        )
        report.listings += 1
        found = sum(tracker.summarised(path, FOUND_IN_LISTING, None, now) for path in summarised_in_listing())
        if found:
            log.info("runs found summarised in the listing", extra={"found": found, "backfill_id": report.backfill_id})
        return
    lagging = [c.country for c in report.country_files if not c.current]
    log.warning(
        "country files do not hold every summarised run yet: %s (check that the aggregator runs)",
        ", ".join(lagging),
        extra={"backfill_id": report.backfill_id, "countries": lagging},
    )


def _pull_wait(limits: WaitLimits, now: float) -> float:
    return max(0.5, min(POLL_SECONDS, _time_left(limits, now) / 2))


def _time_left(limits: WaitLimits, now: float) -> float:
    return float("inf") if limits.deadline is None else max(0.0, limits.deadline - now)


def enqueue_and_wait(
    settings: Settings,
    storage: Storage,
    bus: Bus,
    *,
    revision: str | None,
    country: str | None,
    limit: int | None,
    refresh: bool,
    allow_empty: bool,
    stop: StopRequest,
    show_progress: bool,
    started: float,
) -> BackfillReport:
    """``enqueue`` with the follower attached before the first request goes out, then the wait.

    The timeout (``settings.wait_timeout_seconds``, 0 for none) counts from ``started`` (monotonic),
    the command's start: a deploy step's limit covers the listing and publishing too.
    """
    backfill_id = new_backfill_id()
    follower, published, current = Follower(settings, bus, backfill_id), [], []
    timeout = settings.wait_timeout_seconds
    limits = WaitLimits(
        started + timeout if timeout > 0 else None, settings.wait_progress_seconds, settings.wait_stall_seconds
    )
    with contextlib.ExitStack() as attached:

        def on_scanned(found: ScanResult, todo: list[Run]) -> None:
            if todo:
                attached.enter_context(follower)
            published.extend(todo)
            current.extend(r.path for r in found.runs if r.state is SummaryState.CURRENT)

        enqueued = enqueue(
            settings,
            storage,
            bus,
            revision=revision,
            country=country,
            limit=limit,
            dry_run=False,
            show_progress=show_progress,
            refresh=refresh,
            allow_empty=allow_empty,
            stop=stop,
            backfill_id=backfill_id,
            follow=True,
            on_scanned=on_scanned,
        )
        tracker = Tracker((run.path for run in published[: enqueued.enqueued]), time.monotonic())
        if stop.requested:
            return BackfillReport(enqueued, WaitReport(backfill_id, tracker, interrupted_by=stop.name))

        def summarised_in_listing() -> list[str]:
            found = scan(list_run_objects(storage, enqueued.prefixes), revision, country)
            done = [r for r in found.runs if (r.state is SummaryState.CURRENT if refresh else r.summarised)]
            return [r.path.prefix for r in done]

        live = show_progress and sys.stderr.isatty()
        files = CountryFiles(storage, already_current=current)
        waited = wait_for_backfill(
            backfill_id, tracker, follower, files, summarised_in_listing, limits, stop=stop, live=live
        )
    return BackfillReport(enqueued, waited)
