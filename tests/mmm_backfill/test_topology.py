import pytest

from mmm_backfill.stopping import StopRequest
from mmm_backfill.topology import SetupReport, setup_topology

pytestmark = pytest.mark.integration


def test_setup_creates_every_topic_and_subscription_once(settings, bus, storage):
    first = setup_topology(settings, bus, storage)
    assert all(r.created for r in first if r.kind != "bucket")
    second = setup_topology(settings, bus, storage)
    assert not any(r.created for r in second)
    names = {(r.kind, r.name) for r in second}
    assert ("subscription", "summary-requests-workers") in names
    assert ("topic", "summary-requests-dead") in names


def test_worker_subscription_has_dead_letter_policy(settings, bus, topology):
    sub = bus.get_subscription(settings.request_subscription)
    assert sub.dead_letter_policy.dead_letter_topic.endswith("/topics/summary-requests-dead")
    assert sub.dead_letter_policy.max_delivery_attempts == 5
    assert sub.ack_deadline_seconds == settings.ack_deadline_seconds


def test_the_replay_subscription_has_no_retry_policy_so_a_hand_back_is_seen_at_once(settings, bus, topology):
    assert "retry_policy" not in bus.get_subscription(settings.dead_letter_subscription)


def test_setup_removes_the_retry_policy_of_an_existing_replay_subscription(settings, bus, storage):
    bus.ensure_topic(settings.dead_letter_topic)
    bus.ensure_subscription(settings.dead_letter_subscription, settings.dead_letter_topic, retry_backoff=True)
    assert "retry_policy" in bus.get_subscription(settings.dead_letter_subscription)
    states = {r.name: r.state for r in setup_topology(settings, bus, storage)}
    assert states[settings.dead_letter_subscription] == "updated"
    assert "retry_policy" not in bus.get_subscription(settings.dead_letter_subscription)
    again = {r.name: r.state for r in setup_topology(settings, bus, storage)}
    assert again[settings.dead_letter_subscription] == "exists"


def test_a_stop_request_ends_setup_between_two_resources(settings, bus, storage):
    stop = StopRequest()
    stop.request()
    assert setup_topology(settings, bus, storage, stop) == []
    assert SetupReport([], stop.name).to_dict()["interrupted_by"] == "stop"
