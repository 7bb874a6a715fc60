"""The aggregator role: completion events in, coalesced country rebuilds, acks only after the write.

The main thread pulls and queues (``aggregator/intake.py``); one background thread rebuilds. An
event is acked once its country's file is written (or found already up to date), nacked when the
rebuild fails, so an event is never acked for a run missing from the file.
"""

from __future__ import annotations

import functools
import logging
import signal
import threading
import time
from collections.abc import Callable
from typing import Any

from aggregator.cache import SummaryCache
from aggregator.coalesce import Batch, Coalescer
from aggregator.intake import PULL_BATCH, PULL_WAIT_SECONDS, Leases, take_in
from aggregator.rebuild import RebuildResult, rebuild_country
from mmm_backfill import metrics
from mmm_backfill.bus import Bus, Received
from mmm_backfill.config import Settings
from mmm_backfill.storage import Storage

log = logging.getLogger(__name__)

#: Events held at once (flow control). Held events wait for their country's rebuild, so this
#: bounds memory and lets a burst of hundreds collapse into a few rebuilds.
MAX_OUTSTANDING_EVENTS = 1000
#: Seconds a stopping aggregator gives the rebuilds in hand.
STOP_GRACE_SECONDS = 300
#: How often a full aggregator looks again whether it may pull, in seconds.
POLL_SECONDS = 0.5
#: After a failed pull the aggregator pulls again after this pause (seconds), doubling up to the
#: maximum; it gives up (exit 1) after PULL_FAILING_SECONDS of failed pulls.
PULL_ERROR_PAUSE = 1.0
PULL_ERROR_MAX_PAUSE = 30.0
PULL_FAILING_SECONDS = 600.0


class EventQueue:
    """Thread-safe coalescing of pulled events: callbacks offer, the rebuild thread takes.

    Once closed, offers are refused (the caller nacks) and ``take`` hands out what is left,
    windows ignored, then None.
    """

    def __init__(self, window: float, clock: Callable[[], float] = time.monotonic) -> None:
        self._coalescer: Coalescer[Any] = Coalescer(window, clock)
        self._changed = threading.Condition()
        self._closed = False

    def offer(self, country: str, message: Any) -> bool:
        with self._changed:
            if self._closed:
                return False
            self._coalescer.add(country, message)
            self._changed.notify_all()
            return True

    def take(self) -> Batch[Any] | None:
        """Block until a batch is due; None once closed and empty."""
        with self._changed:
            while True:
                batch = self._coalescer.pop_any() if self._closed else self._coalescer.pop_due()
                if batch is not None or self._closed:
                    return batch
                self._changed.wait(self._coalescer.wait_seconds())

    def close(self) -> None:
        with self._changed:
            self._closed = True
            self._changed.notify_all()


def settle(batch: Batch[Received], rebuild: Callable[[str], RebuildResult], leases: Leases) -> bool:
    """Rebuild the batch's country, then ack its events; nack them when the rebuild fails."""
    try:
        result = rebuild(batch.country)
    except Exception:  # noqa: BLE001 - any failure: the events come back and the rebuild is retried
        log.exception("rebuild failed; events returned", extra={"country": batch.country, "events": len(batch.items)})
        metrics.REBUILDS.labels(result="failed").inc()
        metrics.EVENTS.labels(result="retried").inc(len(batch.items))
        leases.nack(batch.items)
        return False
    leases.ack(batch.items)
    metrics.EVENTS.labels(result="applied").inc(len(batch.items))
    log.info(
        "country file %s",
        result.result,
        extra={
            "country": batch.country,
            "events": len(batch.items),
            "runs": result.document.get("total_runs"),
            "generation": result.generation,
        },
    )
    return True


def rebuild_loop(queue: EventQueue, rebuild: Callable[[str], RebuildResult], leases: Leases) -> None:
    """The single rebuild thread: settle batches until the queue is closed and drained."""
    while (batch := queue.take()) is not None:
        settle(batch, rebuild, leases)


