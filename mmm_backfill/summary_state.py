"""The state of a run's summary, decided from its listing entry alone (pure, no I/O).

Every summary mmm-backfill writes carries its writer, schema version and generator version in the
object's custom metadata, which a bucket listing returns with the name and generation. So a scan
of 100,000 runs can tell which summaries are wrong without reading any of them.
"""

from __future__ import annotations

import enum
import re
from collections.abc import Mapping

from mmm_backfill import TOOL_NAME, __version__
from mmm_backfill.summary_schema import SCHEMA_VERSION

#: Custom metadata keys written on every summary object (values are strings, as GCS requires).
WRITER_KEY = "mmm-writer"
SCHEMA_VERSION_KEY = "mmm-schema-version"
GENERATOR_VERSION_KEY = "mmm-generator-version"

_RELEASE = re.compile(r"(\d+)(?:\.(\d+))?(?:\.(\d+))?")


class SummaryState(enum.StrEnum):
    #: No ``model_summary.json`` in the run's folder.
    MISSING = "missing"
    #: A summary not written by mmm-backfill (the app's old extractor or old backfill).
    LEGACY = "legacy"
    #: Written by mmm-backfill with an older schema or generator version than the running one.
    OUTDATED = "outdated"
    #: Written by this version of mmm-backfill, or a newer one (never replaced by an older one).
    CURRENT = "current"


#: States a refresh rewrites; MISSING is created, the others replaced.
REFRESHABLE = frozenset({SummaryState.MISSING, SummaryState.LEGACY, SummaryState.OUTDATED})
#: States in report order.
ORDER = (SummaryState.MISSING, SummaryState.LEGACY, SummaryState.OUTDATED, SummaryState.CURRENT)


def summary_metadata(schema_version: int = SCHEMA_VERSION, generator_version: str = __version__) -> dict[str, str]:
    """The custom metadata to write with a summary made by this version."""
    return {
        WRITER_KEY: TOOL_NAME,
        SCHEMA_VERSION_KEY: str(schema_version),
        GENERATOR_VERSION_KEY: generator_version,
    }


def release(version: str) -> tuple[int, int, int] | None:
    """``"1.2.3"`` → ``(1, 2, 3)`` (a suffix like ``rc1`` or ``+local`` is ignored); None when unreadable."""
    match = _RELEASE.match(version.strip()) if isinstance(version, str) else None
    if match is None:
        return None
    return tuple(int(part or 0) for part in match.groups())  # type: ignore[return-value]


def summary_state(
    metadata: Mapping[str, str] | None,
    *,
    exists: bool = True,
    schema_version: int = SCHEMA_VERSION,
    generator_version: str = __version__,
) -> SummaryState:
    """The state of a summary object from its custom metadata (``exists=False``: there is none).

    Metadata that names mmm-backfill but whose versions cannot be read counts as outdated: it was
    ours, and rewriting it with readable versions is safe.
    """
    if not exists:
        return SummaryState.MISSING
    metadata = metadata or {}
    if metadata.get(WRITER_KEY) != TOOL_NAME:
        return SummaryState.LEGACY
    written_schema = metadata.get(SCHEMA_VERSION_KEY, "")
    written_generator = release(metadata.get(GENERATOR_VERSION_KEY, ""))
    running_generator = release(generator_version)
    if not written_schema.isdigit() or written_generator is None or running_generator is None:
        return SummaryState.OUTDATED
    if int(written_schema) != schema_version:
        return SummaryState.OUTDATED if int(written_schema) < schema_version else SummaryState.CURRENT
    return SummaryState.OUTDATED if written_generator < running_generator else SummaryState.CURRENT
