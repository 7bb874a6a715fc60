"""Progress of a wait: a live bar on a terminal, else one structured log line at a steady interval.

A log line is one JSON object in production (``mmm_backfill.logs``), so Cloud Logging shows each as
one entry, with the fields a dashboard or a person reading a deploy's log needs: done, pending,
dead-lettered, runs per minute and the estimated time left.
"""

from __future__ import annotations

import logging

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

from producer.tracker import DEAD_LETTERED, SUMMARISED, Tracker

log = logging.getLogger(__name__)


class WaitProgress:
    """Context manager; ``show`` after every change or poll, it decides whether anything is printed."""

    def __init__(self, backfill_id: str, live: bool, interval_seconds: float, now: float) -> None:
        self.backfill_id, self.interval = backfill_id, interval_seconds
        self.bar = Progress(
            TextColumn("{task.description}"),
            BarColumn(),
            MofNCompleteColumn(),
            TextColumn("{task.fields[detail]}"),
            TimeElapsedColumn(),
            console=Console(stderr=True),
            disable=not live,
        )
        self.live = live
        self.runs_task = self.bar.add_task("runs settled", total=None, detail="")
        self.files_task: int | None = None
        self.next_line = now + interval_seconds

    def __enter__(self) -> WaitProgress:
        self.bar.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.bar.stop()

    def show(self, tracker: Tracker, files_current: int, files_total: int, now: float, force: bool = False) -> None:
        rate, left = tracker.runs_per_minute(now), tracker.seconds_left(now)
        if self.live:
            detail = f"dead-lettered {tracker.counts[DEAD_LETTERED]}" + (f" · {rate:.0f}/min" if rate else "")
            self.bar.update(self.runs_task, total=len(tracker.runs), completed=tracker.settled, detail=detail)
            if not tracker.pending and files_total:
                if self.files_task is None:
                    self.files_task = self.bar.add_task("country files current", total=files_total, detail="")
                self.bar.update(self.files_task, completed=files_current)
            return
        if not force and now < self.next_line:
            return
        self.next_line = now + self.interval
        log.info(
            "backfill progress",
            extra={
                "backfill_id": self.backfill_id,
                "runs": len(tracker.runs),
                "done": tracker.settled,
                "summarised": tracker.counts[SUMMARISED],
                "dead_lettered": tracker.counts[DEAD_LETTERED],
                "pending": tracker.pending,
                "runs_per_minute": None if rate is None else round(rate, 1),
                "eta_seconds": None if left is None else round(left),
                "country_files_current": files_current,
                "country_files": files_total,
            },
        )
