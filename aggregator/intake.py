"""How the aggregator takes completion events in: synchronous pulls, leases kept, acks in bulk.

Synchronous pull, not streaming pull. A streaming pull that ends (a stop, a restart) can leave the
server dispatching to the closed stream: on the Pub/Sub emulator, events published after an
aggregator restarted went to its predecessor's closed stream and sat leased, so the new one
received none for minutes. A synchronous pull is never abandoned (the server answers before the
deadline sent with it), so events waiting when an aggregator starts are its first pull.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Iterable

from mmm_backfill import metrics
from mmm_backfill.bus import Bus, Received
from mmm_backfill.errors import InvalidMessage
from mmm_backfill.messages import CompletionEvent

log = logging.getLogger(__name__)

#: Messages asked for per pull (Pub/Sub's maximum).
PULL_BATCH = 1000
#: Deadline of one pull in seconds; an idle aggregator notices a stop within it.
PULL_WAIT_SECONDS = 5.0
#: Lease of a held event in seconds, renewed every third of it while the event waits or is rebuilt.
LEASE_SECONDS = 60
#: Ack ids per acknowledge or modify request.
ACK_CHUNK = 1000


def chunks(items: list[str], size: int = ACK_CHUNK) -> Iterable[list[str]]:
    return (items[start : start + size] for start in range(0, len(items), size))


class Leases:
    """The events held (queued or in a rebuild): their leases are renewed until they are acked or nacked."""

    def __init__(self, bus: Bus, subscription: str) -> None:
        self.bus, self.subscription = bus, subscription
        self._held: set[str] = set()
        self._lock = threading.Lock()
        self._done = threading.Event()
        self._thread = threading.Thread(target=self._renew, name="event-leases", daemon=True)
        self._thread.start()

    def __len__(self) -> int:
        with self._lock:
            return len(self._held)

    def hold(self, ack_id: str) -> None:
        with self._lock:
            self._held.add(ack_id)

    def ack(self, messages: list[Received]) -> None:
        self._settle(messages, lambda ids: self.bus.ack(self.subscription, ids))

    def nack(self, messages: list[Received]) -> None:
        self._settle(messages, lambda ids: self.bus.nack(self.subscription, ids))

    def stop(self) -> None:
        self._done.set()
        self._thread.join()

    def _settle(self, messages: list[Received], send: Callable[[list[str]], None]) -> None:
        ids = [m.ack_id for m in messages]
        with self._lock:
            self._held.difference_update(ids)
        try:
            for chunk in chunks(ids):
                send(chunk)
        except Exception as exc:  # noqa: BLE001 - only means a redelivery, and a redelivered event is harmless
            log.warning("could not settle %d events (they come back): %s", len(ids), exc)

    def _renew(self) -> None:
        while not self._done.wait(LEASE_SECONDS / 3):
            with self._lock:
                ids = list(self._held)
            try:
                for chunk in chunks(ids):
                    self.bus.extend(self.subscription, chunk, LEASE_SECONDS)
            except Exception as exc:  # noqa: BLE001 - at worst an event is redelivered and applied again
                log.warning("event lease renewal failed: %s", exc)


def take_in(received: list[Received], bucket: str, leases: Leases, offer: Callable[[str, Received], bool]) -> None:
    """Queue each pulled event under its country; drop (ack) what can never be valid, and say why."""
    for message in received:
        try:
            event = CompletionEvent.decode(message.data)
        except InvalidMessage as exc:
            _drop(leases, message, "malformed", str(exc), {"message_id": message.message_id})
            continue
        extra = {"country": event.country, "run_path": event.run_path}
        if event.bucket != bucket:
            _drop(leases, message, "other_bucket", f"event for bucket {event.bucket!r}", extra)
            continue
        leases.hold(message.ack_id)
        if offer(event.country, message):
            log.debug("event queued", extra=extra)
        else:
            metrics.EVENTS.labels(result="returned").inc()
            leases.nack([message])  # stopping: another aggregator (or the next start) takes it


def _drop(leases: Leases, message: Received, result: str, reason: str, extra: dict) -> None:
    log.warning("event dropped: %s", reason, extra={**extra, "result": result})
    metrics.EVENTS.labels(result=result).inc()
    leases.ack([message])
