"""The aggregator role: completion events in, coalesced country rebuilds, acks only after the write.

Callbacks of the streaming pull only decode and queue; one background thread rebuilds. An event is
acked once its country's file is written (or found already up to date), nacked when the rebuild
fails, so an event is never acked for a run missing from the file.
"""

from __future__ import annotations

import concurrent.futures
import logging
import signal
import threading
import time
from collections.abc import Callable
from typing import Any

from aggregator.cache import SummaryCache
from aggregator.coalesce import Batch, Coalescer
from aggregator.rebuild import rebuild_country
from mmm_backfill import metrics
from mmm_backfill.bus import Bus
from mmm_backfill.config import Settings
from mmm_backfill.errors import InvalidMessage
from mmm_backfill.messages import CompletionEvent
from mmm_backfill.storage import Storage

log = logging.getLogger(__name__)

#: Events held at once (flow control). Held events wait for their country's rebuild, so this
#: bounds memory and lets a burst of hundreds collapse into a few rebuilds.
MAX_OUTSTANDING_EVENTS = 1000
#: Seconds a stopping aggregator gives the rebuilds in hand, then the stream's shutdown.
STOP_GRACE_SECONDS = 300
#: How often the main loop looks at the stop flag and the stream, in seconds.
POLL_SECONDS = 0.5
#: A stream that ends on its own is opened again after this pause (seconds), doubling up to the
#: maximum; the aggregator gives up (exit 1) after RESUBSCRIBE_SECONDS without a stream that lasted
#: STREAM_HEALTHY_SECONDS.
RESUBSCRIBE_PAUSE = 1.0
RESUBSCRIBE_MAX_PAUSE = 30.0
RESUBSCRIBE_SECONDS = 600.0
STREAM_HEALTHY_SECONDS = 30.0


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


def settle(batch: Batch[Any], storage: Storage, cache: SummaryCache) -> bool:
    """Rebuild the batch's country, then ack its events; nack them when the rebuild fails."""
    try:
        result = rebuild_country(storage, batch.country, cache)
    except Exception:  # noqa: BLE001 - any failure: the events come back and the rebuild is retried
        log.exception("rebuild failed; events returned", extra={"country": batch.country, "events": len(batch.items)})
        metrics.REBUILDS.labels(result="failed").inc()
        metrics.EVENTS.labels(result="retried").inc(len(batch.items))
        for message in batch.items:
            message.nack()
        return False
    for message in batch.items:
        message.ack()
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


def rebuild_loop(queue: EventQueue, storage: Storage, cache: SummaryCache) -> None:
    """The single rebuild thread: settle batches until the queue is closed and drained."""
    while (batch := queue.take()) is not None:
        settle(batch, storage, cache)


def make_callback(settings: Settings, queue: EventQueue) -> Callable[[Any], None]:
    """The streaming pull's callback: decode, drop what can never be valid, queue the rest."""

    def on_message(message: Any) -> None:
        try:
            event = CompletionEvent.decode(message.data)
        except InvalidMessage as exc:
            _drop(message, "malformed", str(exc), {"message_id": message.message_id})
            return
        extra = {"country": event.country, "run_path": event.run_path}
        if event.bucket != settings.bucket:
            _drop(message, "other_bucket", f"event for bucket {event.bucket!r}", extra)
        elif queue.offer(event.country, message):
            log.debug("event queued", extra=extra)
        else:
            metrics.EVENTS.labels(result="returned").inc()
            message.nack()  # stopping: another aggregator (or the next start) takes it

    return on_message


def _drop(message: Any, result: str, reason: str, extra: dict[str, Any]) -> None:
    """Ack an event that cannot become valid by redelivery, and say why."""
    log.warning("event dropped: %s", reason, extra={**extra, "result": result})
    metrics.EVENTS.labels(result=result).inc()
    message.ack()


def run_aggregator(settings: Settings, stop_event: threading.Event | None = None) -> int:
    """Consume completion events until SIGTERM/SIGINT or ``stop_event``; return the exit code.

    On stop: new events are returned, the events in hand are rebuilt and acked, then the
    stream closes. A stream that ends on its own (the subscription vanished, Pub/Sub restarted) is
    opened again with backoff. Exit 0 after a clean stop, 1 when that keeps failing for
    RESUBSCRIBE_SECONDS or the rebuild thread died.
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
    rebuilder = threading.Thread(
        target=rebuild_loop, args=(queue, storage, SummaryCache(storage)), name="rebuild", daemon=True
    )
    rebuilder.start()
    callback = make_callback(settings, queue)
    stream = _Stream(lambda: bus.subscribe(settings.event_subscription, callback, max_messages=MAX_OUTSTANDING_EVENTS))
    health = _serve_health(settings, lambda: rebuilder.is_alive() and stream.healthy() and not stop.is_set())
    log.info("aggregator consuming", extra={"subscription": settings.event_subscription})
    code = _wait(stream, rebuilder, stop)
    log.info("stopping: returning new events, finishing the rebuilds in hand")
    queue.close()
    rebuilder.join(STOP_GRACE_SECONDS)
    _close_stream(stream.current)
    if health is not None and hasattr(health, "shutdown"):
        health.shutdown()
    return code


class _Stream:
    """The current streaming pull, opened again when it ends on its own (e.g. Pub/Sub restarted)."""

    def __init__(self, open_stream: Callable[[], Any]) -> None:
        self.open, self.current = open_stream, open_stream()

    def healthy(self) -> bool:
        return not self.current.done()


def _wait(stream: _Stream, rebuilder: threading.Thread, stop: threading.Event) -> int:
    """Until ``stop``: reopen a stream that ended (backoff, bounded); 1 if that keeps failing."""
    broken_since: float | None = None
    pause = RESUBSCRIBE_PAUSE
    while not stop.wait(POLL_SECONDS):
        if not rebuilder.is_alive():
            log.error("rebuild thread ended")
            return 1
        if stream.healthy():
            if broken_since is not None and time.monotonic() - broken_since > STREAM_HEALTHY_SECONDS:
                broken_since, pause = None, RESUBSCRIBE_PAUSE
            continue
        broken_since = broken_since or time.monotonic()
        if time.monotonic() - broken_since >= RESUBSCRIBE_SECONDS:
            log.error("streaming pull keeps ending (%s): giving up", stream.current.exception())
            return 1
        log.warning("streaming pull ended: %s; subscribing again in %.0fs", stream.current.exception(), pause)
        if stop.wait(pause):
            break
        stream.current = stream.open()
        pause = min(pause * 2, RESUBSCRIBE_MAX_PAUSE)
    return 0


def _close_stream(stream: Any) -> None:
    """Stop pulling; held-back messages are nacked by the client, acks already made are flushed."""
    stream.cancel()
    try:
        stream.result(timeout=STOP_GRACE_SECONDS)
    except (concurrent.futures.CancelledError, concurrent.futures.TimeoutError):
        pass
    except Exception as exc:  # noqa: BLE001 - shutting down anyway
        log.warning("streaming pull closed with %s", exc)


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
