"""What a country file takes from one run summary, read as untrusted input (pure, no I/O).

Whoever can write a run folder writes its ``model_summary.json``, and the app's UI loads the
country file built from all of them. So a summary is parsed within bounds, and each field the
country file copies is checked for its type and size; a summary that fails is left out with a
reason, and the rest of the country is built. Summaries that mmm-backfill or the app's old
extractor wrote pass unchanged: their fields are copied as they are.
"""

from __future__ import annotations

import datetime as dt
import json
import math
import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from mmm_backfill.summary_schema import MAX_MODEL_ID_CHARS, MODEL_FIELDS, SCHEMA_VERSION

#: Fields copied from each run summary into the country file's ``runs`` entries, in output order.
RUN_FIELDS = (
    "created_at",
    "has_pareto_models",
    "pareto_model_count",
    "candidate_model_count",
    "best_model",
    "training_time_mins",
)
#: The largest count a JavaScript reader (the app's UI) holds exactly.
MAX_COUNT = 2**53 - 1
#: ``created_at`` as mmm-backfill writes it (ISO 8601 UTC, ``Z``), or as the old extractor did
#: (``YYYY-MM-DD HH:MM:SS``, zone unstated); nothing longer.
CREATED_AT = re.compile(r"\d{4}-\d{2}-\d{2}(?:T\d{2}:\d{2}:\d{2}(?:\.\d{1,9})?Z| \d{2}:\d{2}:\d{2})")
#: Identity fields longer than a run path segment can never match one; they are not kept.
MAX_SEGMENT_CHARS = 128


@dataclass(frozen=True)
class Unreadable:
    """A run summary that cannot be part of any country file, and why (so a cache can keep the verdict)."""

    reason: str


@dataclass(frozen=True)
class Headline:
    """The part of a run summary a country file needs, typed and bounded: what the aggregator keeps.

    ``country``, ``revision``, ``timestamp``: as written when short strings, else None (matches no run).
    ``schema_version``: as written when an integer, the current one when absent, else None.
    ``fields``: the RUN_FIELDS values, or None when ``problem`` names the first one that is wrong.
    """

    country: str | None
    revision: str | None
    timestamp: str | None
    schema_version: int | None
    fields: Mapping[str, Any] | None
    problem: str | None = None


class _DuplicateKey(ValueError):
    pass


def _unique_keys(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    """Refuse repeated keys: readers disagree on which one wins, so the file would say two things."""
    found = dict(pairs)
    if len(found) != len(pairs):
        raise _DuplicateKey
    return found


def parse_summary(data: bytes) -> Any:
    """Parsed JSON, or Unreadable: a broken summary is a verdict to report, not an error to raise.

    The caller bounds the bytes (the summary size limit); parsing then stays bounded too: nesting
    past the interpreter's recursion limit is ``too_deep``, integers past Python's 4,300 digits
    are ``not_json``, repeated keys ``duplicate_key``. ``NaN`` and ``Infinity`` tokens (not JSON,
    but Python writes them) become null, so the country file stays valid JSON.
    """
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError:
        return Unreadable("not_utf8")
    try:
        return json.loads(text, object_pairs_hook=_unique_keys, parse_constant=lambda _: None)
    except _DuplicateKey:
        return Unreadable("duplicate_key")
    except RecursionError:
        return Unreadable("too_deep")
    except ValueError as exc:  # JSONDecodeError, or an integer too long to convert
        return Unreadable(f"not_json: {type(exc).__name__}")


def read_headline(data: bytes) -> Headline | Unreadable:
    """The headline of a summary's bytes (parsed, then typed); what the summary cache stores."""
    return headline_of(parse_summary(data))


def headline_of(summary: Any) -> Headline | Unreadable:
    """The typed headline of a parsed summary (a Headline or an Unreadable is returned as it is)."""
    if isinstance(summary, Headline | Unreadable):
        return summary
    if not isinstance(summary, dict):
        return Unreadable("not_object")
    version = summary.get("schema_version", SCHEMA_VERSION)
    fields, problem = typed_fields(summary)
    return Headline(
        _segment(summary.get("country")),
        _segment(summary.get("revision")),
        _segment(summary.get("timestamp")),
        version if _is_int(version) else None,
        fields,
        problem,
    )


def typed_fields(summary: Mapping[str, Any]) -> tuple[dict[str, Any] | None, str | None]:
    """``(RUN_FIELDS values, None)``, or ``(None, "invalid_field: NAME")`` for the first field that is wrong."""
    fields: dict[str, Any] = {}
    for name in RUN_FIELDS:
        try:
            fields[name] = _CHECKS[name](summary.get(name))
        except _Wrong as wrong:
            return None, f"invalid_field: {name}{wrong.part}"
    return fields, None


class _Wrong(Exception):
    """A field, or ``part`` of one, of the wrong type or size."""

    def __init__(self, part: str = "") -> None:
        super().__init__(part)
        self.part = part


def _segment(value: Any) -> str | None:
    return value if isinstance(value, str) and len(value) <= MAX_SEGMENT_CHARS else None


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _number(value: Any) -> bool:
    """An integer a JavaScript reader holds exactly (53 bits), or a finite float."""
    if _is_int(value):
        return abs(value) <= MAX_COUNT
    return isinstance(value, float) and math.isfinite(value)


def _created_at(value: Any) -> str:
    if not isinstance(value, str) or not CREATED_AT.fullmatch(value):
        raise _Wrong
    try:
        dt.datetime.fromisoformat(f"{value[:10]}T{value[11:19]}")
    except ValueError:  # 2026-02-30, 25:00:00
        raise _Wrong from None
    return value


def _flag(value: Any) -> bool:
    if not isinstance(value, bool):
        raise _Wrong
    return value


def _count(value: Any) -> int:
    if not _is_int(value) or not 0 <= value <= MAX_COUNT:
        raise _Wrong
    return value


def _minutes(value: Any) -> float | None:
    if value is not None and not (_number(value) and value >= 0):
        raise _Wrong
    return value


def _best_model(value: Any) -> dict[str, Any] | None:
    """Only the model fields of the schema, each of its type; ``model_id`` required, other keys dropped."""
    if value is None:
        return None
    if not isinstance(value, dict):
        raise _Wrong
    if not _model_id(value.get("model_id")):
        raise _Wrong(".model_id")
    for name in MODEL_FIELDS[1:]:
        if value.get(name) is not None and not _number(value[name]):
            raise _Wrong(f".{name}")
    return {key: item for key, item in value.items() if key in MODEL_FIELDS}


def _model_id(value: Any) -> bool:
    if not isinstance(value, str) or not 0 < len(value) <= MAX_MODEL_ID_CHARS:
        return False
    try:
        value.encode("utf-8")  # a lone surrogate from a \ud800 escape is not text
    except UnicodeEncodeError:
        return False
    return True


_CHECKS = {
    "created_at": _created_at,
    "has_pareto_models": _flag,
    "pareto_model_count": _count,
    "candidate_model_count": _count,
    "best_model": _best_model,
    "training_time_mins": _minutes,
}
