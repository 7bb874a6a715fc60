"""Handle one summary request: validate, skip if done, download, extract, write once, report."""

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
from mmm_backfill.errors import InvalidRunFile, MissingRunFile, OtherBucket, RdsTooLarge
from mmm_backfill.messages import (
    BACKFILL_ID_ATTRIBUTE,
    SUMMARY_CREATED_AT_ATTRIBUTE,
    CompletionEvent,
    SummaryRequest,
    utc_now,
)
from mmm_backfill.runpath import INPUT_COLLECT, OUTPUT_COLLECT, RUN_FILES, RunPath
from mmm_backfill.storage import ObjectInfo, PreconditionFailed, Storage
from mmm_backfill.summary_state import summary_metadata
from worker.decisions import Decision, dead_letter_attributes, decide
from worker.extract import summarize_files
from worker.rbridge import R_TEMP_PREFIX, RSession
from worker.replace import refresh_summary

log = logging.getLogger(__name__)

#: Prefix of per-run temp folders; the owning pid follows, so stale ones can be found.
TEMP_PREFIX = "mmm-run-"


@dataclass(frozen=True)
class Outcome:
    """What became of one request: created, replaced, already_existed, dead_lettered or retry."""

    outcome: str
    run_path: str | None = None
    reason: str | None = None


class Handler:
    """Processes requests one at a time in this process; the caller acks or nacks by the outcome."""

    def __init__(self, settings: Settings, storage: Storage, bus: Bus, session: RSession, worker_id: str) -> None:
        self.settings, self.storage, self.bus, self.session = settings, storage, bus, session
        self.worker_id = worker_id
        #: ``created_at`` of the summary the request in hand built (None until one is built).
        self._built_created_at: str | None = None

    def handle(self, data: bytes, attributes: dict[str, str]) -> Outcome:
        """Never raises: every failure becomes a dead letter or a retry, counted and logged."""
        started = time.monotonic()
        metrics.IN_FLIGHT.inc()
        run_path = attributes.get("run_path")
        self._built_created_at = None
        try:
            request = self._validate(data)
            run_path = request.run_path
            outcome, generation = (
                self._summarize(request.run) if request.replace_generation is None else self._refresh(request)
            )
            self._publish_event(request, outcome, generation, time.monotonic() - started)
            result = Outcome(outcome, run_path)
        except Exception as exc:  # noqa: BLE001 - classified below, never lost
            result = self._fail(exc, data, attributes, run_path)
        finally:
            metrics.IN_FLIGHT.dec()
            metrics.RUN_SECONDS.observe(time.monotonic() - started)
        metrics.MESSAGES.labels(result.outcome).inc()
        log.info(
            "request %s",
            result.outcome,
            extra={"run_path": run_path, "reason": result.reason, "seconds": round(time.monotonic() - started, 3)},
        )
        return result

    def _validate(self, data: bytes) -> SummaryRequest:
        request = SummaryRequest.decode(data)
        if request.bucket != self.settings.bucket:
            raise OtherBucket(f"request for bucket {request.bucket!r}; this worker serves {self.settings.bucket!r}")
        return request

    def _summarize(self, run: RunPath) -> tuple[str, int]:
        existing = self.storage.generation(run.summary_name)
        if existing is not None:
            return "already_existed", existing
        body = self._build(run)
        try:
            return "created", self.storage.write(
                run.summary_name, body, if_generation_match=0, metadata=summary_metadata()
            )
        except PreconditionFailed:
            return "already_existed", self.storage.generation(run.summary_name) or 0

    def _refresh(self, request: SummaryRequest) -> tuple[str, int]:
        """Replace a legacy or outdated summary (worker/replace.py); a current one is left alone."""
        return refresh_summary(
            self.storage, request.run, request.replace_generation or 0, lambda: self._build(request.run)
        )

    def _build(self, run: RunPath) -> bytes:
        """The run's new summary as bytes (download to a private temp dir, extract)."""
        with tempfile.TemporaryDirectory(prefix=f"{TEMP_PREFIX}{os.getpid()}-") as tmp:
            summary = summarize_files(run, self._download(run, tmp), self.session, self.settings.rds_limits)
        self._built_created_at = summary["created_at"]
        return json.dumps(summary, indent=2, allow_nan=False).encode()

    def _download(self, run: RunPath, tmp: str) -> dict[str, str]:
        """Download the run's files (one listing, then one read per present file), bounded in size."""
        listed = {o.name.rsplit("/", 1)[-1]: o for o in self.storage.list(run.prefix + "/")}
        if OUTPUT_COLLECT not in listed:
            raise MissingRunFile(f"{run}: {OUTPUT_COLLECT} does not exist")
        files: dict[str, str] = {}
        for name in RUN_FILES:
            info = listed.get(name)
            if info is None:
                continue
            self._check_size(name, info)
            files[name] = os.path.join(tmp, name)
            self.storage.download_object(info, files[name], self._max_bytes(name))
            metrics.RDS_BYTES.inc(info.size if name in (OUTPUT_COLLECT, INPUT_COLLECT) else 0)
        return files

    def _max_bytes(self, name: str) -> int:
        rds = name in (OUTPUT_COLLECT, INPUT_COLLECT)
        return self.settings.max_rds_bytes if rds else self.settings.max_run_text_bytes

    def _check_size(self, name: str, info: ObjectInfo) -> None:
        if info.size > self._max_bytes(name):
            error = RdsTooLarge if name in (OUTPUT_COLLECT, INPUT_COLLECT) else InvalidRunFile
            raise error(f"{name}: {info.size} bytes, over the limit of {self._max_bytes(name)}")

    def _publish_event(self, request: SummaryRequest, outcome: str, generation: int, seconds: float) -> None:
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
        if outcome in ("created", "replaced") and self._built_created_at:
            attributes[SUMMARY_CREATED_AT_ATTRIBUTE] = self._built_created_at
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
