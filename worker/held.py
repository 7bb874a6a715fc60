"""A request this worker process holds, from its pull to its ack or return: its claim, its lease, its fetch.

The claim is on disk before anything else happens, so a process that dies holding the request is
traced to it (worker/claims.py); the lease is renewed until the request is acked or returned, so no
other process takes it meanwhile (worker/lease.py).
"""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass

from mmm_backfill.bus import Bus, Received
from mmm_backfill.config import Settings
from worker.claims import AHEAD, IN_R, WRITING, Claim, Claims
from worker.fetch import Fetched
from worker.lease import Lease
from worker.recovery import crashed_too_often, give_back, give_up_or_return

log = logging.getLogger(__name__)

#: Longest lease of a request held, renewed while it is. It bounds how long the request of a killed
#: worker waits before redelivery; a shorter ``ack_deadline_seconds`` shortens it.
MAX_LEASE_SECONDS = 60


@dataclass
class Held:
    """One request held: ``at_once`` when it was pulled from a backlog, without waiting for it to arrive."""

    message: Received
    claim: Claim
    lease: Lease
    at_once: bool
    fetched: Fetched | None = None

    def start(self, claims: Claims) -> None:
        """It goes into R now: from here a death of the process counts as a crash of this request."""
        if self.claim.stage != IN_R:
            self.claim = claims.move(self.claim, IN_R)

    def step_out(self, claims: Claims) -> None:
        """R is done with it: from here a death of the process returns it with no crash counted."""
        self.claim = claims.move(self.claim, WRITING)

    def finish(self, bus: Bus, settings: Settings, claims: Claims, retry: bool) -> None:
        """Handled: ack it, or nack it for a later try (``retry``)."""
        self.lease.stop()
        claims.release(self.claim)
        try:
            (bus.nack if retry else bus.ack)(settings.request_subscription, [self.message.ack_id])
        except Exception as exc:  # noqa: BLE001 - the lease lapses and Pub/Sub redelivers; the summary stays single
            log.warning("ack failed: %s", exc, extra={"run_path": self.claim.run_path})

    def give_back(self, bus: Bus, settings: Settings, claims: Claims) -> None:
        """Not handled: back to the subscription at once, files removed, no crash counted."""
        self.lease.stop()
        give_back(bus, settings, self.claim)
        claims.release(self.claim)
        if self.fetched is not None:
            self.fetched.close()


def hold(
    bus: Bus, settings: Settings, claims: Claims, worker_id: str, message: Received, ahead: bool, at_once: bool
) -> Held | None:
    """Claim and lease ``message`` (``ahead``: to be fetched while R works on another).

    None when it already killed ``max_worker_crashes`` processes: it is dead-lettered instead.
    """
    run_path = message.attributes.get("run_path")
    stage = AHEAD if ahead else IN_R
    claim = Claim(os.getpid(), message.data, message.attributes, message.ack_id, run_path, stage=stage)
    crashed = crashed_too_often(claims, settings, claim)
    if crashed is not None:
        give_up_or_return(bus, settings, worker_id, crashed, claim)
        return None
    claims.hold(claim)
    seconds = min(settings.ack_deadline_seconds, MAX_LEASE_SECONDS)
    return Held(message, claim, Lease(bus, settings.request_subscription, message.ack_id, seconds).start(), at_once)
