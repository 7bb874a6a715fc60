"""Settling the requests of a dead worker process on the real emulators: returned at once, crashes counted in R only."""

import os

import pytest

from mmm_backfill.messages import SummaryRequest
from mmm_backfill.runpath import RunPath
from worker.claims import AHEAD, IN_R, WRITING, Claim, Claims
from worker.recovery import settle

pytestmark = pytest.mark.integration


def pulled_claim(bus, settings, stage: str) -> Claim:
    msg = SummaryRequest.for_run(settings.bucket, RunPath("r1", "de", "1101_000001"), "bf-test")
    bus.publish_and_wait(settings.request_topic, msg.encode(), msg.attributes())
    (message,) = bus.pull(settings.request_subscription, 1, timeout=10)
    return Claim(os.getpid(), message.data, message.attributes, message.ack_id, msg.run_path, stage=stage)


def pull_again(bus, settings) -> list:
    for _ in range(10):
        if found := bus.pull(settings.request_subscription, 1, timeout=2):
            return found
    return []


def settled(bus, settings, tmp_path, stage: str) -> tuple[str, int, bool]:
    """Settle a pulled request as a dead process's claim: (outcome, crashes counted, back in the queue)."""
    claims = Claims(str(tmp_path))
    claim = pulled_claim(bus, settings, stage)
    outcome = settle(claims, bus, settings, "w", claim)
    return outcome, claims.crashes(claim.key), [m.data for m in pull_again(bus, settings)] == [claim.data]


def test_a_request_a_dead_process_held_ahead_goes_back_with_no_crash_counted(settings, bus, topology, tmp_path):
    assert settled(bus, settings, tmp_path, AHEAD) == ("returned", 0, True)


def test_a_request_a_dead_process_was_writing_after_r_goes_back_with_no_crash_counted(
    settings, bus, topology, tmp_path
):
    assert settled(bus, settings, tmp_path, WRITING) == ("returned", 0, True)


def test_a_request_a_dead_process_held_in_r_counts_a_crash_and_goes_back(settings, bus, topology, tmp_path):
    assert settled(bus, settings, tmp_path, IN_R) == ("retry", 1, True)
