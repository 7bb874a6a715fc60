"""Fill a bucket with Robyn runs: generated ones, or a local folder laid out like the bucket."""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from collections.abc import Callable
from pathlib import Path

from local_stack.fixtures import RunSpec, generate_runs
from mmm_backfill.runpath import OUTPUT_COLLECT, RUN_SUMMARY_NAME, RUNS_ROOT
from mmm_backfill.storage import Storage

#: Revisions and countries of generated runs, cycled through.
REVISIONS = ("r100", "r101")
COUNTRIES = ("de", "fr", "us")


def plan_runs(count: int, root: str) -> list[RunSpec]:
    """``count`` varied runs spread over revisions × countries, written under ``root/robyn/``."""
    specs = []
    for i in range(count):
        revision, country = REVISIONS[i % len(REVISIONS)], COUNTRIES[(i // len(REVISIONS)) % len(COUNTRIES)]
        timestamp = f"{1101 + i // 28:04d}_{(i * 7919) % 240000:06d}"
        specs.append(
            RunSpec(
                dir=os.path.join(root, RUNS_ROOT, revision, country, timestamp),
                models=20 + (i * 13) % 80,
                fronts=(0, 1, 2, 3)[i % 4],
                validation=("values", "na", "none")[i % 3],
                paid_media=1 + i % 5,
                dates=("Date", "character")[i % 2],
                tibble=i % 2,
                seed=i + 1,
            )
        )
    return specs


def upload_tree(storage: Storage, root: str, progress: Callable[[int], None] | None = None) -> int:
    """Upload every file below ``root`` to the same relative name in the bucket; return the count."""
    count = 0
    for path in sorted(Path(root).rglob("*")):
        if path.is_file():
            storage.upload_file(path.relative_to(root).as_posix(), str(path))
            count += 1
            if progress:
                progress(1)
    return count


def seed_generated(storage: Storage, runs: int, progress: Callable[[int], None] | None = None) -> int:
    """Generate ``runs`` runs with R and upload them; return the number of objects written."""
    with tempfile.TemporaryDirectory(prefix="mmm-seed-") as tmp:
        generate_runs(plan_runs(runs, tmp))
        return upload_tree(storage, tmp, progress)


#: What the app's old extractor leaves beside each real sample run.
REFERENCE_SUMMARY = "reference_model_summary.json"


def legacy_summary(revision: str, country: str, timestamp: str) -> dict:
    """A summary shaped like the old extractor's: no Pareto models, no training time, zoneless time."""
    return {
        "country": country,
        "revision": revision,
        "timestamp": timestamp,
        "created_at": "2026-01-01 00:00:00",
        "training_time_mins": None,
        "has_pareto_models": False,
        "pareto_model_count": 0,
        "pareto_models": [],
        "candidate_model_count": 0,
        "candidate_models": [],
        "best_model": None,
        "input_metadata": None,
    }


def place_legacy_summaries(root: str) -> int:
    """Give every run below ``root`` (a local bucket-shaped folder) a legacy ``model_summary.json``.

    A run with the old extractor's ``reference_model_summary.json`` gets that file; others get
    ``legacy_summary``. Files are plain, without mmm-backfill's metadata, so they list as legacy.
    """
    placed = 0
    for output in sorted(Path(root).glob(f"{RUNS_ROOT}/*/*/*/{OUTPUT_COLLECT}")):
        folder = output.parent
        reference = folder / REFERENCE_SUMMARY
        if reference.is_file():
            shutil.copyfile(reference, folder / RUN_SUMMARY_NAME)
        else:
            revision, country, timestamp = folder.parts[-3:]
            (folder / RUN_SUMMARY_NAME).write_text(json.dumps(legacy_summary(revision, country, timestamp), indent=2))
        placed += 1
    return placed
