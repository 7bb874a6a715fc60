"""``mmm-backfill worker --processes N``: N worker processes, each with its own embedded R.

Processes are spawned (not forked): gRPC is not fork-safe and R is embedded per process.
A child that dies is started again (its message comes back to the subscription);
SIGTERM/SIGINT are passed on, and the pool exits once every child has finished its run.
"""

from __future__ import annotations

import logging
import multiprocessing
import signal
import threading
import time

from mmm_backfill.config import Settings
from mmm_backfill.logs import setup_logging

log = logging.getLogger(__name__)

#: A child that dies sooner than this after starting is restarted only after a pause (seconds).
RESTART_BACKOFF = 5.0


def _child(settings: Settings, index: int) -> None:
    import sys

    from worker.consumer import consume

    setup_logging(settings.log_format)
    port = settings.metrics_port + index if settings.metrics_port else 0
    sys.exit(consume(settings.replace(metrics_port=port)))


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
    children = {i: _start(ctx, settings, i) for i in range(processes)}
    started = dict.fromkeys(children, time.monotonic())
    while not stop.wait(0.5):
        for i, proc in list(children.items()):
            if proc.exitcode is not None:
                log.warning("worker process %d exited with %s; starting another", proc.pid, proc.exitcode)
                if time.monotonic() - started[i] < RESTART_BACKOFF:
                    time.sleep(RESTART_BACKOFF)
                children[i], started[i] = _start(ctx, settings, i), time.monotonic()
    return _stop_all(children.values())


def _start(ctx, settings: Settings, index: int):  # noqa: ANN001, ANN202 - multiprocessing context/process
    proc = ctx.Process(target=_child, args=(settings, index), name=f"mmm-worker-{index}")
    proc.start()
    return proc


def _stop_all(children) -> int:  # noqa: ANN001
    for proc in children:
        if proc.exitcode is None:
            proc.terminate()  # SIGTERM: the child finishes or returns its run
    codes = []
    for proc in children:
        proc.join()
        codes.append(proc.exitcode)
    log.info("worker pool stopped", extra={"exit_codes": codes})
    return 0 if all(c == 0 for c in codes) else 1
