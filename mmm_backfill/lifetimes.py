"""How long things last in a subscription, as plain data, and what ``setup`` changes in an older one (pure)."""

from __future__ import annotations

from dataclasses import dataclass

#: Pub/Sub deletes a subscription after this long without activity unless its expiration policy
#: has no ttl (API reference, Subscription.expiration_policy): 31 days.
DEFAULT_EXPIRY_SECONDS = 31 * 24 * 3600
#: How long Pub/Sub keeps an unacknowledged message when the subscription does not say: 7 days.
DEFAULT_RETENTION_SECONDS = 7 * 24 * 3600
#: The longest message retention Pub/Sub allows a subscription: 31 days (its documented maximum).
MAX_RETENTION_SECONDS = 31 * 24 * 3600


@dataclass(frozen=True)
class Lifetimes:
    """The settings of a subscription that say how long a message, a lease or the subscription lasts.

    ack_deadline_seconds: how long a pulled message stays with its puller before Pub/Sub hands it
        out again, unless the puller extends it (10-600).
    retention_seconds: how long an unacknowledged message is kept after it was published; 0 leaves
        it to Pub/Sub (DEFAULT_RETENTION_SECONDS).
    expires: whether the subscription is deleted after DEFAULT_EXPIRY_SECONDS without activity
        (Pub/Sub's default when no expiration policy is given).
    retry_backoff: whether a nacked message comes back after a backoff (a retry policy) or at once.
    """

    ack_deadline_seconds: int
    retention_seconds: int = 0
    expires: bool = False
    retry_backoff: bool = True


def stale_fields(current: Lifetimes, wanted: Lifetimes) -> list[str]:
    """The fields of ``current`` (Pub/Sub's names, for an update mask) that ``setup`` sets to ``wanted``.

    Only what an older ``setup`` left otherwise is changed: the ack deadline, a retention that
    ``wanted`` names, an expiry (lifted, never set), and a retry policy where none is wanted. Other
    policies stay as they were made (the emulator does not return a retry policy's values).
    """
    stale = []
    if current.ack_deadline_seconds != wanted.ack_deadline_seconds:
        stale.append("ack_deadline_seconds")
    if wanted.retention_seconds and current.retention_seconds != wanted.retention_seconds:
        stale.append("message_retention_duration")
    if current.expires and not wanted.expires:
        stale.append("expiration_policy")
    if current.retry_backoff and not wanted.retry_backoff:
        stale.append("retry_policy")
    return stale


def field_value(field: str, wanted: Lifetimes) -> dict:
    """The part of a Subscription that sets ``field`` to ``wanted`` (no value: the field is cleared)."""
    if field == "ack_deadline_seconds":
        return {field: wanted.ack_deadline_seconds}
    if field == "message_retention_duration":
        return {field: {"seconds": wanted.retention_seconds}}
    if field == "expiration_policy":
        return {field: {}}  # a policy without a ttl: never expires
    return {}
