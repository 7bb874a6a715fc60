"""Object storage on Google Cloud Storage: the only module that imports google-cloud-storage.

``STORAGE_EMULATOR_HOST`` switches to an emulator (fake-gcs-server) with anonymous credentials.
Every call is retried on transient errors by the shared policy; writes are retried only because
their generation precondition makes a repeat safe.
"""

from __future__ import annotations

import contextlib
import io
import math
import os
import threading
import uuid
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import BinaryIO

from google.api_core import exceptions as gexc
from google.auth.credentials import AnonymousCredentials
from google.cloud import storage
from google.cloud.storage import transfer_manager

from mmm_backfill.errors import ObjectTooLarge
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
        resource.get("contentType"),
        resource.get("contentEncoding"),
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
    content_type: str | None = None  # only from ``stat``: a listing leaves it out
    content_encoding: str | None = None  # likewise; "gzip" when stored compressed


class _Bounded:
    """A write-only stream that refuses to grow past ``limit`` bytes: the download stops there.

    Counts what the client writes, that is decoded bytes: a gzip-encoded object is decompressed on
    the way, so its listed (stored) size alone would not bound it.
    """

    def __init__(self, target: BinaryIO, limit: int, name: str) -> None:
        self.target, self.limit, self.name = target, limit, name
        self.size = 0

    def write(self, chunk: bytes) -> int:
        self.size += len(chunk)
        if self.size > self.limit:
            raise ObjectTooLarge(f"{self.name}: more than {self.limit} bytes")
        return self.target.write(chunk)


def refuse_listed(obj: ObjectInfo, max_bytes: int) -> None:
    """ObjectTooLarge when the listed size of ``obj`` is over ``max_bytes`` (decided before any download)."""
    if obj.size > max_bytes:
        raise ObjectTooLarge(f"{obj.name}: {obj.size} bytes, over the limit of {max_bytes}")


