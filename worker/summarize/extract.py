"""Turn a run's local files into its summary: the library call behind ``summarize`` and the worker."""

from __future__ import annotations

import datetime as dt
import functools
import os
from collections.abc import Mapping
from typing import Any

from mmm_backfill.config import RdsLimits
from mmm_backfill.errors import MissingRunFile
from mmm_backfill.runpath import BEST_MODEL_ID, INPUT_COLLECT, OUTPUT_COLLECT, TIMINGS, RunPath
from worker.boundary.rbridge import RSession
from worker.boundary.runfiles import parse_best_model_id, parse_timings
from worker.summarize import robyn
from worker.summarize.summary import RunData, build_summary


def _read_text(path: str, max_bytes: int) -> bytes:
    """At most one byte past the limit: enough for the parser to refuse the file, never more."""
    with open(path, "rb") as fh:
        return fh.read(max_bytes + 1)


def read_run(files: Mapping[str, str], session: RSession | None = None, limits: RdsLimits = RdsLimits()) -> RunData:
    """Read a run from local ``files`` (file name → path); only OutputCollect.RDS is required.

    ``session`` defaults to the process's shared R.
    """
    if OUTPUT_COLLECT not in files:
        raise MissingRunFile(f"{OUTPUT_COLLECT}: missing (a run needs it)")
    session = session or RSession.shared()
    read_models = functools.partial(robyn.read_models, max_models=limits.max_models)
    models = session.inspect_file(files[OUTPUT_COLLECT], limits, OUTPUT_COLLECT, read_models)
    metadata = None
    if INPUT_COLLECT in files:
        metadata = session.inspect_file(files[INPUT_COLLECT], limits, INPUT_COLLECT, robyn.read_input_metadata)
    best_id, minutes, cap = None, None, limits.max_text_bytes
    if BEST_MODEL_ID in files:
        best_id, minutes = parse_best_model_id(_read_text(files[BEST_MODEL_ID], cap), cap)
    if minutes is None and TIMINGS in files:
        minutes = parse_timings(_read_text(files[TIMINGS], cap), cap)
    return RunData(models=models, input_metadata=metadata, best_model_id=best_id, training_time_mins=minutes)


def files_in_dir(directory: str) -> dict[str, str]:
    """The run files present in a local folder."""
    names = (OUTPUT_COLLECT, INPUT_COLLECT, BEST_MODEL_ID, TIMINGS)
    return {n: os.path.join(directory, n) for n in names if os.path.isfile(os.path.join(directory, n))}


def summarize_files(
    run: RunPath,
    files: Mapping[str, str],
    session: RSession | None = None,
    limits: RdsLimits = RdsLimits(),
    now: dt.datetime | None = None,
) -> dict[str, Any]:
    """Build the summary of ``run`` from its local files."""
    data = read_run(files, session, limits)
    return build_summary(run, data, now or dt.datetime.now(dt.UTC))
