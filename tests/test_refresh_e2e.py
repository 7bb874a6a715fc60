"""Refresh end to end on the real emulators, through the CLI: the app's legacy summaries of the real
samples become current and correct, the old ones are kept, the country files equal a fresh rebuild."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys

import pytest

from local_stack import testing
from local_stack.samples import sample_run_dirs
from local_stack.seed import upload_tree
from local_stack.stack import LocalStack
from mmm_backfill.runpath import country_summary_name, run_path_from_local_dir
from mmm_backfill.summary_state import SummaryState, summary_state
from worker.boundary.rbridge import RSession
from worker.replace import previous_name
from worker.summarize.extract import files_in_dir, summarize_files

pytestmark = [pytest.mark.integration, pytest.mark.e2e]

REFERENCE = "reference_model_summary.json"


def cli(env, *args):
    result = subprocess.run(
        [sys.executable, "-m", "mmm_backfill", *args], env=env, capture_output=True, text=True, timeout=300
    )
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout)


def states(storage):
    return {
        o.name.rsplit("/", 1)[0]: summary_state(o.metadata)
        for o in storage.list("robyn/")
        if o.name.endswith("/model_summary.json")
    }


def without(document, *keys):
    return {k: v for k, v in document.items() if k not in keys}


@pytest.fixture
def legacy_bucket(tmp_path, samples_root):
    """The real sample runs, each with the old extractor's summary placed as its model_summary.json."""
    root = tmp_path / "bucket"
    for run_dir in sample_run_dirs():
        dest = root.joinpath(*run_dir.parts[-4:])
        shutil.copytree(run_dir, dest, ignore=shutil.ignore_patterns(REFERENCE))
        shutil.copyfile(run_dir / REFERENCE, dest / "model_summary.json")
    return {str(run_path_from_local_dir(str(d))): d for d in sample_run_dirs()}, root


def expected_summary(run_dir):
    """What mmm-backfill makes of the run's local files (the correct summary)."""
    return summarize_files(run_path_from_local_dir(str(run_dir)), files_in_dir(str(run_dir)), RSession.shared())


def test_refresh_makes_every_legacy_summary_current_and_correct(
    settings, storage, emulator_env, legacy_bucket, tmp_path
):
    runs, root = legacy_bucket
    upload_tree(storage, str(root))
    (tmp_path / "stack").mkdir()
    stack = LocalStack(
        settings,
        pubsub_host=emulator_env["PUBSUB_EMULATOR_HOST"],
        storage_url=emulator_env["STORAGE_EMULATOR_HOST"],
        workdir=str(tmp_path / "stack"),
    )
    env = {**emulator_env, **stack.env}
    cli(env, "setup", "--json")
    assert cli(env, "status", "--json")["totals"]["legacy"] == len(runs)
    assert cli(env, "enqueue", "--json")["enqueued"] == 0  # plain backfill: nothing is missing
    first = cli(env, "enqueue", "--refresh", "--json")
    assert (first["enqueued"], first["states"]["legacy"]) == (len(runs), len(runs))
    stack.spawn("worker", "--processes", "2", log_name="worker")
    stack.spawn("aggregator", log_name="aggregator")
    try:
        current = lambda: all(s is SummaryState.CURRENT for s in states(storage).values())  # noqa: E731
        assert testing.wait_for(current, 240, 0.5), "every summary current"
        countries = {path.split("/")[2] for path in runs}
        assert testing.wait_for(lambda: _all_refreshed(storage, countries, len(runs)), 120, 0.5), (
            "country files show the refreshed summaries"
        )
        second = cli(env, "enqueue", "--refresh", "--json")
        assert second["enqueued"] == 0 and second["states"]["current"] == len(runs)
    finally:
        codes = stack.stop_processes()
    assert codes == [0, 0]

    for path, run_dir in runs.items():
        summary = json.loads(storage.read(f"{path}/model_summary.json")[0])
        assert summary["has_pareto_models"] is True and summary["pareto_model_count"] >= 1
        assert summary["training_time_mins"] is not None and summary["created_at"].endswith("Z")
        assert without(summary, "created_at") == without(expected_summary(run_dir), "created_at")
        assert (
            storage.read(previous_name(run_path_from_local_dir(str(run_dir))))[0] == (run_dir / REFERENCE).read_bytes()
        )

    files = _country_files(storage, countries)
    assert sum(doc["runs_with_pareto_models"] for doc in files.values()) == len(runs)
    cli(env, "aggregate", "--json")
    rebuilt = {c: json.loads(storage.read(country_summary_name(c))[0]) for c in countries}
    assert {c: without(d, "aggregated_at") for c, d in files.items()} == {
        c: without(d, "aggregated_at") for c, d in rebuilt.items()
    }
    assert cli(env, "status", "--json")["totals"]["current"] == len(runs)


def _country_files(storage, countries):
    found = {c: storage.read(country_summary_name(c)) for c in countries}
    return {c: json.loads(f[0]) for c, f in found.items() if f is not None}


def _all_refreshed(storage, countries, runs):
    files = _country_files(storage, countries)
    return len(files) == len(countries) and sum(doc["runs_with_pareto_models"] for doc in files.values()) == runs
