"""Shared fixtures: sample runs, generated runs, R helpers (and, later, the emulators)."""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pytest

from mmm_backfill.fixtures import RunSpec, generate_runs

REPO = Path(__file__).resolve().parent.parent
#: Real Robyn runs shipped beside the repository (``../shared/robyn-samples``), when present.
SAMPLES = Path(os.environ.get("MMM_BACKFILL_SAMPLES", REPO.parent / "shared" / "robyn-samples"))


def sample_run_dirs() -> list[Path]:
    return sorted(p.parent for p in SAMPLES.glob("robyn/*/*/*/OutputCollect.RDS"))


@pytest.fixture(scope="session")
def samples_root() -> Path:
    if not sample_run_dirs():
        pytest.skip(f"real Robyn samples not present at {SAMPLES}")
    return SAMPLES


#: The variations the generator covers, by name.
VARIANTS: dict[str, dict] = {
    "standard": {},
    "no_validation_columns": {"validation": "none"},
    "validation_na": {"validation": "na"},
    "no_pareto_front": {"fronts": 0},
    "one_paid_media": {"paid_media": 1},
    "character_dates": {"dates": "character"},
    "bad_metrics": {"bad_metrics": 1},
    "plain_data_frame": {"tibble": 0},
    "old_front_name": {"front_column": "robyn_pareto_front"},
    "logical_front_column": {"front_column": "pareto_optimal"},
    "many_models": {"models": 150, "fronts": 3},
    "only_output_collect": {"best_file": 0, "timings": 0, "input": 0},
    "timings_only": {"best_file": 0},
}


@pytest.fixture(scope="session")
def generated_runs(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """One generated run per variant, under ``robyn/gen/xx/{variant}``."""
    root = tmp_path_factory.mktemp("generated")
    dirs = {name: root / "robyn" / "gen" / "xx" / name.replace("_", "-") for name in VARIANTS}
    generate_runs(RunSpec(dir=str(dirs[n]), seed=i + 1, **VARIANTS[n]) for i, n in enumerate(VARIANTS))
    return dirs


@pytest.fixture(scope="session")
def run_r(tmp_path_factory: pytest.TempPathFactory):
    """Run a snippet of R code with ``Rscript --vanilla`` (for building hostile inputs)."""
    rscript = shutil.which("Rscript")
    assert rscript, "Rscript is required (Debian r-base-core)"

    def run(code: str) -> None:
        subprocess.run([rscript, "--vanilla", "-e", code], check=True, capture_output=True)

    return run
