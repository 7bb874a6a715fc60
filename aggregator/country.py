"""The country file (``model_summary/{country}/summary.json``) built from run summaries: pure, no I/O.

Run summaries are untrusted: what each one contributes is its typed headline (``aggregator/headline.py``).
"""

from __future__ import annotations

import datetime as dt
import json
import math
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from aggregator.headline import Headline, Unreadable, headline_of
from aggregator.headline import parse_summary as parse_summary  # re-exported: the parse behind a country file
from mmm_backfill.errors import InvalidRunPath
from mmm_backfill.runpath import RUN_SUMMARY_NAME, RunPath
from mmm_backfill.summary_schema import SCHEMA_VERSION

#: The only field that changes when nothing else did; comparisons ignore it.
VOLATILE_FIELDS = ("aggregated_at",)


@dataclass(frozen=True)
class Skipped:
    """A run summary left out of the country file, and why."""

    name: str
    reason: str


@dataclass(frozen=True)
class CountryBuild:
    """The country file and the summaries that could not be part of it."""

    document: dict[str, Any]
    skipped: list[Skipped]


def format_utc(moment: dt.datetime) -> str:
    """ISO 8601 in UTC with a ``Z``, to the second (like a summary's ``created_at``)."""
    return moment.astimezone(dt.UTC).isoformat(timespec="seconds").replace("+00:00", "Z")


def nrmse_of(model: Any) -> float | None:
    """A model entry's ``nrmse`` when it is a finite number, else None (ranked last)."""
    value = model.get("nrmse") if isinstance(model, dict) else None
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        return None
    return float(value)


def run_of(name: str) -> RunPath | None:
    """The run whose ``model_summary.json`` is object ``name``, or None for any other name."""
    folder, _, filename = name.rpartition("/")
    if filename != RUN_SUMMARY_NAME:
        return None
    try:
        return RunPath.parse(folder)
    except InvalidRunPath:
        return None


def check_summary(name: str, headline: Headline | Unreadable, country: str) -> str | None:
    """Why the summary cannot be part of ``country``'s file, or None when it can."""
    if isinstance(headline, Unreadable):
        return headline.reason
    run = run_of(name)
    if run is None:
        return "not_a_run_summary"
    if headline.country != country or run.country != country:
        return "other_country"
    if (headline.revision, headline.timestamp) != (run.revision, run.timestamp):
        return "path_mismatch"
    if headline.schema_version != SCHEMA_VERSION:
        return "unknown_schema_version"
    return headline.problem


def run_entry(run: RunPath, headline: Headline) -> dict[str, Any]:
    """One ``runs`` entry: where the run is and the typed headline fields of its summary."""
    entry: dict[str, Any] = {"revision": run.revision, "timestamp": run.timestamp, "run_path": run.prefix}
    entry.update(headline.fields or {})
    return entry


def best_model_overall(runs: list[dict[str, Any]]) -> dict[str, Any] | None:
    """The best model with the lowest nrmse across runs (missing nrmse last; ties by run path)."""
    candidates = [run for run in runs if run["best_model"] is not None]
    if not candidates:
        return None

    def rank(run: dict[str, Any]) -> tuple:
        nrmse = nrmse_of(run["best_model"])
        return (nrmse is None, nrmse or 0.0, run["run_path"])

    best = min(candidates, key=rank)
    origin = {"revision": best["revision"], "timestamp": best["timestamp"], "run_path": best["run_path"]}
    return {**origin, **{k: v for k, v in best["best_model"].items() if k not in origin}}


def build_country_file(country: str, summaries: Iterable[tuple[str, Any]], aggregated_at: dt.datetime) -> CountryBuild:
    """Build ``country``'s file from ``(object name, summary)`` pairs, in any order.

    A summary is given parsed, as its Headline or as its Unreadable verdict. Pairs that are not a
    valid summary of this country are left out and listed in ``skipped``.
    """
    runs, skipped = [], []
    for name, summary in summaries:
        headline = headline_of(summary)
        reason = check_summary(name, headline, country)
        if reason is None:
            runs.append(run_entry(run_of(name), headline))  # type: ignore[arg-type]
        else:
            skipped.append(Skipped(name, reason))
    runs.sort(key=lambda run: (run["revision"], run["timestamp"], run["run_path"]))
    document = {
        "schema_version": SCHEMA_VERSION,
        "country": country,
        "revision": None,
        "aggregated_at": format_utc(aggregated_at),
        "total_runs": len(runs),
        "runs_with_pareto_models": sum(1 for run in runs if run["has_pareto_models"] is True),
        "best_model_overall": best_model_overall(runs),
        "runs": runs,
    }
    return CountryBuild(document, sorted(skipped, key=lambda s: s.name))


def content_of(document: Any) -> Any:
    """The document without the fields that change on every rebuild."""
    if not isinstance(document, dict):
        return document
    return {k: v for k, v in document.items() if k not in VOLATILE_FIELDS}


def same_content(a: Any, b: Any) -> bool:
    """True when two country files say the same thing (``aggregated_at`` aside)."""
    return content_of(a) == content_of(b)


def encode_country_file(document: dict[str, Any]) -> bytes:
    """Stable JSON bytes (key order as built; no NaN, which JSON readers reject)."""
    return (json.dumps(document, indent=2, allow_nan=False) + "\n").encode("utf-8")
