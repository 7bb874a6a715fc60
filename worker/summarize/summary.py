"""Build a run's ``model_summary.json`` from plain data (no R, no I/O)."""

from __future__ import annotations

import datetime as dt
import math
from dataclasses import dataclass, field
from typing import Any

from mmm_backfill import TOOL_NAME, __version__
from mmm_backfill.errors import EmptyModels
from mmm_backfill.runpath import RunPath
from mmm_backfill.summary_schema import MAX_CANDIDATE_MODELS, MAX_PARETO_MODELS, MODEL_METRICS, SCHEMA_VERSION


@dataclass(frozen=True)
class ModelRow:
    """One row of ``resultHypParam``: a model's id, Pareto front (None if on none) and metrics."""

    model_id: str
    front: int | None
    metrics: dict[str, float | None] = field(default_factory=dict)


@dataclass(frozen=True)
class RunData:
    """Everything a summary is built from, already read and type-checked.

    models: rows in ``resultHypParam`` order (the first is the app's default best model).
    input_metadata: the ``input_metadata`` object, or None without ``InputCollect.RDS``.
    best_model_id: first line of ``best_model_id.txt``, if the run has one.
    training_time_mins: from ``best_model_id.txt`` or ``timings.csv``, if either says.
    """

    models: list[ModelRow]
    input_metadata: dict[str, Any] | None = None
    best_model_id: str | None = None
    training_time_mins: float | None = None


def clean_number(value: Any) -> float | None:
    """Full-precision float, or None for NA, NaN, ±Inf and non-numbers."""
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    number = float(value)
    return number if math.isfinite(number) else None


def _model_entry(row: ModelRow) -> dict[str, Any]:
    entry: dict[str, Any] = {"model_id": row.model_id}
    entry.update({name: clean_number(row.metrics.get(name)) for name in MODEL_METRICS})
    return entry


def _rank(indexed: tuple[int, ModelRow]) -> tuple:
    """Front first (no front last), then nrmse (missing last), then original row order."""
    position, row = indexed
    nrmse = clean_number(row.metrics.get("nrmse"))
    return (row.front is None, row.front or 0, nrmse is None, nrmse or 0.0, position)


def rank_models(models: list[ModelRow]) -> list[ModelRow]:
    return [row for _, row in sorted(enumerate(models), key=_rank)]


def choose_best(models: list[ModelRow], best_model_id: str | None) -> ModelRow:
    """The model the app chose (``best_model_id.txt``) when it is in the table, else the first row."""
    if best_model_id is not None:
        for row in models:
            if row.model_id == best_model_id:
                return row
    return models[0]


def build_summary(run: RunPath, data: RunData, created_at: dt.datetime) -> dict[str, Any]:
    """Return the summary object for ``run``; ``created_at`` must be timezone-aware."""
    if not data.models:
        raise EmptyModels(f"{run}: resultHypParam has no models")
    ranked = rank_models(data.models)
    pareto = [row for row in ranked if row.front is not None]
    return {
        "schema_version": SCHEMA_VERSION,
        "generator": {"name": TOOL_NAME, "version": __version__},
        "country": run.country,
        "revision": run.revision,
        "timestamp": run.timestamp,
        "created_at": created_at.astimezone(dt.UTC).isoformat(timespec="seconds").replace("+00:00", "Z"),
        "training_time_mins": clean_number(data.training_time_mins),
        "has_pareto_models": bool(pareto),
        "pareto_model_count": len(pareto),
        "pareto_models": [{**_model_entry(row), "robyn_pareto_front": row.front} for row in pareto[:MAX_PARETO_MODELS]],
        "candidate_model_count": len(data.models),
        "candidate_models": [
            {**_model_entry(row), "is_pareto": row.front is not None} for row in ranked[:MAX_CANDIDATE_MODELS]
        ],
        "best_model": _model_entry(choose_best(data.models, data.best_model_id)),
        "input_metadata": data.input_metadata,
    }
