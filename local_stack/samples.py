"""Where the real Robyn sample runs are: ``../shared/robyn-samples`` beside the repository, or
``MMM_BACKFILL_SAMPLES``. Tests, the benchmark and ``demo --seed-from`` read them from here."""

from __future__ import annotations

import os
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
SAMPLES_ROOT = Path(os.environ.get("MMM_BACKFILL_SAMPLES", REPO.parent / "shared" / "robyn-samples"))


def sample_run_dirs() -> list[Path]:
    """Folders of the real sample runs (empty when the samples are not present)."""
    return sorted(p.parent for p in SAMPLES_ROOT.glob("robyn/*/*/*/OutputCollect.RDS"))
