"""The check before publishing, on the real Pub/Sub emulator: what is missing is named."""

import pytest

from producer.preflight import NotDelivered, check_delivery, delivery_problems

pytestmark = pytest.mark.integration


def test_nothing_is_missing_after_setup(settings, bus, topology):
    assert delivery_problems(settings, bus, follow=True) == []


def test_a_missing_request_topic_is_named(settings, bus):
    (problem,) = delivery_problems(settings, bus)
    assert f"topic '{settings.request_topic}' does not exist" in problem


def test_a_detached_workers_subscription_is_named_with_what_is_attached(settings, bus, topology):
    bus.delete_subscription(settings.request_subscription)
    bus.ensure_subscription("someone-elses", settings.request_topic)
    (problem,) = delivery_problems(settings, bus)
    assert f"the workers' subscription '{settings.request_subscription}' is not attached" in problem
    assert "attached: someone-elses" in problem and "every request would be dropped" in problem


def test_following_also_needs_the_aggregators_subscription(settings, bus, topology):
    bus.delete_subscription(settings.event_subscription)
    assert delivery_problems(settings, bus) == []
    (problem,) = delivery_problems(settings, bus, follow=True)
    assert settings.event_subscription in problem and "no country file would be rebuilt" in problem


def test_the_refusal_says_nothing_was_published_and_how_to_fix_it(settings, bus, topology):
    bus.delete_subscription(settings.request_subscription)
    with pytest.raises(NotDelivered, match="nothing was published: run `mmm-backfill setup`") as caught:
        check_delivery(settings, bus)
    assert caught.value.reason == "no_subscription"


def test_a_follower_that_cannot_attach_its_subscriptions_is_a_typed_error_and_leaves_none(settings, bus, topology):
    from producer.follow import Follower, FollowUnavailable

    bus.publisher.delete_topic(request={"topic": bus.topic_path(settings.dead_letter_topic)})
    with pytest.raises(FollowUnavailable, match="nothing was published"), Follower(settings, bus, "bf1"):
        pass
    assert [s for s in bus.topic_subscriptions(settings.event_topic) if "-wait-" in s] == []