def run_aggregator(settings: Settings, stop_event: threading.Event | None = None) -> int:
    """Consume completion events until SIGTERM/SIGINT or ``stop_event``; return the exit code.

    On stop: the pull in hand returns, the events held are rebuilt and acked. Failing pulls (the
    subscription vanished, Pub/Sub restarted) are retried with backoff. Exit 0 after a clean stop,
    1 when pulls keep failing for PULL_FAILING_SECONDS or the rebuild thread died.
    """
    stop = stop_event or threading.Event()
    restore = _install_signal_handlers(stop)
    bus = Bus(settings.project)
    try:
        return _serve(settings, bus, stop)
    finally:
        bus.close()
        restore()


def _serve(settings: Settings, bus: Bus, stop: threading.Event) -> int:
    storage = Storage(settings.project, settings.bucket)
    queue = EventQueue(settings.coalesce_seconds)
    leases = Leases(bus, settings.event_subscription)
    rebuild = functools.partial(
        rebuild_country,
        storage,
        cache=SummaryCache(storage, max_bytes=settings.max_summary_bytes),
        max_file_bytes=settings.max_country_file_bytes,
    )
    rebuilder = threading.Thread(target=rebuild_loop, args=(queue, rebuild, leases), name="rebuild", daemon=True)
    rebuilder.start()
    puller = _Puller(settings, bus, queue, leases)
    health = _serve_health(settings, lambda: rebuilder.is_alive() and puller.healthy and not stop.is_set())
    log.info("aggregator consuming", extra={"subscription": settings.event_subscription})
    code = puller.run(rebuilder, stop)
    log.info("stopping: finishing the rebuilds in hand")
    queue.close()
    rebuilder.join(STOP_GRACE_SECONDS)
    leases.stop()
    if health is not None and hasattr(health, "shutdown"):
        health.shutdown()
    return code


class _Puller:
    """Pulls events while fewer than MAX_OUTSTANDING_EVENTS are held; backs off while pulls fail."""

    def __init__(self, settings: Settings, bus: Bus, queue: EventQueue, leases: Leases) -> None:
        self.settings, self.bus, self.queue, self.leases = settings, bus, queue, leases
        self.failing_since: float | None = None
        self.pause = PULL_ERROR_PAUSE

    @property
    def healthy(self) -> bool:
        return self.failing_since is None

    def run(self, rebuilder: threading.Thread, stop: threading.Event) -> int:
        """Until ``stop``: pull and queue; 1 if pulls keep failing or the rebuild thread ended."""
        while not stop.is_set():
            if not rebuilder.is_alive():
                log.error("rebuild thread ended")
                return 1
            room = MAX_OUTSTANDING_EVENTS - len(self.leases)
            if room <= 0:
                stop.wait(POLL_SECONDS)
                continue
            try:
                received = self.bus.pull(self.settings.event_subscription, min(PULL_BATCH, room), PULL_WAIT_SECONDS)
            except Exception as exc:  # noqa: BLE001 - retried with backoff, bounded below
                if self._failed(exc, stop):
                    return 1
                continue
            self.failing_since, self.pause = None, PULL_ERROR_PAUSE
            take_in(received, self.settings.bucket, self.leases, self.queue.offer)
        return 0

    def _failed(self, exc: Exception, stop: threading.Event) -> bool:
        """Log, wait a growing pause; True once pulls have failed for PULL_FAILING_SECONDS."""
        self.failing_since = self.failing_since or time.monotonic()
        if time.monotonic() - self.failing_since >= PULL_FAILING_SECONDS:
            log.error("pulls keep failing (%s): giving up", exc)
            return True
        log.warning("pull failed: %s; pulling again in %.0fs", exc, self.pause)
        stop.wait(self.pause)
        self.pause = min(self.pause * 2, PULL_ERROR_MAX_PAUSE)
        return False


def _install_signal_handlers(stop: threading.Event) -> Callable[[], None]:
    """SIGTERM/SIGINT set ``stop`` (main thread only); returns a function restoring the old handlers."""
    if threading.current_thread() is not threading.main_thread():
        return lambda: None
    previous = {signum: signal.signal(signum, lambda *_: stop.set()) for signum in (signal.SIGTERM, signal.SIGINT)}

    def restore() -> None:
        for signum, handler in previous.items():
            signal.signal(signum, handler)

    return restore


def _serve_health(settings: Settings, ready: Callable[[], bool]) -> Any:
    if not settings.metrics_port:
        return None
    try:
        from mmm_backfill.health import serve
    except ImportError:
        log.warning("no health server in this build; /metrics not served")
        return None
    return serve(settings.metrics_port, ready=ready)
