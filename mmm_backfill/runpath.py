"""Bucket layout: parse and validate run paths and derive the object names of summaries."""

from __future__ import annotations

import re
from dataclasses import dataclass

from mmm_backfill.errors import InvalidRunPath

#: Top-level prefix under which the app stores training runs.
RUNS_ROOT = "robyn"
#: Top-level prefix of the per-country aggregate files.
COUNTRY_ROOT = "model_summary"
RUN_SUMMARY_NAME = "model_summary.json"
COUNTRY_SUMMARY_NAME = "summary.json"
OUTPUT_COLLECT = "OutputCollect.RDS"
INPUT_COLLECT = "InputCollect.RDS"
BEST_MODEL_ID = "best_model_id.txt"
TIMINGS = "timings.csv"
#: The files a worker downloads, in order; only OutputCollect is required.
RUN_FILES = (OUTPUT_COLLECT, INPUT_COLLECT, BEST_MODEL_ID, TIMINGS)

#: One path segment: starts with a letter or digit, then letters, digits, ``_``, ``-`` or ``.``.
#: Excludes ``.``/``..``, hidden names, separators, spaces and anything needing escaping.
_SEGMENT = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.\-]{0,127}")


def check_segment(value: str, what: str) -> str:
    """Return ``value`` if it is a safe single path segment, else raise InvalidRunPath."""
    if not isinstance(value, str) or not _SEGMENT.fullmatch(value) or ".." in value:
        raise InvalidRunPath(f"invalid {what} {value!r}: expected 1-128 of [A-Za-z0-9_.-], not starting with '.'")
    return value


@dataclass(frozen=True, order=True)
class RunPath:
    """One training run: ``robyn/{revision}/{country}/{timestamp}``."""

    revision: str
    country: str
    timestamp: str

    def __post_init__(self) -> None:
        check_segment(self.revision, "revision")
        check_segment(self.country, "country")
        check_segment(self.timestamp, "timestamp")

    @classmethod
    def parse(cls, path: str) -> RunPath:
        """Parse exactly ``robyn/R/C/T`` (no leading or trailing ``/``, no extra segments)."""
        if not isinstance(path, str):
            raise InvalidRunPath(f"run path must be a string, got {type(path).__name__}")
        parts = path.split("/")
        if len(parts) != 4 or parts[0] != RUNS_ROOT:
            raise InvalidRunPath(
                f"invalid run path {path!r}: expected '{RUNS_ROOT}/{{revision}}/{{country}}/{{timestamp}}'"
            )
        return cls(parts[1], parts[2], parts[3])

    @property
    def prefix(self) -> str:
        """The run's folder, without a trailing slash."""
        return f"{RUNS_ROOT}/{self.revision}/{self.country}/{self.timestamp}"

    def object_name(self, filename: str) -> str:
        """Object name of one of the run's files."""
        return f"{self.prefix}/{filename}"

    @property
    def summary_name(self) -> str:
        return self.object_name(RUN_SUMMARY_NAME)

    def __str__(self) -> str:
        return self.prefix


def country_summary_name(country: str) -> str:
    """Object name of a country's aggregate file."""
    return f"{COUNTRY_ROOT}/{check_segment(country, 'country')}/{COUNTRY_SUMMARY_NAME}"


def run_path_from_local_dir(directory: str) -> RunPath:
    """Infer the run from a local folder whose path ends in ``robyn/R/C/T``."""
    parts = [p for p in directory.replace("\\", "/").rstrip("/").split("/") if p]
    if len(parts) < 4:
        raise InvalidRunPath(f"cannot infer run from {directory!r}: path must end in robyn/REVISION/COUNTRY/TIMESTAMP")
    return RunPath.parse("/".join(parts[-4:]))
