"""Requests whose worker died on them or ran out of time: counted, returned, or dead-lettered with why.

The decisions are small and explicit: a request found held by a dead process counts one crash and goes
back to the subscription until it has killed ``max_worker_crashes`` processes, then it is dead-lettered
as ``worker_crashed``; a run past ``max_run_seconds`` is dead-lettered as ``run_timeout`` at once and its
process replaced (R cannot be interrupted safely mid-call); a request a dead process held outside R
(fetched ahead, or written after) goes back at once, with no crash counted. Nothing here is acked before its dead letter
is confirmed, so a failure on the way leaves the request to come back, never lost.
"""

from __future__ import annotations

import contextlib
import logging
import os
import threading
from collections.abc import Callable

from mmm_backfill import metrics
from mmm_backfill.bus import Bus
from mmm_backfill.config import Settings
from mmm_backfill.errors import PermanentError, RunTimeout, WorkerCrashed
from worker.claims import IN_R, Claim, Claims
from worker.handler import publish_dead_letter

log = logging.getLogger(__name__)

#: Exit code of a worker process that gave up a run past the wall-clock limit.
EXIT_RUN_TIMEOUT = 75


def give_up(bus: Bus, settings: Settings, worker_id: str, exc: PermanentError, claim: Claim) -> None:
    """Dead-letter the claimed request with ``exc``'s reason, then ack it (raises if the publish fails)."""
    publish_dead_letter(bus, settings, exc, claim.data, claim.attributes, worker_id)
    metrics.DEAD_LETTERS.labels(exc.reason).inc()
    metrics.MESSAGES.labels("dead_lettered").inc()
    log.error("request dead-lettered: %s", exc, extra={"run_path": claim.run_path, "reason": exc.reason})
    with contextlib.suppress(Exception):  # a lapsed lease: it comes back and is given up again
        bus.ack(settings.request_subscription, [claim.ack_id])


def give_up_or_return(bus: Bus, settings: Settings, worker_id: str, exc: PermanentError, claim: Claim) -> str:
    """``give_up``, or, when the dead letter cannot be published, nack the request: ``dead_lettered`` or ``retry``.

    Nacked, it comes back after the subscription's retry backoff and is given up then, instead of
    waiting out its ack deadline unseen.
    """
    try:
        give_up(bus, settings, worker_id, exc, claim)
        return "dead_lettered"
    except Exception as publish_exc:  # noqa: BLE001 - returned to the queue, not lost
        log.error(
            "dead-letter publish failed: %s; the request goes back to the queue",
            publish_exc,
            extra={"run_path": claim.run_path, "reason": exc.reason},
        )
        with contextlib.suppress(Exception):  # else its ack deadline lapses and Pub/Sub redelivers it
            bus.nack(settings.request_subscription, [claim.ack_id])
        return "retry"


def give_back(bus: Bus, settings: Settings, claim: Claim) -> None:
    """Return a request held outside R to the subscription at once (nack); no crash is counted."""
    log.info(
        "a request held outside R goes back to the queue", extra={"run_path": claim.run_path, "stage": claim.stage}
    )
    with contextlib.suppress(Exception):  # else its lease lapses and Pub/Sub redelivers it
        bus.nack(settings.request_subscription, [claim.ack_id])
    metrics.MESSAGES.labels("returned").inc()


def settle(claims: Claims, bus: Bus, settings: Settings, worker_id: str, claim: Claim) -> str:
    """Decide and act on a request whose process is gone: ``returned``, ``retry`` or ``dead_lettered``."""
    if claim.stage != IN_R:
        give_back(bus, settings, claim)
        return "returned"
    if claim.timed_out:
        give_up(bus, settings, worker_id, RunTimeout(_timeout_message(settings)), claim)
        return "dead_lettered"
    count = claims.record_crash(claim.key)
    if count >= settings.max_worker_crashes:
        give_up(bus, settings, worker_id, WorkerCrashed(_crash_message(count)), claim)
        return "dead_lettered"
    log.error(
        "a worker process died handling this request (%d of %d allowed); it goes back to the queue",
        count,
        settings.max_worker_crashes,
        extra={"run_path": claim.run_path, "reason": WorkerCrashed.reason},
    )
    with contextlib.suppress(Exception):  # else its lease lapses and Pub/Sub redelivers it
        bus.nack(settings.request_subscription, [claim.ack_id])
    metrics.MESSAGES.labels("retry").inc()
    return "retry"


def recover_orphans(claims: Claims, bus: Bus, settings: Settings, worker_id: str) -> int:
    """Settle every request held by a process that is gone; return how many there were."""
    orphans = claims.orphans()
    for claim in orphans:
        try:
            settle(claims, bus, settings, worker_id, claim)
        except Exception as exc:  # noqa: BLE001 - its lease lapses; the crash count stays recorded
            log.warning("could not settle a dead worker's request: %s", exc, extra={"run_path": claim.run_path})
    return len(orphans)


def crashed_too_often(claims: Claims, settings: Settings, claim: Claim) -> WorkerCrashed | None:
    """The error to dead-letter a request with before handling it, when it already killed enough workers."""
    count = claims.crashes(claim.key)
    return WorkerCrashed(_crash_message(count)) if count >= settings.max_worker_crashes else None


class Deadline:
    """Context manager: past ``settings.max_run_seconds`` the request is given up and the process ends.

    The run cannot be stopped from outside its thread (R does not unwind safely), so the process exits
    with EXIT_RUN_TIMEOUT after dead-lettering the request; its pool or supervisor starts a fresh one.
    If the dead letter cannot be published, the claim, marked as timed out, is settled by the next one.
    ``before_exit`` runs just before the exit (the consumer returns a request it fetched ahead).
    """

    def __init__(
        self,
        claims: Claims,
        bus: Bus,
        settings: Settings,
        worker_id: str,
        claim: Claim,
        before_exit: Callable[[], None] = lambda: None,
    ) -> None:
        args = (claims, bus, settings, worker_id, claim, before_exit)
        self._timer = threading.Timer(settings.max_run_seconds, self._expire, args)
        self._timer.daemon = True

    def __enter__(self) -> Deadline:
        self._timer.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._timer.cancel()

    @staticmethod
    def _expire(
        claims: Claims, bus: Bus, settings: Settings, worker_id: str, claim: Claim, before_exit: Callable[[], None]
    ) -> None:
        claim = claims.mark_timed_out(claim)
        try:
            settle(claims, bus, settings, worker_id, claim)
            claims.release(claim)
        except Exception as exc:  # noqa: BLE001 - the marked claim is settled by the next process
            log.error("could not give up the timed-out request: %s", exc, extra={"run_path": claim.run_path})
        with contextlib.suppress(Exception):  # what it leaves is settled by the next process
            before_exit()
        logging.shutdown()
        os._exit(EXIT_RUN_TIMEOUT)


def _timeout_message(settings: Settings) -> str:
    return f"the run held a worker past the limit of {settings.max_run_seconds:g} s; the worker was replaced"


def _crash_message(count: int) -> str:
    return f"handling this request killed {count} worker processes; it is not tried again"
