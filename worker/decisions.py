"""What to do with a request that failed: decided from the error's type alone (pure)."""

from __future__ import annotations

import enum

from mmm_backfill.errors import PermanentError


class Decision(enum.Enum):
    #: Publish to the dead-letter topic with the reason, then ack: retrying cannot help.
    DEAD_LETTER = "dead_letter"
    #: Nack: Pub/Sub redelivers with backoff, and dead-letters after max delivery attempts.
    RETRY = "retry"


def decide(exc: BaseException) -> Decision:
    """Permanent errors (bad input) are dead-lettered; anything else may pass on a later try.

    Unexpected exceptions count as retryable on purpose: a bug or an outage must not consume
    a run for good; after the subscription's max delivery attempts Pub/Sub dead-letters it.
    """
    return Decision.DEAD_LETTER if isinstance(exc, PermanentError) else Decision.RETRY


def dead_letter_attributes(exc: BaseException, worker_id: str, attributes: dict[str, str]) -> dict[str, str]:
    """The request's own attributes plus why and where it failed (messages capped at 1 KiB)."""
    reason = getattr(exc, "reason", type(exc).__name__)
    return {
        **attributes,
        "error_class": type(exc).__name__,
        "error_reason": str(reason),
        "error_message": str(exc)[:1024],
        "worker": worker_id,
    }
