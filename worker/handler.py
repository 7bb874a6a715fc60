"""Handle one summary request: validate, skip if done, download (worker/fetch.py), extract, write once, report."""

from __future__ import annotations

import json
import logging
import os
import shutil
import tempfile
import time
from dataclasses import dataclass

from mmm_backfill import metrics
from mmm_backfill.bus import Bus
from mmm_backfill.config import Settings
from mmm_backfill.messages import (
    BACKFILL_ID_ATTRIBUTE,
    SUMMARY_CREATED_AT_ATTRIBUTE,
    CompletionEvent,
    SummaryRequest,
    utc_now,
)
from mmm_backfill.storage import PreconditionFailed, Storage
from mmm_backfill.summary_state import summary_metadata
from worker.boundary.rbridge import R_TEMP_PREFIX, RSession
from worker.decisions import Decision, dead_letter_attributes, decide
from worker.fetch import TEMP_PREFIX, Fetched, RunFetcher
from worker.replace import swap_in
from worker.summarize.extract import summarize_files

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Outcome:
    """What became of one request: created, replaced, already_existed, dead_lettered or retry."""

    outcome: str
    run_path: str | None = None
    reason: str | None = None


@dataclass
class Built:
    """A request past R: the summary to write (``body``), or nothing to write (``fetched.done``), or ``error``."""

    fetched: Fetched
    body: bytes | None = None
    error: Exception | None = None
    seconds: float = 0.0
    #: ``created_at`` of the summary in ``body``, for the completion event's attribute.
    created_at: str | None = None


class Handler:
    """Processes requests one at a time in this process; the caller acks or nacks by the outcome.

    A request goes through three stages: ``fetch`` (storage only, any thread: the summary's state and
    the run's files on disk), ``build`` (R, on the one thread that handles requests) and ``complete``
    (any thread: the summary written once, the event, or the failure classified). ``handle`` runs all three.
    """

    def __init__(self, settings: Settings, storage: Storage, bus: Bus, session: RSession, worker_id: str) -> None:
        self.settings, self.storage, self.bus, self.session = settings, storage, bus, session
        self.worker_id = worker_id
        self.fetcher = RunFetcher(settings, storage)

    def handle(self, data: bytes, attributes: dict[str, str], fetched: Fetched | None = None) -> Outcome:
        """Never raises: every failure becomes a dead letter or a retry, counted and logged."""
        return self.complete(data, attributes, self.build(data, fetched))

    def fetch(self, data: bytes, max_bytes: int | None = None) -> Fetched:
        """The storage stage of a request (never raises; see ``RunFetcher.fetch``)."""
        return self.fetcher.fetch(data, max_bytes)

    def build(self, data: bytes, fetched: Fetched | None = None) -> Built:
        """The R stage: the summary's bytes from the run's files, which are removed after. Never raises.

        ``fetched``: the request's fetch, made ahead; fetched now when None (or deferred).
        """
        started = time.monotonic()
        metrics.IN_FLIGHT.inc()
        if fetched is None or fetched.deferred:
            fetched = self.fetch(data)
        built = Built(fetched)
        try:
            request = fetched.ready()
            if fetched.done is None:
                summary = summarize_files(request.run, fetched.files, self.session, self.settings.rds_limits)
                built.body = json.dumps(summary, indent=2, allow_nan=False).encode()
                built.created_at = summary["created_at"]
        except Exception as exc:  # noqa: BLE001 - classified by ``complete``
            built.error = exc
        finally:
            fetched.close()
        built.seconds = fetched.seconds + time.monotonic() - started  # the fetch ahead, not its wait for R
        return built

    def complete(self, data: bytes, attributes: dict[str, str], built: Built) -> Outcome:
        """The summary written once and its event published, or the failure dead-lettered or left to a retry.

        Needs no R: runs on any thread. Never raises.
        """
        started = time.monotonic()
        request = built.fetched.request
        run_path = request.run_path if request is not None else attributes.get("run_path")
        try:
            if built.error is not None:
                raise built.error
            request = built.fetched.ready()
            outcome, generation = built.fetched.done or self._write(request, built.body, built.fetched)
            seconds = built.seconds + time.monotonic() - started
            written = built.created_at if outcome in ("created", "replaced") else None
            self._publish_event(request, outcome, generation, seconds, written)
            result = Outcome(outcome, run_path)
        except Exception as exc:  # noqa: BLE001 - classified below, never lost
            result = self._fail(exc, data, attributes, run_path)
        finally:
            metrics.IN_FLIGHT.dec()
        seconds = built.seconds + time.monotonic() - started
        metrics.RUN_SECONDS.observe(seconds)
        metrics.MESSAGES.labels(result.outcome).inc()
        log.info(
            "request %s",
            result.outcome,
            extra={"run_path": run_path, "reason": result.reason, "seconds": round(seconds, 3)},
        )
        return result

    def _write(self, request: SummaryRequest, body: bytes | None, fetched: Fetched) -> tuple[str, int]:
        """Write the new summary once: create-only for a backfill, compare-and-swap for a refresh."""
        run = request.run
        assert body is not None  # built: a summary, since the fetch found nothing done
        if request.replace_generation is not None:
            return swap_in(self.storage, run, request.replace_generation, body, fetched.live)
        try:
            return "created", self.storage.write(
                run.summary_name, body, if_generation_match=0, metadata=summary_metadata()
            )
        except PreconditionFailed:
            return "already_existed", self.storage.generation(run.summary_name) or 0

    def _publish_event(
        self, request: SummaryRequest, outcome: str, generation: int, seconds: float, created_at: str | None
    ) -> None:
        """Announce the run's summary; ``created_at``: of the summary this worker wrote (None when it found one)."""
        event = CompletionEvent(
            request.bucket,
            request.run_path,
            request.revision,
            request.country,
            request.timestamp,
            outcome,
            generation,
            round(seconds, 3),
            self.worker_id,
            utc_now(),
        )
        attributes = {**event.attributes(), BACKFILL_ID_ATTRIBUTE: request.backfill_id}
        if created_at:
            attributes[SUMMARY_CREATED_AT_ATTRIBUTE] = created_at
        self.bus.publish_and_wait(self.settings.event_topic, event.encode(), attributes)

    def _fail(self, exc: Exception, data: bytes, attributes: dict[str, str], run_path: str | None) -> Outcome:
        reason = getattr(exc, "reason", type(exc).__name__)
        if decide(exc) is Decision.RETRY:
            metrics.TRANSIENT_RETRIES.inc()
            log.warning("request will be retried: %s", exc, extra={"run_path": run_path, "reason": reason})
            return Outcome("retry", run_path, reason)
        try:
            publish_dead_letter(self.bus, self.settings, exc, data, attributes, self.worker_id)
        except Exception as publish_exc:  # noqa: BLE001 - the request is nacked, not lost
            log.error("dead-letter publish failed: %s", publish_exc, extra={"run_path": run_path})
            return Outcome("retry", run_path, "dead_letter_publish_failed")
        metrics.DEAD_LETTERS.labels(reason).inc()
        log.error("request dead-lettered: %s", exc, extra={"run_path": run_path, "reason": reason})
        return Outcome("dead_lettered", run_path, reason)


