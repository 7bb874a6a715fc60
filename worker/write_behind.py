"""Write behind: a run's summary is written, reported and acked on a thread of its own while R reads the next.

At cloud latency the write, the event and the ack are round trips of tens of milliseconds each after
R's work on a run; done by the thread that drives R, they add up to a large share of a real run. R is
done with the request by then: its claim has moved to ``WRITING`` (worker/claims.py), so a crash of the
process during R's next run is not counted against it. One write at a time: ``submit`` first waits
for the one before, so a process holds at most one request past R, and a stop waits for it (``wait``).
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable

log = logging.getLogger(__name__)


class WriteBehind:
    """Runs each submitted job on its own thread, one at a time; inline when ``behind`` is False."""

    def __init__(self, behind: bool) -> None:
        self.behind = behind
        self._thread: threading.Thread | None = None

    def submit(self, job: Callable[[], None]) -> None:
        """Run ``job`` once the previous one ended: in the background, or here when not ``behind``."""
        self.wait()
        if not self.behind:
            job()
            return
        self._thread = threading.Thread(target=_logged, args=(job,), name="write-behind", daemon=True)
        self._thread.start()

    def wait(self) -> None:
        """Until the job in the background, if any, ended."""
        if self._thread is not None:
            self._thread.join()
            self._thread = None


def _logged(job: Callable[[], None]) -> None:
    try:
        job()
    except Exception:  # noqa: BLE001 - its lease lapses and Pub/Sub redelivers it
        log.exception("writing a summary behind failed")
