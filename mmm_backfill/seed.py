"""Fill a bucket with Robyn runs: generated ones, or a local folder laid out like the bucket."""

from __future__ import annotations

import os
import tempfile
from collections.abc import Callable
from pathlib import Path

from mmm_backfill.fixtures import RunSpec, generate_runs
from mmm_backfill.runpath import RUNS_ROOT
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
