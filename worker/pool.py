"""``mmm-backfill worker --processes N``: N worker processes, each with its own embedded R.

Processes are spawned (not forked): gRPC is not fork-safe and R is embedded per process.
A child that dies is started again (its message comes back to the subscription);
SIGTERM/SIGINT are passed on, and the pool exits once every child has finished its run.
"""

from __future__ import annotations

import contextlib
import logging
import multiprocessing
import signal
import threading
import time
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from mmm_backfill.config import Settings
from mmm_backfill.logs import setup_logging

log = logging.getLogger(__name__)

#: A child that dies sooner than this after starting is restarted only after a pause (seconds).
RESTART_BACKOFF = 5.0


def _child(settings: Settings, index: int, listening) -> None:  # noqa: ANN001 - a multiprocessing Event
    import sys

    # First of all: from here on a stop, even while R is still starting, ends the child cleanly.
    stop = threading.Event()
    for signum in (signal.SIGTERM, signal.SIGINT):
        signal.signal(signum, lambda *_: stop.set())
    listening.set()

    from worker.consumer import consume

    setup_logging(settings.log_format)
    port = settings.metrics_port + index if settings.metrics_port else 0
    sys.exit(consume(settings.replace(metrics_port=port), stop, install_signals=False))


def run_pool(settings: Settings, processes: int, stop: threading.Event | None = None) -> int:
    """Run until stopped; return 0 when every child stopped cleanly."""
    if processes == 1 and stop is None:
        from worker.consumer import consume

        return consume(settings)
    stop = stop or threading.Event()
    if threading.current_thread() is threading.main_thread():
        for signum in (signal.SIGTERM, signal.SIGINT):
            signal.signal(signum, lambda *_: stop.set())
    ctx = multiprocessing.get_context("spawn")
    children = {i: _Child.start(ctx, settings, i) for i in range(processes)}
    survivor = _Survivor(settings)
    try:
        while not stop.wait(0.5):
            for i, child in list(children.items()):
                if child.proc.exitcode is None:
                    continue
                log.warning("worker process %d ended by %s; starting another", child.proc.pid, child.describe())
                survivor.settle_dead_children()
                del children[i]  # settled: it no longer counts at the stop
                if time.monotonic() - child.started < RESTART_BACKOFF and stop.wait(RESTART_BACKOFF):
                    break
                children[i] = _Child.start(ctx, settings, i)
        return _stop_all(children.values())
    finally:
        survivor.close()


@dataclass
class _Child:
    """One worker process; ``listening`` is set once it handles SIGTERM itself (before that it just dies)."""

    proc: multiprocessing.process.BaseProcess
    listening: Any
    started: float

    @classmethod
    def start(cls, ctx, settings: Settings, index: int) -> _Child:  # noqa: ANN001 - multiprocessing context
        listening = ctx.Event()
        proc = ctx.Process(target=_child, args=(settings, index, listening), name=f"mmm-worker-{index}")
        proc.start()
        return cls(proc, listening, time.monotonic())

    def stopped_cleanly(self) -> bool:
        """Exit 0, or ended by our SIGTERM while still starting: it held no request then."""
        code = self.proc.exitcode
        return code == 0 or (code == -signal.SIGTERM and not self.listening.is_set())

    def describe(self) -> str:
        """``-11`` → ``signal SIGSEGV``: the log says how a child died."""
        code = self.proc.exitcode or 0
        if code < 0:
            with contextlib.suppress(ValueError):
                return f"signal {signal.Signals(-code).name}"
        return f"code {code}"


class _Survivor:
    """The pool's own link to Pub/Sub, opened the first time a child dies (clients after the spawn)."""

    def __init__(self, settings: Settings) -> None:
        self.settings, self.bus = settings, None

    def settle_dead_children(self) -> None:
        from mmm_backfill.bus import Bus
        from worker.claims import Claims
        from worker.consumer import worker_id
        from worker.recovery import recover_orphans

        try:
            self.bus = self.bus or Bus(self.settings.project)
            recover_orphans(Claims(), self.bus, self.settings, worker_id())
        except Exception as exc:  # noqa: BLE001 - the next child settles them at its start
            log.warning("could not settle the dead child's request: %s", exc)

    def close(self) -> None:
        if self.bus is not None:
            self.bus.close()


def _stop_all(children: Iterable[_Child]) -> int:
    children = list(children)
    for child in children:
        if child.proc.exitcode is None:
            child.proc.terminate()  # SIGTERM: the child finishes or returns its run
    for child in children:
        child.proc.join()
    log.info("worker pool stopped", extra={"exit_codes": [c.proc.exitcode for c in children]})
    return 0 if all(c.stopped_cleanly() for c in children) else 1
