"""Settling the requests of a dead worker process on the real emulators: returned at once, crashes counted in R only."""

import os

import pytest

from mmm_backfill.messages import SummaryRequest
from mmm_backfill.runpath import RunPath
from worker.claims import Claim, Claims
from worker.recovery import settle

pytestmark = pytest.mark.integration


def pulled_claim(bus, settings, prefetched: bool) -> Claim:
    msg = SummaryRequest.for_run(settings.bucket, RunPath("r1", "de", "1101_000001"), "bf-test")
    bus.publish_and_wait(settings.request_topic, msg.encode(), msg.attributes())
    (message,) = bus.pull(settings.request_subscription, 1, timeout=10)
    return Claim(os.getpid(), message.data, message.attributes, message.ack_id, msg.run_path, prefetched=prefetched)


def pull_again(bus, settings) -> list:
    for _ in range(10):
        if found := bus.pull(settings.request_subscription, 1, timeout=2):
            return found
    return []


def test_a_request_a_dead_process_held_ahead_goes_back_with_no_crash_counted(settings, bus, topology, tmp_path):
    claims = Claims(str(tmp_path))
    claim = pulled_claim(bus, settings, prefetched=True)
    assert settle(claims, bus, settings, "w", claim) == "returned"
    assert claims.crashes(claim.key) == 0
    assert [m.data for m in pull_again(bus, settings)] == [claim.data]


def test_a_request_a_dead_process_held_in_r_counts_a_crash_and_goes_back(settings, bus, topology, tmp_path):
    claims = Claims(str(tmp_path))
    claim = pulled_claim(bus, settings, prefetched=False)
    assert settle(claims, bus, settings, "w", claim) == "retry"
    assert claims.crashes(claim.key) == 1
    assert [m.data for m in pull_again(bus, settings)] == [claim.data]
