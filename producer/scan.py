"""Find runs in a bucket listing: pure logic over listed objects, no I/O.

A run is a folder ``robyn/{revision}/{country}/{timestamp}/`` holding ``OutputCollect.RDS``; it is
summarised when the same folder holds ``model_summary.json``, whose listed custom metadata tells
its state (``mmm_backfill.summary_state``). Listing whole prefixes and deciding here keeps the
number of storage calls proportional to the pages listed, never to the runs.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from mmm_backfill.errors import InvalidRunPath
from mmm_backfill.runpath import OUTPUT_COLLECT, RUN_SUMMARY_NAME, RUNS_ROOT, RunPath, check_segment
from mmm_backfill.summary_state import ORDER, REFRESHABLE, SummaryState, summary_state

if TYPE_CHECKING:  # the storage client stays out of this pure module
    from mmm_backfill.storage import ObjectInfo

#: Skipped names kept as examples in reports; the count covers them all.
MAX_SKIPPED_EXAMPLES = 5


@dataclass(frozen=True)
class Run:
    """One run found in the listing: its summary's state, and generation when there is one."""

    path: RunPath
    state: SummaryState
    generation: int | None = None

    @property
    def summarised(self) -> bool:
        return self.state is not SummaryState.MISSING


@dataclass
class ScanResult:
    """Runs in path order, and the names that did not fit the layout."""

    runs: list[Run] = field(default_factory=list)
    skipped: int = 0
    skipped_examples: list[str] = field(default_factory=list)

    @property
    def missing(self) -> list[RunPath]:
        """Runs without a summary, in path order."""
        return [r.path for r in self.runs if not r.summarised]

    @property
    def summarised(self) -> int:
        return sum(1 for r in self.runs if r.summarised)

    @property
    def to_refresh(self) -> list[Run]:
        """Runs whose summary is missing, legacy or outdated, in path order."""
        return [r for r in self.runs if r.state in REFRESHABLE]

    def state_counts(self) -> dict[str, int]:
        """Runs by summary state, every state present (zero when none)."""
        counts = {state.value: 0 for state in ORDER}
        for run in self.runs:
            counts[run.state.value] += 1
        return counts

    def skip(self, name: str) -> None:
        self.skipped += 1
        if len(self.skipped_examples) < MAX_SKIPPED_EXAMPLES:
            self.skipped_examples.append(name)


def check_filters(revision: str | None, country: str | None) -> None:
    """Refuse filters that are not single path segments (raises InvalidRunPath)."""
    if revision is not None:
        check_segment(revision, "revision")
    if country is not None:
        check_segment(country, "country")


def needs_revisions(revision: str | None, country: str | None) -> bool:
    """True when a country filter without a revision must first learn the revision folders."""
    return country is not None and revision is None


def listing_prefixes(revision: str | None, country: str | None, revisions: Iterable[str] = ()) -> list[str]:
    """The narrowest prefixes to list for the filters, one listing pass each.

    ``revisions`` (folder names under ``robyn/``) is only used with a country but no revision:
    then one prefix per revision, ``robyn/{rev}/{country}/``, rather than the whole bucket.
    """
    check_filters(revision, country)
    if revision is not None and country is not None:
        return [f"{RUNS_ROOT}/{revision}/{country}/"]
    if revision is not None:
        return [f"{RUNS_ROOT}/{revision}/"]
    if country is not None:
        return [f"{RUNS_ROOT}/{rev}/{country}/" for rev in sorted(set(revisions))]
    return [f"{RUNS_ROOT}/"]


def revision_names(folders: Iterable[str]) -> list[str]:
    """Revision names from delimiter listing of ``robyn/`` (``robyn/r100/`` → ``r100``)."""
    root = f"{RUNS_ROOT}/"
    return sorted({f[len(root) :].rstrip("/") for f in folders if f.startswith(root) and f != root})


def scan(objects: Iterable[ObjectInfo | str], revision: str | None = None, country: str | None = None) -> ScanResult:
    """Runs among the listed ``objects``, restricted to the filters; names that break the layout are counted.

    A bare name stands for an object without metadata (a summary of it counts as legacy).
    A name outside the filters is ignored, not skipped. Folder placeholders (names ending in
    ``/``, made by consoles) are neither runs nor mistakes and are ignored too.
    """
    check_filters(revision, country)
    result = ScanResult()
    folders: dict[str, RunPath | None] = {}  # each folder is validated once, not once per file
    outputs: set[str] = set()
    summaries: dict[str, ObjectInfo | None] = {}
    for obj in objects:
        name = obj if isinstance(obj, str) else obj.name
        folder, _, filename = name.rpartition("/")
        if not filename or not _in_scope(folder, revision, country):
            continue
        if folder not in folders:
            folders[folder] = _parse(folder)
        if folders[folder] is None:
            result.skip(name)
        elif filename == OUTPUT_COLLECT:
            outputs.add(folder)
        elif filename == RUN_SUMMARY_NAME:
            summaries[folder] = None if isinstance(obj, str) else obj
    # Folder strings sort in listing order and far faster than RunPath dataclasses.
    result.runs = [_run(folders[f], f in summaries, summaries.get(f)) for f in sorted(outputs)]  # type: ignore[arg-type]
    return result


def _run(path: RunPath, summarised: bool, summary: ObjectInfo | None) -> Run:
    if not summarised:
        return Run(path, SummaryState.MISSING)
    if summary is None:
        return Run(path, SummaryState.LEGACY)
    return Run(path, summary_state(summary.metadata), summary.generation)


def _parse(folder: str) -> RunPath | None:
    try:
        return RunPath.parse(folder)
    except InvalidRunPath:
        return None


def _in_scope(folder: str, revision: str | None, country: str | None) -> bool:
    if revision is None and country is None:
        return True
    parts = folder.split("/")
    if revision is not None and (len(parts) < 2 or parts[1] != revision):
        return False
    return country is None or (len(parts) >= 3 and parts[2] == country)
