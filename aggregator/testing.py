"""Run the aggregator in a thread of the current process, for tests that start and stop it at will."""

from __future__ import annotations

import threading

from aggregator.service import run_aggregator
from mmm_backfill.config import Settings


class RunningAggregator:
    """``run_aggregator`` in a daemon thread with its own stop event; ``stop()`` returns the exit code."""

    def __init__(self, settings: Settings) -> None:
        self.stop_event = threading.Event()
        self.result: dict[str, int] = {}
        self.thread = threading.Thread(
            target=lambda: self.result.update(code=run_aggregator(settings, self.stop_event)), daemon=True
        )
        self.thread.start()

    def stop(self, timeout: float = 60.0) -> int | None:
        self.stop_event.set()
        self.thread.join(timeout)
        return self.result.get("code")
