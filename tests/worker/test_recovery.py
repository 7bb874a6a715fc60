"""Settling requests on the real emulators: a dead process's returned at once (crashes counted in R only), a
request given up dead-lettered and acked, or handed back when that fails."""

import os

import pytest

from mmm_backfill.errors import WorkerCrashed
from mmm_backfill.messages import SummaryRequest
from mmm_backfill.runpath import RunPath
from worker.claims import AHEAD, IN_R, WRITING, Claim, Claims
from worker.recovery import give_up_or_return, settle

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


def crashed_claim(bus, settings) -> Claim:
    """Publish one request and pull it, as a worker would before handling it."""
    bus.publish_and_wait(settings.request_topic, b"a request that crashed workers", {"run_path": "robyn/r1/de/1"})
    (message,) = bus.pull(settings.request_subscription, 1, timeout=5)
    return Claim(1, message.data, message.attributes, message.ack_id, "robyn/r1/de/1")


def test_a_request_given_up_is_dead_lettered_and_leaves_the_queue(settings, bus, topology):
    claim = crashed_claim(bus, settings)
    assert give_up_or_return(bus, settings, "w1", WorkerCrashed("killed 2 workers"), claim) == "dead_lettered"
    (letter,) = bus.pull(settings.dead_letter_subscription, 1, timeout=5)
    assert letter.attributes["error_reason"] == "worker_crashed"
    assert bus.pull(settings.request_subscription, 1, timeout=3) == []


def test_a_request_whose_dead_letter_cannot_be_published_is_handed_back_before_its_ack_deadline(
    settings, bus, topology
):
    claim = crashed_claim(bus, settings)
    bus.publisher.delete_topic(request={"topic": bus.topic_path(settings.dead_letter_topic)})
    assert give_up_or_return(bus, settings, "w1", WorkerCrashed("killed 2 workers"), claim) == "retry"
    # Nacked: back after the retry backoff (1-2 s here), well inside the 30 s ack deadline it would wait out.
    back = []
    for _ in range(3):
        back = back or bus.pull(settings.request_subscription, 1, timeout=5)
    assert [m.data for m in back] == [claim.data]
    assert bus.get_subscription(settings.request_subscription).ack_deadline_seconds == 30