def make_client(project: str, endpoint: str | None = None) -> storage.Client:
    """A client of Cloud Storage, of the emulator named by ``STORAGE_EMULATOR_HOST``, or of ``endpoint``
    (a relay in front of an emulator, with anonymous credentials)."""
    if endpoint:
        options = {"api_endpoint": endpoint}
        return storage.Client(project=project, credentials=AnonymousCredentials(), client_options=options)
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

    def read_object(self, obj: ObjectInfo, max_bytes: int) -> bytes | None:
        """The bytes of the listed version ``obj``, or None once that version is gone.

        For objects whose size someone else decides: ObjectTooLarge, with no request at all, when the
        listed size is over ``max_bytes``; otherwise a read pinned to the listed generation (a newer,
        larger version is never read instead) that stops as soon as more than ``max_bytes`` arrive.
        """
        refuse_listed(obj, max_bytes)
        found = self.read(obj.name, obj.generation, max_bytes)
        return None if found is None else found[0]

    def download_object(self, obj: ObjectInfo, path: str, max_bytes: int) -> None:
        """Write the listed version ``obj`` to local ``path``, bounded exactly like ``read_object``.

        Raises NotFound when that version is gone (the caller lists again).
        """
        refuse_listed(obj, max_bytes)
        self.download(obj.name, path, obj.generation, max_bytes)

    @transient_retry
    def download(self, name: str, path: str, generation: int | None = None, max_bytes: int | None = None) -> int:
        """Write object ``name`` (version ``generation`` when given) to local ``path``; return its generation."""
        with open(path, "wb") as fh:  # truncated again by each retry
            return self._fetch(name, generation, max_bytes, fh, "download")

    def download_object_sliced(self, obj: ObjectInfo, path: str, max_bytes: int, slices: int) -> None:
        """Like ``download_object``, in ``slices`` ranged reads at once when the stored bytes are the content.

        One stream's bandwidth is bounded, so a large object arrives sooner over several. An object
        stored compressed goes through the one bounded stream instead: Cloud Storage ignores the
        range of a read it decompresses, so a slice would not be bounded by the listed size.
        Raises NotFound when that version is gone.
        """
        refuse_listed(obj, max_bytes)
        if not self._download_sliced(obj.name, path, obj.generation, slices, max_bytes):
            self.download(obj.name, path, obj.generation, max_bytes)

    @transient_retry
    def _download_sliced(self, name: str, path: str, generation: int, slices: int, max_bytes: int) -> bool:
        """Write version ``generation`` of ``name`` to ``path`` in ``slices`` ranged reads at once.

        Every slice reads the same version (a newer one meanwhile fails the read, which is retried
        as a whole), and the slices' CRC32C checksums, combined, must match the object's. Costs one
        metadata call more than ``download``, which learns the size, encoding and checksum. False,
        with nothing downloaded, when the version is stored compressed or is over ``max_bytes``.
        """
        self._count("download")
        blob = self.bucket.blob(name, generation=generation)
        blob.reload(timeout=TIMEOUT, retry=None)
        if blob.content_encoding or (blob.size or 0) > max_bytes:
            return False
        transfer_manager.download_chunks_concurrently(
            blob,
            path,
            chunk_size=max(1, math.ceil((blob.size or 0) / slices)),
            download_kwargs={"timeout": TIMEOUT, "retry": None},
            worker_type=transfer_manager.THREAD,
            max_workers=slices,
        )
        return True

    @transient_retry
    def read(self, name: str, generation: int | None = None, max_bytes: int | None = None) -> tuple[bytes, int] | None:
        """The object's bytes and generation, or None when it does not exist.

        Without ``max_bytes`` only for objects this project wrote (tests, tools): anything whose size
        someone else decides goes through ``read_object``.
        """
        buffer = io.BytesIO()
        try:
            found = self._fetch(name, generation, max_bytes, buffer, "read")
        except gexc.NotFound:
            return None
        return buffer.getvalue(), found

    def _fetch(self, name: str, generation: int | None, max_bytes: int | None, stream: BinaryIO, op: str) -> int:
        """The one download of this module: ``name`` into ``stream``, at most ``max_bytes`` (None: unbounded)."""
        self._count(op)
        blob = self.bucket.blob(name, generation=generation)
        sink = stream if max_bytes is None else _Bounded(stream, max_bytes, name)
        blob.download_to_file(sink, timeout=TIMEOUT, retry=None)
        return int(blob.generation or generation or 0)

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
        return self._conditional(
            name,
            if_generation_match,
            metadata,
            lambda tagged: self._write(name, data, if_generation_match, content_type, tagged),
        )

    def copy(
        self, source: ObjectInfo, name: str, if_generation_match: int | None, metadata: Mapping[str, str] | None = None
    ) -> int:
        """Copy version ``source.generation`` of ``source.name`` to ``name`` inside Cloud Storage (a
        rewrite): no byte passes through this process, whatever the object's size.

        Conditioned on the source, which must still be live at that generation (a source replaced or
        gone raises PreconditionFailed, never copies another version), and on ``name`` as in ``write``.
        The copy keeps the source's content type and encoding (from ``stat``); its custom metadata is
        ``metadata`` and the write id, so a retry that meets its own copy is recognised.
        """
        return self._conditional(
            name, if_generation_match, metadata, lambda tagged: self._rewrite(source, name, if_generation_match, tagged)
        )

    def _conditional(
        self, name: str, if_generation_match: int | None, metadata: Mapping[str, str] | None, attempt: Callable
    ) -> int:
        """Run ``attempt(metadata with a fresh write id)``; tell a lost race from a retry meeting its own write."""
        write_id = uuid.uuid4().hex
        try:
            return attempt({**(metadata or {}), WRITE_ID_KEY: write_id})
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
    def _rewrite(self, source: ObjectInfo, name: str, if_generation_match: int | None, metadata: dict) -> int:
        self._count("copy")
        origin = self.bucket.blob(source.name, generation=source.generation)
        blob = self.bucket.blob(name)
        # A request body replaces every editable field of the source's, so these are given again.
        blob.metadata, blob.content_type, blob.content_encoding = metadata, source.content_type, source.content_encoding
        token = None
        try:
            while True:  # large or cross-location rewrites take several calls
                token, _, _ = blob.rewrite(
                    origin,
                    token=token,
                    if_generation_match=if_generation_match,
                    if_source_generation_match=source.generation,
                    timeout=TIMEOUT,
                    retry=None,
                )
                if token is None:
                    return int(blob.generation or 0)
        except gexc.NotFound:  # that version is gone: replaced (no object versioning) or deleted
            raise PreconditionFailed(source.name) from None

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
