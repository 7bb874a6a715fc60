"""Before publishing: make sure what ``enqueue`` publishes will be received.

Pub/Sub keeps a message only for the subscriptions its topic has when it is published: with the
workers' subscription gone (deleted, expired after 31 idle days, or never made in this project)
every request is accepted by the topic and dropped, and the publisher is told it succeeded. So
``enqueue`` asks first, and refuses with what is missing. Following a backfill (``--wait``) also
needs the aggregator's subscription (else no country file is ever rebuilt) and the dead-letter topic
(the follower's own subscription on it is how a failed run is seen).

Costs two calls per topic (the topic, then its subscriptions: the emulator lists no subscriptions
for a missing topic where Pub/Sub answers NotFound), whatever the size of the backfill.
"""

from __future__ import annotations

from mmm_backfill.bus import Bus
from mmm_backfill.config import Settings
from mmm_backfill.errors import BackfillError

#: What to run when something is missing.
FIX = "run `mmm-backfill setup` (or `terraform apply`) for this project"


class NotDelivered(BackfillError):
    """A topic or subscription that delivery depends on is missing: publishing would lose requests."""

    reason = "no_subscription"


def delivery_problems(settings: Settings, bus: Bus, follow: bool = False) -> list[str]:
    """What is missing for requests (and, when ``follow``, their outcomes) to reach anyone; empty when nothing."""
    needed = [(settings.request_topic, settings.request_subscription, "the workers'", "every request would be dropped")]
    if follow:
        needed.append(
            (settings.event_topic, settings.event_subscription, "the aggregator's", "no country file would be rebuilt")
        )
        needed.append((settings.dead_letter_topic, None, "", ""))
    return [problem for need in needed if (problem := _missing(settings, bus, *need))]


def check_delivery(settings: Settings, bus: Bus, follow: bool = False) -> None:
    """Raise NotDelivered naming every missing piece (see ``delivery_problems``)."""
    problems = delivery_problems(settings, bus, follow)
    if problems:
        raise NotDelivered("; ".join(problems) + f"; nothing was published: {FIX}")


def _missing(settings: Settings, bus: Bus, topic: str, subscription: str | None, whose: str, effect: str) -> str | None:
    """Why ``subscription`` (or, when None, just ``topic``) is not there to receive, or None."""
    try:
        attached = bus.topic_subscriptions(topic)
    except Exception as exc:  # noqa: BLE001 - most often no pubsub.topics.get on it; said with the cause
        return f"could not look at topic {topic!r} in project {settings.project!r} ({exc})"
    if attached is None:
        return f"topic {topic!r} does not exist in project {settings.project!r}"
    if subscription is None or bus.subscription_path(subscription) in attached:
        return None
    others = ", ".join(name.rsplit("/", 1)[-1] for name in attached) or "none"
    return f"{whose} subscription {subscription!r} is not attached to topic {topic!r} (attached: {others}): {effect}"
