"""Giving up a request on the real emulators: dead-lettered and acked, or handed back when that fails."""

import pytest

from mmm_backfill.errors import WorkerCrashed
from worker.claims import Claim
from worker.recovery import give_up_or_return

pytestmark = pytest.mark.integration


def pulled_claim(bus, settings) -> Claim:
    """Publish one request and pull it, as a worker would before handling it."""
    bus.publish_and_wait(settings.request_topic, b"a request that crashed workers", {"run_path": "robyn/r1/de/1"})
    (message,) = bus.pull(settings.request_subscription, 1, timeout=5)
    return Claim(1, message.data, message.attributes, message.ack_id, "robyn/r1/de/1")


def test_a_request_given_up_is_dead_lettered_and_leaves_the_queue(settings, bus, topology):
    claim = pulled_claim(bus, settings)
    assert give_up_or_return(bus, settings, "w1", WorkerCrashed("killed 2 workers"), claim) == "dead_lettered"
    (letter,) = bus.pull(settings.dead_letter_subscription, 1, timeout=5)
    assert letter.attributes["error_reason"] == "worker_crashed"
    assert bus.pull(settings.request_subscription, 1, timeout=3) == []


def test_a_request_whose_dead_letter_cannot_be_published_is_handed_back_before_its_ack_deadline(
    settings, bus, topology
):
    claim = pulled_claim(bus, settings)
    bus.publisher.delete_topic(request={"topic": bus.topic_path(settings.dead_letter_topic)})
    assert give_up_or_return(bus, settings, "w1", WorkerCrashed("killed 2 workers"), claim) == "retry"
    # Nacked: back after the retry backoff (1-2 s here), well inside the 30 s ack deadline it would wait out.
    back = []
    for _ in range(3):
        back = back or bus.pull(settings.request_subscription, 1, timeout=5)
    assert [m.data for m in back] == [claim.data]
    assert bus.get_subscription(settings.request_subscription).ack_deadline_seconds == 30
