import pytest

from mmm_backfill.topology import setup_topology

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
