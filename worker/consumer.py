"""One worker process: embedded R, pulling one request at a time, graceful stop.

Synchronous pull of one message at a time, not streaming pull: a stream delivers more than its
flow control allows and the client holds the surplus leased, so one process could sit on the
whole backlog while the others idle. Pulling one at a time spreads runs evenly over processes.
"""

from __future__ import annotations

import logging
import os
import signal
import socket
import threading
import time

from mmm_backfill.bus import Bus, Received
from mmm_backfill.config import Settings
from mmm_backfill.storage import Storage
from worker.claims import Claim, Claims
from worker.handler import Handler, remove_stale_temp_dirs
from worker.lease import Lease
from worker.rbridge import RSession
from worker.recovery import Deadline, crashed_too_often, give_up_or_return, recover_orphans

log = logging.getLogger(__name__)

#: Longest run a stop waits for; k8s' termination grace period must exceed it.
STOP_GRACE_SECONDS = 600
#: Longest lease of a request in work, renewed while the run goes on. It bounds how long the
#: request of a killed worker waits before redelivery; a shorter ``ack_deadline_seconds`` shortens it.
MAX_LEASE_SECONDS = 60
#: Seconds one pull waits for a message; also how quickly an idle worker notices a stop.
PULL_WAIT_SECONDS = 5.0
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
    failing_since: float | None = None
    pause = PULL_ERROR_PAUSE
    while not stop.is_set():
        try:
            received = bus.pull(settings.request_subscription, 1, timeout=PULL_WAIT_SECONDS)
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
        for message in received:
            _process(settings, bus, handler, claims, message)
    log.info("worker stopped: the run in hand, if any, finished")
    return 0


def _process(settings: Settings, bus: Bus, handler: Handler, claims: Claims, message: Received) -> None:
    """Handle one request under a claim (so a crash is traced to it), a renewed lease and a deadline."""
    subscription = settings.request_subscription
    claim = Claim(os.getpid(), message.data, message.attributes, message.ack_id, message.attributes.get("run_path"))
    crashed = crashed_too_often(claims, settings, claim)
    if crashed is not None:
        give_up_or_return(bus, settings, handler.worker_id, crashed, claim)
        return
    lease = min(settings.ack_deadline_seconds, MAX_LEASE_SECONDS)
    deadline = Deadline(claims, bus, settings, handler.worker_id, claim)
    with claims.holding(claim), Lease(bus, subscription, message.ack_id, lease), deadline:
        outcome = handler.handle(message.data, message.attributes)
    try:
        (bus.nack if outcome.outcome == "retry" else bus.ack)(subscription, [message.ack_id])
    except Exception as exc:  # noqa: BLE001 - the lease lapses and Pub/Sub redelivers; the summary stays single
        log.warning("ack failed: %s", exc, extra={"run_path": outcome.run_path})


def _serve_health(settings: Settings, ready: threading.Event):  # noqa: ANN202
    if not settings.metrics_port:
        return None
    from mmm_backfill.health import serve

    return serve(settings.metrics_port, ready=ready.is_set)
