"""Object storage on Google Cloud Storage: the only module that imports google-cloud-storage.

``STORAGE_EMULATOR_HOST`` switches to an emulator (fake-gcs-server) with anonymous credentials.
Every call is retried on transient errors by the shared policy; writes are retried only because
their generation precondition makes a repeat safe.
"""

from __future__ import annotations

import contextlib
import math
import os
import threading
import uuid
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from datetime import datetime

from google.api_core import exceptions as gexc
from google.auth.credentials import AnonymousCredentials
from google.cloud import storage
from google.cloud.storage import transfer_manager

from mmm_backfill.retry import transient_retry

#: Bytes read from the socket at a time while downloading. The client reads 8 KiB at a time,
#: which for a 40 MB RDS costs more than twice the transfer itself; 1 MiB removes that.
DOWNLOAD_CHUNK = 1 << 20
try:  # a private knob of the pinned client (<4); without it downloads are only slower
    from google.cloud.storage._media.requests import _request_helpers as _media_helpers

    _media_helpers._SINGLE_GET_CHUNK_SIZE = DOWNLOAD_CHUNK
except ImportError:  # pragma: no cover
    pass

#: Per-request timeout: (connect, read) seconds.
TIMEOUT = (10, 120)
#: Objects per listing page; the server's maximum.
LIST_PAGE_SIZE = 1000
#: Custom metadata key naming the write that made an object version (see ``Storage.write``).
WRITE_ID_KEY = "mmm-write-id"


#: Only what ``ObjectInfo`` needs from a listing (smaller pages, less to parse).
#: ``metadata`` carries each summary's writer and versions (``mmm_backfill.summary_state``), so
#: a listing alone tells a summary's state.
LIST_FIELDS = "items(name,generation,size,updated,metadata),prefixes,nextPageToken"


def _object_info(resource: dict) -> ObjectInfo:
    updated = resource.get("updated")
    return ObjectInfo(
        resource["name"],
        int(resource.get("generation") or 0),
        int(resource.get("size") or 0),
        datetime.fromisoformat(updated).timestamp() if updated else None,
        resource.get("metadata") or None,
    )


class PreconditionFailed(Exception):
    """A conditional write lost: the object's generation is not the one the writer expected."""


#: The permission a 403 names when Cloud Storage refuses a create-only write over an existing object
#: to a role that may create but not delete (which check comes first is not documented).
DELETE_PERMISSION = "storage.objects.delete"


def lost_create_race(exc: gexc.GoogleAPICallError, if_generation_match: int) -> bool:
    """Whether a failed create-only write may have lost its race: a 412, or a 403 naming the delete permission."""
    if isinstance(exc, gexc.PreconditionFailed):
        return True
    return isinstance(exc, gexc.Forbidden) and if_generation_match == 0 and DELETE_PERMISSION in str(exc)


@dataclass(frozen=True)
class ObjectInfo:
    """One listed object."""

    name: str
    generation: int
    size: int
    updated: float | None = None  # POSIX seconds
    metadata: Mapping[str, str] | None = field(default=None, hash=False)  # custom metadata


def make_client(project: str) -> storage.Client:
    if os.environ.get("STORAGE_EMULATOR_HOST"):
        return storage.Client(project=project, credentials=AnonymousCredentials())
    return storage.Client(project=project)


