"""Keep a pulled request leased while its run is in work, so no other worker takes it meanwhile."""

from __future__ import annotations

import logging
import threading

from mmm_backfill.bus import Bus

log = logging.getLogger(__name__)


class Lease:
    """Context manager renewing one message's ack deadline every half ``seconds`` until exit.

    seconds: length of each lease (10-600). It bounds how long the request of a killed worker
    waits before Pub/Sub redelivers it. A failed renewal is logged, not raised: at worst the
    request is redelivered and the second worker finds the summary already written.
    """

    def __init__(self, bus: Bus, subscription: str, ack_id: str, seconds: int) -> None:
        self.bus, self.subscription, self.ack_id, self.seconds = bus, subscription, ack_id, seconds
        self._done = threading.Event()
        self._thread = threading.Thread(target=self._renew, name="lease", daemon=True)

    def __enter__(self) -> Lease:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def start(self) -> Lease:
        self._extend()
        self._thread.start()
        return self

    def stop(self) -> None:
        """Stop renewing (the caller acks or nacks); safe to repeat."""
        self._done.set()
        if self._thread.is_alive():
            self._thread.join()

    def _renew(self) -> None:
        while not self._done.wait(self.seconds / 2):
            self._extend()

    def _extend(self) -> None:
        try:
            self.bus.extend(self.subscription, [self.ack_id], self.seconds)
        except Exception as exc:  # noqa: BLE001 - see class docstring
            log.warning("lease renewal failed: %s", exc)
