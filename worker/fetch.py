"""The storage side of one request: what the summary is now, and the run's files on local disk. No R.

At cloud latency every storage call costs tens of milliseconds before its first byte, so nothing
here waits for one call to start the next when it need not: the summary's state and the run's
listing are asked at once, then every file is downloaded at once (a large RDS file in ranged
slices). The sizes from the listing are checked before any byte is downloaded.
"""

from __future__ import annotations

import os
import shutil
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field

from mmm_backfill import metrics
from mmm_backfill.config import Settings
from mmm_backfill.errors import InvalidRunFile, MissingRunFile, OtherBucket, RdsTooLarge
from mmm_backfill.messages import SummaryRequest
from mmm_backfill.runpath import INPUT_COLLECT, OUTPUT_COLLECT, RUN_FILES, RunPath
from mmm_backfill.storage import ObjectInfo, Storage
from mmm_backfill.summary_state import SummaryState, summary_state

#: Prefix of per-run temp folders; the owning pid follows, so stale ones can be found.
TEMP_PREFIX = "mmm-run-"
RDS_FILES = (OUTPUT_COLLECT, INPUT_COLLECT)


@dataclass
class Fetched:
    """One request made ready for R, or what became of it without R.

    request: the decoded request; None when the message itself was refused (``error`` says why).
    done: ``(outcome, generation)`` when the summary needs no new build (it exists, or is current).
    live: the summary as the fetch saw it (a refresh swaps it by compare-and-swap, so a stale view is safe).
    files: run file name -> local path, in ``folder``; empty when done, failed or deferred.
    deferred: the files were left for later (larger than a fetch ahead may hold).
    error: the failure to classify, raised when the request is handled.
    seconds: time the fetch took.
    """

    request: SummaryRequest | None = None
    done: tuple[str, int] | None = None
    live: ObjectInfo | None = None
    folder: str | None = None
    files: dict[str, str] = field(default_factory=dict)
    deferred: bool = False
    error: Exception | None = None
    seconds: float = 0.0

    def ready(self) -> SummaryRequest:
        """The request, or the fetch's failure raised."""
        if self.error is not None:
            raise self.error
        assert self.request is not None  # a fetch sets one or the other
        return self.request

    def close(self) -> None:
        """Remove the downloaded files (safe to repeat)."""
        if self.folder is not None:
            shutil.rmtree(self.folder, ignore_errors=True)
            self.folder, self.files = None, {}


class RunFetcher:
    """Fetches requests of one bucket with ``settings.fetch_streams`` connections; safe on any thread."""

    def __init__(self, settings: Settings, storage: Storage) -> None:
        self.settings, self.storage = settings, storage

    def fetch(self, data: bytes, max_bytes: int | None = None) -> Fetched:
        """Never raises: a failure is kept in ``Fetched.error``. Files over ``max_bytes`` in all are deferred."""
        started = time.monotonic()
        fetched = Fetched()
        try:
            fetched.request = request = self._validate(data)
            fetched.done, fetched.live, listed = self._look(request)
            if fetched.done is None:
                self._download(request.run, listed, fetched, max_bytes)
        except Exception as exc:  # noqa: BLE001 - classified by the handler, on R's side
            fetched.close()
            fetched.error = exc
        fetched.seconds = time.monotonic() - started
        return fetched

    def _validate(self, data: bytes) -> SummaryRequest:
        request = SummaryRequest.decode(data)
        if request.bucket != self.settings.bucket:
            raise OtherBucket(f"request for bucket {request.bucket!r}; this worker serves {self.settings.bucket!r}")
        return request

    def _look(self, request: SummaryRequest) -> tuple[tuple[str, int] | None, ObjectInfo | None, dict]:
        """(done, the live summary of a refresh, the run's listing): the summary and the listing asked at once."""
        run, refresh = request.run, request.replace_generation is not None
        ask = self.storage.stat if refresh else self.storage.generation

        def listing() -> dict[str, ObjectInfo]:
            return {o.name.rsplit("/", 1)[-1]: o for o in self.storage.list(run.prefix + "/")}

        if self.settings.fetch_streams > 1:
            with ThreadPoolExecutor(2) as pool:
                listed = pool.submit(listing)
                found = ask(run.summary_name)
                done = _done(found)
                return done, found if refresh else None, {} if done else listed.result()
        found = ask(run.summary_name)
        done = _done(found)
        return done, found if refresh else None, {} if done else listing()

    def _download(self, run: RunPath, listed: dict[str, ObjectInfo], fetched: Fetched, max_bytes: int | None) -> None:
        """Check every size, then download every present file at once into a fresh temp folder."""
        if OUTPUT_COLLECT not in listed:
            raise MissingRunFile(f"{run}: {OUTPUT_COLLECT} does not exist")
        present = [(name, listed[name]) for name in RUN_FILES if name in listed]
        for name, info in present:
            self._check_size(name, info)
        if max_bytes is not None and sum(info.size for _, info in present) > max_bytes:
            fetched.deferred = True
            return
        fetched.folder = tempfile.mkdtemp(prefix=f"{TEMP_PREFIX}{os.getpid()}-")
        fetched.files = {name: os.path.join(fetched.folder, name) for name, _ in present}
        streams = max(1, self.settings.fetch_streams)
        with ThreadPoolExecutor(streams) as pool:
            jobs = [pool.submit(self._download_one, name, info, fetched.files[name]) for name, info in present]
            for job in jobs:
                job.result()
        metrics.RDS_BYTES.inc(sum(info.size for name, info in present if name in RDS_FILES))

    def _download_one(self, name: str, info: ObjectInfo, path: str) -> None:
        """The listed version, bounded by its kind's limit; a large one in slices when there are streams to spare."""
        streams, slice_bytes = self.settings.fetch_streams, self.settings.slice_bytes
        if streams > 1 and 0 < slice_bytes < info.size:
            self.storage.download_object_sliced(info, path, self._max_bytes(name), streams)
        else:
            self.storage.download_object(info, path, self._max_bytes(name))

    def _max_bytes(self, name: str) -> int:
        """The limit of a run file named ``name`` (its name in the run's folder)."""
        return self.settings.max_rds_bytes if name in RDS_FILES else self.settings.max_run_text_bytes

    def _check_size(self, name: str, info: ObjectInfo) -> None:
        """Refused from the listing, before any byte is downloaded."""
        limit = self._max_bytes(name)
        if info.size > limit:
            error = RdsTooLarge if name in RDS_FILES else InvalidRunFile
            raise error(f"{name}: {info.size} bytes, over the limit of {limit}")


def _done(found: int | ObjectInfo | None) -> tuple[str, int] | None:
    """``already_existed`` for a summary that exists (a backfill) or is current (a refresh); else None."""
    if isinstance(found, int):
        return "already_existed", found
    if found is not None and summary_state(found.metadata) is SummaryState.CURRENT:
        return "already_existed", found.generation
    return None