class Storage:
    """One bucket. Thin: lists, reads and conditional writes; no knowledge of runs."""

    def __init__(self, project: str, bucket: str, client: storage.Client | None = None) -> None:
        self.client = client or make_client(project)
        self.bucket_name = bucket
        self.bucket = self.client.bucket(bucket)
        #: Calls made, by operation (read by the benchmark and tests).
        self.calls: dict[str, int] = {}
        self._calls_lock = threading.Lock()  # a worker downloads a run's files from several threads

    def _count(self, op: str) -> None:
        with self._calls_lock:
            self.calls[op] = self.calls.get(op, 0) + 1

    @transient_retry
    def ensure_bucket(self) -> bool:
        """Create the bucket if missing; True when it was created."""
        self._count("ensure_bucket")
        try:
            self.client.create_bucket(self.bucket_name, timeout=TIMEOUT)
            return True
        except gexc.Conflict:
            return False

    def list(self, prefix: str) -> Iterator[ObjectInfo]:
        """Every object under ``prefix``, one paged listing (no per-object calls)."""
        token: str | None = None
        while True:
            blobs, token = self._list_page(prefix, token)
            yield from blobs
            if not token:
                return

    @transient_retry
    def _list_page(self, prefix: str, token: str | None) -> tuple[list[ObjectInfo], str | None]:
        """One page by its token: a retry repeats exactly that page, never skips one."""
        self._count("list_page")
        iterator = self.client.list_blobs(
            self.bucket_name,
            prefix=prefix,
            page_token=token,
            page_size=LIST_PAGE_SIZE,
            fields=LIST_FIELDS,
            timeout=TIMEOUT,
            retry=None,
        )
        page = next(iterator.pages, None)
        # Read the raw resource: the Blob properties re-parse the timestamp on every access,
        # which dominated listing 100k runs.
        blobs = [_object_info(b._properties) for b in (page or [])]
        return blobs, iterator.next_page_token

    def list_prefixes(self, prefix: str) -> list[str]:
        """The "folders" directly under ``prefix`` (listing with delimiter ``/``), e.g. revisions."""
        found: list[str] = []
        token: str | None = None
        while True:
            prefixes, token = self._prefix_page(prefix, token)
            found.extend(prefixes)
            if not token:
                return sorted(found)

    @transient_retry
    def _prefix_page(self, prefix: str, token: str | None) -> tuple[list[str], str | None]:
        self._count("list_page")
        iterator = self.client.list_blobs(
            self.bucket_name,
            prefix=prefix,
            delimiter="/",
            page_token=token,
            page_size=LIST_PAGE_SIZE,
            timeout=TIMEOUT,
            retry=None,
        )
        page = next(iterator.pages, None)
        return (sorted(page.prefixes) if page is not None else []), iterator.next_page_token

    @transient_retry
    def download(self, name: str, path: str) -> int:
        """Write object ``name`` to local ``path``; return its generation."""
        self._count("download")
        blob = self.bucket.blob(name)
        blob.download_to_filename(path, timeout=TIMEOUT, retry=None)
        return int(blob.generation or 0)

    @transient_retry
    def download_sliced(self, name: str, path: str, generation: int, slices: int) -> int:
        """Write version ``generation`` of ``name`` to ``path`` in ``slices`` ranged reads at once; its generation.

        One stream's bandwidth is bounded, so a large object arrives sooner over several. Every slice
        reads the same version (a newer one meanwhile fails the read, which is retried as a whole),
        and the slices' CRC32C checksums, combined, must match the object's. Costs one metadata call
        more than ``download``, which learns the size and checksum.
        """
        self._count("download")
        blob = self.bucket.blob(name, generation=generation)
        blob.reload(timeout=TIMEOUT, retry=None)
        transfer_manager.download_chunks_concurrently(
            blob,
            path,
            chunk_size=max(1, math.ceil((blob.size or 0) / slices)),
            download_kwargs={"timeout": TIMEOUT, "retry": None},
            worker_type=transfer_manager.THREAD,
            max_workers=slices,
        )
        return int(blob.generation or 0)

    @transient_retry
    def read(self, name: str, generation: int | None = None) -> tuple[bytes, int] | None:
        """The object's bytes and generation, or None when it does not exist."""
        self._count("read")
        blob = self.bucket.blob(name, generation=generation)
        try:
            data = blob.download_as_bytes(timeout=TIMEOUT, retry=None)
        except gexc.NotFound:
            return None
        return data, int(blob.generation or generation or 0)

    @transient_retry
    def stat(self, name: str) -> ObjectInfo | None:
        """The object's live generation, size and custom metadata, or None when absent (one call)."""
        self._count("stat")
        blob = self.bucket.get_blob(name, timeout=TIMEOUT, retry=None)
        return None if blob is None else _object_info(blob._properties)

    @transient_retry
    def generation(self, name: str) -> int | None:
        """The object's live generation, or None when it does not exist (one metadata call)."""
        self._count("stat")
        blob = self.bucket.get_blob(name, timeout=TIMEOUT, retry=None)
        return None if blob is None else int(blob.generation or 0)

    def write(
        self,
        name: str,
        data: bytes,
        if_generation_match: int | None,
        content_type: str = "application/json",
        metadata: Mapping[str, str] | None = None,
    ) -> int:
        """Write ``data`` only if the live generation is ``if_generation_match`` (0: only if absent;
        None: whatever is there, for copies whose content is the same on every attempt).

        ``metadata`` is stored as the object's custom metadata, beside the write id.

        Returns the new generation; raises PreconditionFailed when another writer got there first.
        Kept under the single-request upload size so the precondition is checked atomically.

        An attempt can succeed on the server and still fail on the way back (a reset, a 503 from
        a proxy); its retry then meets its own object and a precondition failure. Each write
        carries an id in the object's metadata, so such a retry is told apart from a real loss.

        A create-only write over an existing object may be refused with 403 naming
        ``storage.objects.delete`` instead of 412; when the object is then there, it is a lost race
        too. Without an object the 403 is a real permission error and is raised as it is.
        """
        write_id = uuid.uuid4().hex
        try:
            return self._write(
                name, data, if_generation_match, content_type, {**(metadata or {}), WRITE_ID_KEY: write_id}
            )
        except (gexc.PreconditionFailed, gexc.Forbidden) as exc:
            if not lost_create_race(exc, if_generation_match):
                raise
            live, own = self._generation_written_by(name, write_id)
            if own is not None:
                return own
            if live is None and isinstance(exc, gexc.Forbidden):
                raise
            raise PreconditionFailed(name) from None

    @transient_retry
    def _write(self, name: str, data: bytes, if_generation_match: int | None, content_type: str, metadata: dict) -> int:
        self._count("write")
        blob = self.bucket.blob(name)
        blob.metadata = metadata
        blob.upload_from_string(
            data, content_type=content_type, if_generation_match=if_generation_match, timeout=TIMEOUT, retry=None
        )
        return int(blob.generation or 0)

    @transient_retry
    def _generation_written_by(self, name: str, write_id: str) -> tuple[int | None, int | None]:
        """(live generation of ``name`` or None when absent, that generation again when ``write_id`` made it)."""
        self._count("stat")
        blob = self.bucket.get_blob(name, timeout=TIMEOUT, retry=None)
        if blob is None:
            return None, None
        live = int(blob.generation or 0)
        return live, live if (blob.metadata or {}).get(WRITE_ID_KEY) == write_id else None

    @transient_retry
    def upload_file(self, name: str, path: str, content_type: str = "application/octet-stream") -> int:
        """Unconditional upload of a local file (seeding test and demo buckets)."""
        self._count("upload")
        blob = self.bucket.blob(name)
        blob.upload_from_filename(path, content_type=content_type, timeout=TIMEOUT, retry=None)
        return int(blob.generation or 0)

    @transient_retry
    def delete(self, name: str) -> None:
        self._count("delete")
        with contextlib.suppress(gexc.NotFound):
            self.bucket.blob(name).delete(timeout=TIMEOUT, retry=None)
