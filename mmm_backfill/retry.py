"""One classification of transient failures and one retry policy, used by every role."""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import TypeVar

from tenacity import (
    before_sleep_log,
    retry,
    retry_if_exception,
    stop_after_attempt,
    stop_after_delay,
    wait_exponential_jitter,
)

from mmm_backfill.errors import TransientError

T = TypeVar("T")
log = logging.getLogger(__name__)

#: Attempts of one storage or bus operation before giving up (the message is then nacked).
MAX_ATTEMPTS = 6
#: Upper bound on the time spent retrying one operation, in seconds.
MAX_RETRY_SECONDS = 60.0

_TRANSIENT_HTTP = {408, 429, 500, 502, 503, 504}


def is_transient(exc: BaseException) -> bool:
    """True for failures a later attempt may not meet: 5xx, 429, timeouts, resets, unavailable."""
    if isinstance(exc, TransientError):
        return True
    if isinstance(exc, ConnectionError | TimeoutError):
        return True
    try:
        from google.api_core import exceptions as gexc
        from google.auth.exceptions import TransportError
        from requests import exceptions as rexc
    except ImportError:  # pragma: no cover - these ship with the google clients
        return False
    if isinstance(exc, gexc.GoogleAPICallError):
        code = getattr(exc, "code", None)
        return code in _TRANSIENT_HTTP or isinstance(
            exc, gexc.ServiceUnavailable | gexc.DeadlineExceeded | gexc.InternalServerError | gexc.Aborted
        )
    if isinstance(exc, gexc.RetryError):
        return True
    return isinstance(exc, rexc.ConnectionError | rexc.Timeout | rexc.ChunkedEncodingError | TransportError)


def transient_retry(fn: Callable[..., T]) -> Callable[..., T]:
    """Retry ``fn`` on transient errors: bounded, exponential backoff with jitter, then re-raise."""
    return retry(
        retry=retry_if_exception(is_transient),
        stop=stop_after_attempt(MAX_ATTEMPTS) | stop_after_delay(MAX_RETRY_SECONDS),
        wait=wait_exponential_jitter(multiplier=0.2, max=8.0, jitter=0.5),
        before_sleep=before_sleep_log(log, logging.WARNING),
        reraise=True,
    )(fn)
