"""Parse the small text files the app writes beside a run's RDS files."""

from __future__ import annotations

import csv
import io
import math
import re

from mmm_backfill.config import RdsLimits
from mmm_backfill.errors import InvalidRunFile

#: Refuse text files larger than this by default (``MMM_BACKFILL_MAX_RUN_TEXT_BYTES``; the real ones: 44-61 bytes).
MAX_TEXT_BYTES = RdsLimits.max_text_bytes
_TRAINING_LINE = re.compile(r"^\s*Training time \(mins\)\s*:\s*(\S+)\s*$", re.MULTILINE)
#: The timings.csv row holding Robyn's training time in seconds.
TRAINING_STEP = "R training (robyn_run)"


def _decode(data: bytes, name: str, max_bytes: int) -> str:
    if len(data) > max_bytes:
        raise InvalidRunFile(f"{name}: {len(data)} bytes, over the limit of {max_bytes}")
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError:
        raise InvalidRunFile(f"{name}: not UTF-8 text") from None


def _finite(text: str, name: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise InvalidRunFile(f"{name}: {text!r} is not a number") from None
    if not math.isfinite(value) or value < 0:
        raise InvalidRunFile(f"{name}: {text!r} is not a finite, non-negative number")
    return value


def parse_best_model_id(data: bytes, max_bytes: int = MAX_TEXT_BYTES) -> tuple[str | None, float | None]:
    """Return (model id from the first line, training minutes) of ``best_model_id.txt``."""
    text = _decode(data, "best_model_id.txt", max_bytes)
    first = text.splitlines()[0].strip() if text.strip() else ""
    match = _TRAINING_LINE.search(text)
    minutes = _finite(match.group(1), "best_model_id.txt") if match else None
    return (first or None), minutes


def parse_timings(data: bytes, max_bytes: int = MAX_TEXT_BYTES) -> float | None:
    """Return the training time in minutes from ``timings.csv`` (``Step,Time (s)``), if listed."""
    text = _decode(data, "timings.csv", max_bytes)
    for row in csv.reader(io.StringIO(text)):
        if len(row) >= 2 and row[0].strip() == TRAINING_STEP:
            return _finite(row[1].strip(), "timings.csv") / 60.0
    return None
