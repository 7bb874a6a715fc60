"""One request ahead: while R reads a run, the next request is pulled, claimed, leased and its files fetched.

At cloud latency a run's files take about as long to arrive as R takes to read them, so fetching the
next run meanwhile makes R the bottleneck again. What holds without it holds with it:

- one run in R at a time: this module never touches R; the consumer takes the request when R is free;
- one request ahead at most, and only from a backlog: the consumer asks for one only when the request
  in R was pulled without waiting, and the pull ahead waits at most PULL_AHEAD_SECONDS. When requests
  trickle in, or a backfill ends, a request that an idle process could start now is not held here;
- a death of the process while a request is ahead returns it with no crash counted (its claim is at
  the ``AHEAD`` stage, worker/claims.py), and a stop returns it at once (nack);
- its files count against ``prefetch_max_bytes``: a larger run is held ahead but fetched when taken.
"""

from __future__ import annotations

import logging
import threading

from mmm_backfill.bus import Bus
from mmm_backfill.config import Settings
from worker.claims import Claims
from worker.handler import Handler
from worker.held import Held, hold

log = logging.getLogger(__name__)

#: Longest wait of the pull ahead, in seconds: a request that is not there yet is left to an idle process.
PULL_AHEAD_SECONDS = 1.0
#: How often a request held ahead looks for a stop while it waits for R, in seconds.
STOP_POLL_SECONDS = 0.2


class Prefetcher:
    """Holds at most one request ahead of the one in R, on a thread of its own.

    ``start`` begins the pull and fetch; ``take`` hands the request over once its fetch is over;
    ``give_back`` returns it at once; ``close`` returns it and waits for the thread. A ``stop`` set
    while a request waits here returns it without waiting for R.
    """

    def __init__(self, settings: Settings, bus: Bus, handler: Handler, claims: Claims, stop: threading.Event) -> None:
        self.settings, self.bus, self.handler, self.claims, self.stop = settings, bus, handler, claims, stop
        self._cond = threading.Condition()
        self._held: Held | None = None
        self._busy = False  # a pull ahead, or its fetch, is under way
        self._closed = False
        self._thread: threading.Thread | None = None

    @property
    def held(self) -> Held | None:
        """The request held ahead right now, fetched or not."""
        return self._held

    def start(self) -> None:
        """Pull and fetch the next request in the background, unless one is held or on its way."""
        with self._cond:
            if self._busy or self._held is not None or self._closed:
                return
            self._busy = True
        self._thread = threading.Thread(target=self._run, name="prefetch", daemon=True)
        self._thread.start()

    def take(self) -> Held | None:
        """The request held ahead, once its fetch is over; None when there is none. It is the caller's now."""
        with self._cond:
            while self._busy:
                self._cond.wait()
            held, self._held = self._held, None
            self._cond.notify_all()
        return held

    def give_back(self) -> None:
        """Return the request held ahead to the subscription at once, fetched or not."""
        with self._cond:
            held, self._held = self._held, None
            self._cond.notify_all()
        if held is not None:
            held.give_back(self.bus, self.settings, self.claims)

    def close(self) -> None:
        """Return what is held, refuse anything pulled from now on, and wait for the thread to end."""
        with self._cond:
            self._closed = True
        self.give_back()
        if self._thread is not None:
            self._thread.join()

    def _run(self) -> None:
        held = None
        try:
            held = self._pull()
            with self._cond:
                self._held = held
            if held is not None and not (self.stop.is_set() or self._closed):
                self._fetch(held)
        except Exception as exc:  # noqa: BLE001 - nothing is ahead then; the consumer pulls as usual
            log.warning("fetching ahead failed: %s", exc)
        finally:
            with self._cond:
                self._busy = False
                self._cond.notify_all()
        if held is not None:
            self._wait_for_taker(held)

    def _pull(self) -> Held | None:
        settings = self.settings
        received = self.bus.pull(settings.request_subscription, 1, timeout=PULL_AHEAD_SECONDS)
        for message in received:
            return hold(self.bus, settings, self.claims, self.handler.worker_id, message, ahead=True, at_once=True)
        return None

    def _fetch(self, held: Held) -> None:
        fetched = self.handler.fetch(held.message.data, self.settings.prefetch_max_bytes)
        with self._cond:
            if self._held is held:
                held.fetched = fetched
                return
        fetched.close()  # given back while it was fetched

    def _wait_for_taker(self, held: Held) -> None:
        """Until the consumer takes ``held``; on a stop (or close) first, return it."""
        with self._cond:
            while self._held is held and not (self.stop.is_set() or self._closed):
                self._cond.wait(STOP_POLL_SECONDS)
            mine = self._held is held
            if mine:
                self._held = None
        if mine:
            held.give_back(self.bus, self.settings, self.claims)
