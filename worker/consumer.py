"""One worker process: embedded R, a streaming pull with one run at a time, graceful stop."""

from __future__ import annotations

import concurrent.futures
import logging
import os
import signal
import socket
import threading

from mmm_backfill.bus import Bus
from mmm_backfill.config import Settings
from mmm_backfill.storage import Storage
from worker.handler import Handler, remove_stale_temp_dirs
from worker.rbridge import RSession

log = logging.getLogger(__name__)

#: Seconds a stopping worker waits for the run in hand before giving up on it (it is redelivered).
STOP_GRACE_SECONDS = 600


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
    storage = Storage(settings.project, settings.bucket)
    handler = Handler(settings, storage, bus, session, worker_id())
    ready = threading.Event()
    health = _serve_health(settings, ready)

    def on_message(message) -> None:  # noqa: ANN001 - pubsub Message
        outcome = handler.handle(message.data, dict(message.attributes))
        if outcome.outcome == "retry":
            message.nack()
        else:
            message.ack()

    # One callback thread and one leased message: one run per R process at a time.
    executor = concurrent.futures.ThreadPoolExecutor(max_workers=1, thread_name_prefix="run")
    future = bus.subscribe(settings.request_subscription, on_message, max_messages=1, executor=executor)
    ready.set()
    log.info("worker consuming", extra={"subscription": settings.request_subscription, "worker": handler.worker_id})
    code = _wait(future, stop)
    ready.clear()
    if health is not None:
        health.shutdown()
    bus.close()
    return code


def _wait(future, stop: threading.Event) -> int:  # noqa: ANN001 - StreamingPullFuture
    while not stop.wait(1.0):
        if future.done():
            exc = future.exception()
            log.error("streaming pull ended: %s", exc)
            return 1
    log.info("stopping: no new messages; finishing the run in hand")
    future.cancel()  # stops pulling; with await_callbacks_on_shutdown the run in hand finishes
    try:
        future.result(timeout=STOP_GRACE_SECONDS)
    except (concurrent.futures.CancelledError, concurrent.futures.TimeoutError):
        pass
    except Exception as exc:  # noqa: BLE001 - shutting down anyway
        log.warning("streaming pull closed with %s", exc)
    return 0


def _serve_health(settings: Settings, ready: threading.Event):  # noqa: ANN202
    if not settings.metrics_port:
        return None
    try:
        from mmm_backfill.health import serve
    except ImportError:  # pragma: no cover - health is part of the package
        return None
    return serve(settings.metrics_port, ready=ready.is_set)
