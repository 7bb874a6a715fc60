import logging

import pytest
from google.cloud.pubsub_v1 import types

from mmm_backfill.bus import EMULATOR_MAX_RETENTION_SECONDS
from mmm_backfill.lifetimes import MAX_RETENTION_SECONDS
from mmm_backfill.stopping import StopRequest
from mmm_backfill.topology import DEAD_LETTER_RETENTION_SECONDS, SetupReport, setup_topology

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


def older_topology(settings, bus) -> None:
    """Topics and subscriptions as the previous ``setup`` made them: no expiration policy (Pub/Sub's
    default: deleted after 31 idle days), a 600 s ack deadline on the workers' one, default retention."""
    s = settings
    for topic in (s.request_topic, s.dead_letter_topic, s.event_topic):
        bus.ensure_topic(topic)
    backoff = {"minimum_backoff": {"seconds": 10}, "maximum_backoff": {"seconds": 600}}
    for name, topic, deadline, extra in (
        (
            s.request_subscription,
            s.request_topic,
            600,
            {
                "retry_policy": backoff,
                "dead_letter_policy": {
                    "dead_letter_topic": bus.topic_path(s.dead_letter_topic),
                    "max_delivery_attempts": 5,
                },
            },
        ),
        (s.dead_letter_subscription, s.dead_letter_topic, 60, {}),
        (s.event_subscription, s.event_topic, 60, {"retry_policy": backoff}),
    ):
        bus.subscriber.create_subscription(
            request={
                "name": bus.subscription_path(name),
                "topic": bus.topic_path(topic),
                "ack_deadline_seconds": deadline,
                **extra,
            }
        )


def subscription_names(settings) -> list[str]:
    return [settings.request_subscription, settings.dead_letter_subscription, settings.event_subscription]


def test_setup_creates_subscriptions_that_never_expire(settings, bus, topology):
    for name in subscription_names(settings):
        found = bus.get_subscription(name)
        assert "expiration_policy" in found and found.expiration_policy.ttl.total_seconds() == 0, name
        assert not bus.lifetimes(name).expires


def test_setup_asks_pubsub_for_subscriptions_that_never_expire_and_dead_letters_kept_31_days(
    settings, recorded_bus, storage
):
    bus, recorder = recorded_bus
    setup_topology(settings, bus, storage)
    created: dict[str, types.Subscription] = {}
    for request in recorder.requests("CreateSubscription", types.Subscription):
        created.setdefault(request.name.rsplit("/", 1)[-1], request)  # the first ask; the emulator's refusal follows
    assert set(created) == set(subscription_names(settings))
    for name, request in created.items():
        assert "expiration_policy" in request and "ttl" not in request.expiration_policy, name
    retention = {n: r.message_retention_duration.total_seconds() for n, r in created.items()}
    assert retention == {
        settings.dead_letter_subscription: 31 * 24 * 3600,
        settings.request_subscription: 0,
        settings.event_subscription: 0,
    }


def test_the_emulator_keeps_dead_letters_its_longest_7_days_where_pubsub_keeps_them_31(settings, bus, topology):
    assert bus.lifetimes(settings.dead_letter_subscription).retention_seconds == EMULATOR_MAX_RETENTION_SECONDS
    assert DEAD_LETTER_RETENTION_SECONDS == MAX_RETENTION_SECONDS == 31 * 24 * 3600


def test_setup_asks_pubsub_to_lift_the_expiry_of_older_subscriptions_and_goes_on_where_the_emulator_refuses(
    settings, recorded_bus, storage, caplog
):
    bus, recorder = recorded_bus
    older_topology(settings, bus)
    assert all(bus.lifetimes(name).expires for name in subscription_names(settings))
    with caplog.at_level(logging.WARNING, logger="mmm_backfill.topology"):
        done = setup_topology(settings, bus, storage)
    lifted = {
        r.subscription.name.rsplit("/", 1)[-1]: r
        for r in recorder.requests("UpdateSubscription", types.UpdateSubscriptionRequest)
        if list(r.update_mask.paths) == ["expiration_policy"]
    }
    assert set(lifted) == set(subscription_names(settings))
    for name, request in lifted.items():
        policy = request.subscription
        assert "expiration_policy" in policy and "ttl" not in policy.expiration_policy, name
    refusals = [r.getMessage() for r in caplog.records if "keeps its expiration_policy" in r.getMessage()]
    assert len(refusals) == 3 and all("emulator" in line and "\n" not in line for line in refusals)
    assert [r.name for r in done if r.kind == "subscription"] == subscription_names(settings)


def test_setup_shortens_the_ack_deadline_of_an_older_workers_subscription_and_keeps_its_requests(
    settings, bus, storage
):
    older_topology(settings, bus)
    bus.publish_and_wait(settings.request_topic, b"a request held over the update")
    states = {r.name: r.state for r in setup_topology(settings, bus, storage)}
    assert states[settings.request_subscription] == "updated"
    assert bus.get_subscription(settings.request_subscription).ack_deadline_seconds == settings.ack_deadline_seconds
    held = bus.pull(settings.request_subscription, 10, timeout=5)
    assert [m.data for m in held] == [b"a request held over the update"]
    again = {r.name: r.state for r in setup_topology(settings, bus, storage)}
    assert again[settings.request_subscription] == "exists"
