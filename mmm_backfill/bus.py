"""Message bus on Google Cloud Pub/Sub: the only module that imports google-cloud-pubsub.

``PUBSUB_EMULATOR_HOST`` makes the client talk to the emulator. gRPC is not fork-safe: build a
Bus in each process after any fork (worker processes are spawned, not forked).
"""

from __future__ import annotations

import contextlib
import logging
import os
from collections.abc import Callable, Iterable
from concurrent import futures
from dataclasses import dataclass, field

from google.api_core import exceptions as gexc
from google.cloud import pubsub_v1
from google.protobuf import duration_pb2

from mmm_backfill.errors import EmulatorRefused
from mmm_backfill.lifetimes import Lifetimes, field_value
from mmm_backfill.retry import transient_retry

log = logging.getLogger(__name__)

#: Publisher batching: up to this many messages or bytes per request, or this delay in seconds.
BATCH_MAX_MESSAGES = 500
BATCH_MAX_BYTES = 4 * 1024 * 1024
BATCH_MAX_LATENCY = 0.05
#: Seconds to wait for one publish confirmation.
PUBLISH_TIMEOUT = 60.0
#: The longest the Pub/Sub emulator keeps a message in a subscription (it refuses more).
EMULATOR_MAX_RETENTION_SECONDS = 7 * 24 * 3600
#: How the emulator answers a setting it does not support (INVALID_ARGUMENT), where Pub/Sub accepts it.
EMULATOR_REFUSALS = ("unsupported in the Pub/Sub Emulator", "message_retention_duration out of bounds")


def _emulator_refused(exc: gexc.InvalidArgument) -> bool:
    """True when the emulator refused a setting it lacks (never on Pub/Sub itself)."""
    return bool(os.environ.get("PUBSUB_EMULATOR_HOST")) and any(r in str(exc.message) for r in EMULATOR_REFUSALS)


@dataclass(frozen=True)
class Received:
    """A message pulled synchronously (replay): its body, attributes and ack id."""

    ack_id: str
    message_id: str
    data: bytes
    attributes: dict[str, str] = field(default_factory=dict)
    delivery_attempt: int = 0
    publish_time: float = 0.0  # POSIX seconds, the server's clock