def publish_dead_letter(
    bus: Bus, settings: Settings, exc: BaseException, data: bytes, attributes: dict[str, str], worker_id: str
) -> None:
    """Publish the request to the dead-letter topic with why it failed; returns once confirmed."""
    attrs = dead_letter_attributes(exc, worker_id, _safe_attributes(attributes))
    bus.publish_and_wait(settings.dead_letter_topic, data, attrs)


#: Request attributes a dead letter carries over (others, and stale error fields, are dropped).
CARRIED_ATTRIBUTES = ("revision", "country", "run_path", "replay_count", BACKFILL_ID_ATTRIBUTE)


def _safe_attributes(attributes: dict[str, str]) -> dict[str, str]:
    """Known attributes only, each capped: a hostile message cannot make its dead letter unpublishable."""
    return {k: str(attributes[k])[:1024] for k in CARRIED_ATTRIBUTES if k in attributes}


def remove_stale_temp_dirs(root: str | None = None) -> int:
    """Remove run and R session folders left by worker processes that died (SIGKILL skips cleanup)."""
    root = root or tempfile.gettempdir()
    removed = 0
    for entry in os.scandir(root):
        prefix = next((p for p in (TEMP_PREFIX, R_TEMP_PREFIX) if entry.name.startswith(p)), None)
        if prefix is None or not entry.is_dir():
            continue
        pid = entry.name[len(prefix) :].split("-", 1)[0]
        if pid.isdigit() and not _alive(int(pid)):
            shutil.rmtree(entry.path, ignore_errors=True)
            removed += 1
    return removed


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True
