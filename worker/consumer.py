"""One worker process: embedded R, pulling one request at a time, graceful stop.

Synchronous pull of one message at a time, not streaming pull: a stream delivers more than its
flow control allows and the client holds the surplus leased, so one process could sit on the
whole backlog while the others idle. Pulling one at a time spreads runs evenly over processes.
R reads one run at a time on this thread; with ``prefetch`` on, the next request is fetched ahead
while a backlog lasts (worker/prefetch.py) and the last one's summary is written behind
(worker/write_behind.py), so at cloud latency R, not storage, sets the pace.
"""

from __future__ import annotations

import logging
import os
import signal
import socket
import threading
import time

from mmm_backfill.bus import Bus
from mmm_backfill.config import Settings
from mmm_backfill.storage import Storage
from worker.boundary.rbridge import RSession
from worker.claims import Claims
from worker.handler import Built, Handler, remove_stale_temp_dirs
from worker.held import Held, hold
from worker.prefetch import Prefetcher
from worker.recovery import Deadline, recover_orphans
from worker.write_behind import WriteBehind

log = logging.getLogger(__name__)

#: Longest run a stop waits for; k8s' termination grace period must exceed it.
STOP_GRACE_SECONDS = 600
#: Seconds one pull waits for a message; also how quickly an idle worker notices a stop.
PULL_WAIT_SECONDS = 5.0
#: A pull answered sooner than this (seconds) found a backlog: only then is the next request fetched ahead.
AT_ONCE_SECONDS = 0.5
#: After a failed pull (e.g. the Pub/Sub emulator restarting) the worker pulls again after this
#: pause in seconds, doubling up to the maximum; it gives up (exit 1) after PULL_FAILING_SECONDS
#: of failed pulls.
PULL_ERROR_PAUSE = 1.0
PULL_ERROR_MAX_PAUSE = 30.0
PULL_FAILING_SECONDS = 600.0


def worker_id() -> str:
    return f"{socket.gethostname()}:{os.getpid()}"


def consume(settings: Settings, stop: threading.Event | None = None, install_signals: bool = True) -> int:
    """Pull and handle requests until ``stop`` is set (or SIGTERM/SIGINT); return the exit code.

    Clients are created here, inside the process that uses them (gRPC is not fork-safe).
    """
    stop = stop or threading.Event()
    if install_signals and threading.current_thread() is threading.main_thread():
        for signum in (signal.SIGTERM, signal.SIGINT):
            signal.signal(signum, lambda *_: stop.set())
    removed = remove_stale_temp_dirs()
    if removed:
        log.info("removed %d temp folders of dead workers", removed)
    session = RSession.shared()  # pay R's start-up before taking any message
    bus = Bus(settings.project)
    handler = Handler(settings, Storage(settings.project, settings.bucket), bus, session, worker_id())
    claims = Claims()
    if recover_orphans(claims, bus, settings, handler.worker_id):  # a predecessor in this pod died on a run
        log.info("settled the requests of worker processes that died")
    ready = threading.Event()
    health = _serve_health(settings, ready)
    log.info("worker consuming", extra={"subscription": settings.request_subscription, "worker": handler.worker_id})
    try:
        return _loop(settings, bus, handler, claims, stop, ready)
    finally:
        ready.clear()
        if health is not None:
            health.shutdown()
        bus.close()
        claims.tidy()


def _loop(
    settings: Settings, bus: Bus, handler: Handler, claims: Claims, stop: threading.Event, ready: threading.Event
) -> int:
    """Pull, run, ack, until stopped; a stop lets the run in hand finish. 1 if pulls keep failing."""
    ahead = Prefetcher(settings, bus, handler, claims, stop) if settings.prefetch > 0 else None
    behind = WriteBehind(settings.prefetch > 0)
    failing_since: float | None = None
    pause = PULL_ERROR_PAUSE
    try:
        while not stop.is_set():
            held = ahead.take() if ahead is not None else None
            if held is not None and stop.is_set():  # stopped while its fetch ended: not in hand yet
                held.give_back(bus, settings, claims)
                break
            if held is None:
                try:
                    held = _pull(settings, bus, handler, claims)
                except Exception as exc:  # noqa: BLE001 - the bus already retried; keep trying, bounded
                    ready.clear()
                    failing_since = failing_since or time.monotonic()
                    if time.monotonic() - failing_since >= PULL_FAILING_SECONDS:
                        log.error("pulls failing for %.0fs: giving up (%s)", time.monotonic() - failing_since, exc)
                        return 1
                    log.warning("pull failed: %s; pulling again in %.0fs", exc, pause)
                    stop.wait(pause)
                    pause = min(pause * 2, PULL_ERROR_MAX_PAUSE)
                    continue
                failing_since, pause = None, PULL_ERROR_PAUSE
                ready.set()
            if held is not None:
                _process(settings, bus, handler, claims, held, ahead, behind)
    finally:
        if ahead is not None:
            ahead.close()
        behind.wait()
    log.info("worker stopped: the run in hand, if any, finished")
    return 0


def _pull(settings: Settings, bus: Bus, handler: Handler, claims: Claims) -> Held | None:
    """The next request, claimed and leased; None when none came (or it was given up at once)."""
    started = time.monotonic()
    received = bus.pull(settings.request_subscription, 1, timeout=PULL_WAIT_SECONDS)
    at_once = time.monotonic() - started < AT_ONCE_SECONDS
    for message in received:
        return hold(bus, settings, claims, handler.worker_id, message, ahead=False, at_once=at_once)
    return None


def _process(
    settings: Settings,
    bus: Bus,
    handler: Handler,
    claims: Claims,
    held: Held,
    ahead: Prefetcher | None,
    behind: WriteBehind,
) -> None:
    """Handle one request: its R stage under its claim (so a crash is traced to it) and a deadline,
    then its write, event and ack, behind the next run's R when prefetch is on.

    Its files are fetched first, if they were not fetched ahead; then, from a backlog, the next
    request is fetched while R reads this one.
    """
    held.start(claims)
    give_back = ahead.give_back if ahead else lambda: None
    with Deadline(claims, bus, settings, handler.worker_id, held.claim, give_back):
        fetched = held.fetched
        if fetched is None or fetched.deferred:
            fetched = handler.fetch(held.message.data)
        if ahead is not None and held.at_once:
            ahead.start()
        built = handler.build(held.message.data, fetched)
    held.step_out(claims)
    behind.submit(lambda: _complete(settings, bus, handler, claims, held, built))


def _complete(settings: Settings, bus: Bus, handler: Handler, claims: Claims, held: Held, built: Built) -> None:
    outcome = handler.complete(held.message.data, held.message.attributes, built)
    held.finish(bus, settings, claims, retry=outcome.outcome == "retry")


def _serve_health(settings: Settings, ready: threading.Event):  # noqa: ANN202
    if not settings.metrics_port:
        return None
    from mmm_backfill.health import serve

    return serve(settings.metrics_port, ready=ready.is_set)