class Bus:
    """Publish, subscribe, pull and manage topics/subscriptions of one project."""

    def __init__(self, project: str) -> None:
        self.project = project
        self.publisher = pubsub_v1.PublisherClient(
            batch_settings=pubsub_v1.types.BatchSettings(
                max_messages=BATCH_MAX_MESSAGES, max_bytes=BATCH_MAX_BYTES, max_latency=BATCH_MAX_LATENCY
            )
        )
        # Single confirmed publishes (events, dead letters) must not wait out the batch latency.
        self.immediate = pubsub_v1.PublisherClient(batch_settings=pubsub_v1.types.BatchSettings(max_messages=1))
        self.subscriber = pubsub_v1.SubscriberClient()

    def topic_path(self, topic: str) -> str:
        return self.publisher.topic_path(self.project, topic)

    def subscription_path(self, subscription: str) -> str:
        return self.subscriber.subscription_path(self.project, subscription)

    # -- publishing -----------------------------------------------------------------------------

    def publish(self, topic: str, data: bytes, attributes: dict[str, str] | None = None) -> futures.Future:
        """Queue one message for batched publishing; the future resolves to its message id."""
        return self.publisher.publish(self.topic_path(topic), data, **(attributes or {}))

    def publish_and_wait(self, topic: str, data: bytes, attributes: dict[str, str] | None = None) -> str:
        """Publish one message and return its id once the server confirmed it."""
        future = self.immediate.publish(self.topic_path(topic), data, **(attributes or {}))
        return future.result(timeout=PUBLISH_TIMEOUT)

    def publish_many(
        self,
        topic: str,
        messages: Iterable[tuple[bytes, dict[str, str]]],
        on_confirmed: Callable[[int], None] | None = None,
    ) -> list[str]:
        """Publish all ``messages`` in batches and wait until every one is confirmed.

        ``on_confirmed(n)`` is called as confirmations arrive (for progress). Raises the first
        publish error after all futures settled, so a caller knows nothing was silently dropped.
        """
        pending = [self.publish(topic, data, attrs) for data, attrs in messages]
        ids: list[str] = []
        errors: list[BaseException] = []
        for future in futures.as_completed(pending, timeout=PUBLISH_TIMEOUT * max(1, len(pending) // 1000)):
            try:
                ids.append(future.result())
            except Exception as exc:  # noqa: BLE001 - collected and re-raised below
                errors.append(exc)
            if on_confirmed:
                on_confirmed(1)
        if errors:
            raise errors[0]
        return ids

    # -- consuming ------------------------------------------------------------------------------

    @transient_retry
    def pull(self, subscription: str, max_messages: int, timeout: float = 10.0) -> list[Received]:
        """Synchronously pull up to ``max_messages`` (fewer, or none, when the backlog is short).

        ``timeout`` is the deadline sent to the server, which answers an empty pull before it. A
        pull the client abandons (interrupted, or a deadline shorter than the server's wait) keeps
        whatever the server hands it leased until the ack deadline, so callers never cut one short.
        """
        try:
            response = self.subscriber.pull(
                request={"subscription": self.subscription_path(subscription), "max_messages": max_messages},
                timeout=timeout,
            )
        except gexc.DeadlineExceeded:
            # Real Pub/Sub answers a pull on an empty subscription by letting the deadline pass.
            return []
        return [
            Received(
                ack_id=m.ack_id,
                message_id=m.message.message_id,
                data=bytes(m.message.data),
                attributes=dict(m.message.attributes),
                delivery_attempt=m.delivery_attempt,
                publish_time=m.message.publish_time.timestamp(),
            )
            for m in response.received_messages
        ]

    @transient_retry
    def ack(self, subscription: str, ack_ids: list[str]) -> None:
        if ack_ids:
            self.subscriber.acknowledge(
                request={"subscription": self.subscription_path(subscription), "ack_ids": ack_ids}
            )

    def nack(self, subscription: str, ack_ids: list[str]) -> None:
        """Make messages available again at once (deadline 0)."""
        self.extend(subscription, ack_ids, 0)

    @transient_retry
    def extend(self, subscription: str, ack_ids: list[str], seconds: int) -> None:
        """Set the ack deadline of pulled messages to ``seconds`` from now (0 releases them)."""
        if ack_ids:
            self.subscriber.modify_ack_deadline(
                request={
                    "subscription": self.subscription_path(subscription),
                    "ack_ids": ack_ids,
                    "ack_deadline_seconds": seconds,
                }
            )

    # -- topology -------------------------------------------------------------------------------

    @transient_retry
    def ensure_topic(self, topic: str) -> bool:
        """Create ``topic`` if missing; True when created."""
        try:
            self.publisher.create_topic(request={"name": self.topic_path(topic)})
            return True
        except gexc.AlreadyExists:
            return False

    @transient_retry
    def ensure_subscription(
        self,
        subscription: str,
        topic: str,
        ack_deadline_seconds: int = 60,
        dead_letter_topic: str | None = None,
        max_delivery_attempts: int = 5,
        min_backoff_seconds: int = 10,
        max_backoff_seconds: int = 600,
        retry_backoff: bool = True,
        retention_seconds: int | None = None,
    ) -> bool:
        """Create ``subscription`` on ``topic`` if missing (with dead-letter and retry policies).

        It never expires (an expiration policy without a ttl). Without ``retry_backoff`` a nacked
        message is redelivered at once (Pub/Sub's default). ``retention_seconds`` keeps unacked
        messages that long instead of Pub/Sub's 7 days; the emulator keeps them at most 7 days.
        """
        request: dict = {
            "name": self.subscription_path(subscription),
            "topic": self.topic_path(topic),
            "ack_deadline_seconds": ack_deadline_seconds,
            "expiration_policy": {},
        }
        if retention_seconds:
            request["message_retention_duration"] = duration_pb2.Duration(seconds=retention_seconds)
        if retry_backoff:
            request["retry_policy"] = {
                "minimum_backoff": duration_pb2.Duration(seconds=min_backoff_seconds),
                "maximum_backoff": duration_pb2.Duration(seconds=max_backoff_seconds),
            }
        if dead_letter_topic:
            request["dead_letter_policy"] = {
                "dead_letter_topic": self.topic_path(dead_letter_topic),
                "max_delivery_attempts": max_delivery_attempts,
            }
        try:
            self._create_subscription(request)
            return True
        except gexc.AlreadyExists:
            return False

    def _create_subscription(self, request: dict) -> None:
        try:
            self.subscriber.create_subscription(request=request)
        except gexc.InvalidArgument as exc:
            if not _emulator_refused(exc) or "message_retention_duration" not in request:
                raise
            log.warning(
                "the Pub/Sub emulator keeps messages at most %d days: %s keeps them that long",
                EMULATOR_MAX_RETENTION_SECONDS // 86400,
                request["name"].rsplit("/", 1)[-1],
            )
            retention = duration_pb2.Duration(seconds=EMULATOR_MAX_RETENTION_SECONDS)
            self.subscriber.create_subscription(request={**request, "message_retention_duration": retention})

    def lifetimes(self, subscription: str) -> Lifetimes:
        """The subscription's ack deadline, retention, expiry and retry policy, as plain data."""
        found = self.get_subscription(subscription)
        # No policy at all is Pub/Sub's default, which expires; the emulator returns none for it.
        expires = "expiration_policy" not in found or found.expiration_policy.ttl.total_seconds() > 0
        return Lifetimes(
            ack_deadline_seconds=found.ack_deadline_seconds,
            retention_seconds=int(found.message_retention_duration.total_seconds()),
            expires=expires,
            retry_backoff="retry_policy" in found,
        )

    @transient_retry
    def set_lifetime(self, subscription: str, field: str, wanted: Lifetimes) -> None:
        """Set ``field`` of the subscription to its value in ``wanted``, in place: its messages stay.

        Raises EmulatorRefused where the emulator does not support the change (an expiry, a
        retention over 7 days), which Pub/Sub itself makes.
        """
        try:
            self.subscriber.update_subscription(
                request={
                    "subscription": {"name": self.subscription_path(subscription), **field_value(field, wanted)},
                    "update_mask": {"paths": [field]},
                }
            )
        except gexc.InvalidArgument as exc:
            if _emulator_refused(exc):
                raise EmulatorRefused(exc.message) from exc
            raise

    @transient_retry
    def get_subscription(self, subscription: str) -> pubsub_v1.types.Subscription:
        return self.subscriber.get_subscription(request={"subscription": self.subscription_path(subscription)})

    @transient_retry
    def topic_subscriptions(self, topic: str) -> list[str] | None:
        """Full paths of the subscriptions attached to ``topic``; None when the topic does not exist.

        The topic is looked up first: the emulator lists no subscriptions for a missing topic
        instead of answering NotFound as Pub/Sub does.
        """
        try:
            self.publisher.get_topic(request={"topic": self.topic_path(topic)})
            return list(self.publisher.list_topic_subscriptions(request={"topic": self.topic_path(topic)}))
        except gexc.NotFound:
            return None

    @transient_retry
    def create_follower(
        self, subscription: str, topic: str, filter_expression: str, ttl_seconds: int, labels: dict[str, str]
    ) -> None:
        """Create a short-lived subscription that only its creator reads (``enqueue --wait``).

        It expires after ``ttl_seconds`` without activity (so a follower killed outright leaves
        nothing behind for long); ``filter_expression`` spares real Pub/Sub delivering what the reader
        would drop (the emulator stores filters without applying them: readers filter too).
        """
        request = {
            "name": self.subscription_path(subscription),
            "topic": self.topic_path(topic),
            "ack_deadline_seconds": 60,
            "filter": filter_expression,
            "labels": labels,
            "expiration_policy": {"ttl": duration_pb2.Duration(seconds=ttl_seconds)},
        }
        with contextlib.suppress(gexc.AlreadyExists):  # a retried create that had succeeded
            self.subscriber.create_subscription(request=request)

    @transient_retry
    def delete_subscription(self, subscription: str) -> bool:
        """Delete ``subscription``; False when it was already gone."""
        try:
            self.subscriber.delete_subscription(request={"subscription": self.subscription_path(subscription)})
            return True
        except gexc.NotFound:
            return False

    def close(self) -> None:
        """Flush pending publishes and close the clients."""
        try:
            self.publisher.stop()
            self.immediate.stop()
        finally:
            self.subscriber.close()
