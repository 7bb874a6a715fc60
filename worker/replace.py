"""Refresh one run's summary: replace a legacy or outdated one by compare-and-swap, keeping it.

A refresh request names the generation the producer saw. The summary is replaced only while that
generation (or, after a re-check, the one found instead) is still live and still not current, so
a newer summary written meanwhile by anyone is never overwritten. The replaced version is copied
to ``model_summary.previous.json`` before the swap, so nothing written is ever lost. The copy is
made inside Cloud Storage: a legacy summary, whatever its size, never passes through the worker.
"""

from __future__ import annotations

import logging

from mmm_backfill.errors import TransientError
from mmm_backfill.runpath import RunPath
from mmm_backfill.storage import ObjectInfo, PreconditionFailed, Storage
from mmm_backfill.summary_state import SummaryState, summary_metadata, summary_state

log = logging.getLogger(__name__)

#: Name of the copy of the replaced summary, in the run's folder.
PREVIOUS_SUMMARY_NAME = "model_summary.previous.json"
#: Custom metadata key of the copy: the generation it was copied from.
PREVIOUS_GENERATION_KEY = "mmm-previous-generation"
#: Swaps tried before giving up when other writers keep changing the summary (then the request
#: is retried later through Pub/Sub).
MAX_ATTEMPTS = 5


class ReplaceConflict(TransientError):
    """The summary changed under every attempt to replace it; try again later."""

    reason = "replace_conflict"


def previous_name(run: RunPath) -> str:
    return run.object_name(PREVIOUS_SUMMARY_NAME)


def swap_in(storage: Storage, run: RunPath, expected: int, body: bytes, live: ObjectInfo | None) -> tuple[str, int]:
    """Write ``body`` as the summary: create-only when there is none, else compare-and-swap.

    ``live`` is the summary as last seen. Every lost race re-reads the state before trying again.
    """
    for attempt in range(1, MAX_ATTEMPTS + 1):
        if attempt > 1:
            live = storage.stat(run.summary_name)
        if live is None:
            try:
                return "created", storage.write(run.summary_name, body, 0, metadata=summary_metadata())
            except PreconditionFailed:
                continue
        if summary_state(live.metadata) is SummaryState.CURRENT:
            return "already_existed", live.generation
        if live.generation != expected:
            log.info(
                "summary changed since it was enqueued; replacing the version found",
                extra={"run_path": run.prefix, "expected": expected, "found": live.generation},
            )
        try:
            return "replaced", _replace(storage, run, live, body)
        except PreconditionFailed:
            log.info("summary changed during the swap; checking again", extra={"run_path": run.prefix})
    raise ReplaceConflict(f"{run}: the summary changed on each of {MAX_ATTEMPTS} attempts to replace it")


def _replace(storage: Storage, run: RunPath, live: ObjectInfo, body: bytes) -> int:
    """Copy version ``live`` aside, then swap it for ``body``; PreconditionFailed if either changed meanwhile.

    The copy is conditioned on ``live`` still being the summary, and on the copy left by an earlier
    refresh being the one seen here, so two refreshes of one run never interleave their copies.
    """
    copy = storage.stat(previous_name(run))
    storage.copy(
        live,
        previous_name(run),
        copy.generation if copy is not None else 0,
        metadata={PREVIOUS_GENERATION_KEY: str(live.generation)},
    )
    return storage.write(run.summary_name, body, live.generation, metadata=summary_metadata())
