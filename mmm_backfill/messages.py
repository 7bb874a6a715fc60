"""Wire formats: summary requests (producer → worker) and completion events (worker → aggregator).

Small versioned JSON bodies, validated strictly on the way in: a malformed message becomes an
InvalidMessage (dead-lettered), never a crash.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import json
import re
from dataclasses import asdict, dataclass
from typing import Any

from mmm_backfill.errors import (
    InvalidRunPath,
    MessageBadFields,
    MessageNotJson,
    MessageNotUtf8,
    MessageTooLarge,
    MessageVersion,
    PathOutsideLayout,
)
from mmm_backfill.runpath import RunPath

#: Version of both bodies; decoders refuse any other.
MESSAGE_VERSION = 1
#: Refuse bodies larger than this; real ones are a few hundred bytes.
MAX_BODY_BYTES = 16 * 1024
#: ``replaced``: a refresh swapped an older summary for a new one (see ``SummaryRequest.replace_generation``).
OUTCOMES = ("created", "already_existed", "replaced")
#: Attribute naming the backfill a request belongs to; its completion event and dead letter carry
#: it too, so ``enqueue --wait`` can follow its own runs (and real Pub/Sub filter on it).
BACKFILL_ID_ATTRIBUTE = "backfill_id"
#: Attribute of a completion event: the ``created_at`` of the summary the worker wrote (absent when
#: it found one in place), so a follower can tell a country file holds that very summary.
SUMMARY_CREATED_AT_ATTRIBUTE = "summary_created_at"
#: Cloud Storage bucket names: 3-222 of lower-case letters, digits, ``-``, ``_`` and ``.``.
_BUCKET = re.compile(r"[a-z0-9][a-z0-9_.\-]{1,220}[a-z0-9]")
#: A backfill id: what ``enqueue`` makes (32 hex digits) and names of the same safe alphabet. It goes
#: into attributes (at most 1,024 bytes each) and subscription filters, so it stays short and plain.
_BACKFILL_ID = re.compile(r"[A-Za-z0-9_.\-]{1,128}")


def utc_now() -> str:
    return dt.datetime.now(dt.UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


@dataclass(frozen=True)
class SummaryRequest:
    """Ask a worker to summarise one run."""

    bucket: str
    run_path: str
    revision: str
    country: str
    timestamp: str
    backfill_id: str
    requested_at: str
    replay_count: int = 0
    v: int = MESSAGE_VERSION
    #: A refresh: the generation of the summary to replace (compare-and-swap). Absent (None), the
    #: request is create-only, as every request was before refreshes existed.
    replace_generation: int | None = None

    @classmethod
    def for_run(
        cls,
        bucket: str,
        run: RunPath,
        backfill_id: str,
        requested_at: str | None = None,
        replace_generation: int | None = None,
    ) -> SummaryRequest:
        return cls(
            bucket,
            run.prefix,
            run.revision,
            run.country,
            run.timestamp,
            backfill_id,
            requested_at or utc_now(),
            replace_generation=replace_generation,
        )

    @property
    def run(self) -> RunPath:
        return RunPath.parse(self.run_path)

    def attributes(self) -> dict[str, str]:
        """Attributes for subscription filters and for reading a dead letter at a glance."""
        return {
            "revision": self.revision,
            "country": self.country,
            "run_path": self.run_path,
            "replay_count": str(self.replay_count),
            BACKFILL_ID_ATTRIBUTE: self.backfill_id,
        }

    def encode(self) -> bytes:
        """JSON body; a create-only request leaves ``replace_generation`` out, so its bytes are
        exactly what workers of before refreshes read."""
        body = asdict(self)
        if self.replace_generation is None:
            del body["replace_generation"]
        return json.dumps(body, separators=(",", ":"), sort_keys=True).encode()

    @classmethod
    def decode(cls, data: bytes) -> SummaryRequest:
        body = _load(data, cls)
        request = cls(**body)
        _check_run(request)
        if request.replay_count < 0:
            raise MessageBadFields("replay_count must not be negative")
        if not _BACKFILL_ID.fullmatch(request.backfill_id):
            raise MessageBadFields("backfill_id must be 1-128 letters, digits, '_', '.' or '-'")
        if request.replace_generation is not None and request.replace_generation <= 0:
            raise MessageBadFields("replace_generation must be a positive generation")
        return request


@dataclass(frozen=True)
class CompletionEvent:
    """A worker finished one run: its summary now exists (made by it or found in place)."""

    bucket: str
    run_path: str
    revision: str
    country: str
    timestamp: str
    outcome: str
    generation: int
    duration_seconds: float
    worker: str
    completed_at: str
    v: int = MESSAGE_VERSION

    def attributes(self) -> dict[str, str]:
        return {"country": self.country, "revision": self.revision, "outcome": self.outcome}

    def encode(self) -> bytes:
        return json.dumps(asdict(self), separators=(",", ":"), sort_keys=True).encode()

    @classmethod
    def decode(cls, data: bytes) -> CompletionEvent:
        event = cls(**_load(data, cls))
        _check_run(event)
        if event.outcome not in OUTCOMES:
            raise MessageBadFields(f"unknown outcome {event.outcome!r}")
        return event


#: Expected Python type of each field, by dataclass field type name. An optional (``| None``)
#: field may also be absent or ``null``, both meaning its default.
_TYPES: dict[str, tuple[type, ...]] = {
    "str": (str,),
    "int": (int,),
    "float": (int, float),
    "int | None": (int,),
}


def _load(data: bytes, cls: type) -> dict[str, Any]:
    if not isinstance(data, bytes | bytearray):
        raise MessageBadFields("message body is not bytes")
    if len(data) > MAX_BODY_BYTES:
        raise MessageTooLarge(f"message body of {len(data)} bytes is over {MAX_BODY_BYTES}")
    try:
        body = json.loads(bytes(data).decode("utf-8"))
    except UnicodeDecodeError:
        raise MessageNotUtf8("message body is not UTF-8") from None
    except json.JSONDecodeError as exc:
        raise MessageNotJson(f"message body is not JSON ({exc.msg} at {exc.pos})") from None
    if not isinstance(body, dict):
        raise MessageBadFields("message body is not a JSON object")
    if body.get("v") != MESSAGE_VERSION:
        raise MessageVersion(f"unsupported message version {body.get('v')!r} (expected {MESSAGE_VERSION})")
    fields = cls.__dataclass_fields__
    unknown = sorted(set(body) - set(fields))
    if unknown:
        raise MessageBadFields(f"unknown fields {unknown}")
    for name, field in fields.items():
        if name not in body:
            if field.default is dataclasses.MISSING:
                raise MessageBadFields(f"missing field {name!r}")
            continue
        value = body[name]
        if value is None and str(field.type).endswith("| None"):
            continue
        kinds = _TYPES[field.type if isinstance(field.type, str) else field.type.__name__]
        if isinstance(value, bool) or not isinstance(value, kinds):
            raise MessageBadFields(f"field {name!r} must be {field.type}, got {type(value).__name__}")
    return body


def _check_run(message: SummaryRequest | CompletionEvent) -> None:
    if not _BUCKET.fullmatch(message.bucket):
        raise MessageBadFields(f"invalid bucket name {message.bucket!r}")
    try:
        run = RunPath.parse(message.run_path)
    except InvalidRunPath as exc:
        raise PathOutsideLayout(str(exc)) from None
    if (run.revision, run.country, run.timestamp) != (message.revision, message.country, message.timestamp):
        raise PathOutsideLayout(f"run_path {message.run_path!r} disagrees with revision/country/timestamp fields")
