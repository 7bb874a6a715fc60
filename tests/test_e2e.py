"""End to end on the real emulators, through the CLI: setup, enqueue, two workers, aggregator, replay."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys

import pytest

from local_stack import testing
from local_stack.fixtures import generate_runs
from local_stack.samples import sample_run_dirs
from local_stack.seed import plan_runs, upload_tree
from local_stack.stack import LocalStack
from mmm_backfill.runpath import country_summary_name

pytestmark = [pytest.mark.integration, pytest.mark.e2e]

CORRUPT = "robyn/r101/de/0001_corrupt"


def cli(env, *args, check=True):
    result = subprocess.run(
        [sys.executable, "-m", "mmm_backfill", *args], env=env, capture_output=True, text=True, timeout=300
    )
    if check:
        assert result.returncode == 0, result.stderr
    return result


def wait_for(predicate, timeout, what):
    assert testing.wait_for(predicate, timeout, interval=0.5), f"timed out waiting for {what}"


def summaries(storage):
    return {o.name: o.generation for o in storage.list("robyn/") if o.name.endswith("/model_summary.json")}


def without_time(document):
    return {k: v for k, v in document.items() if k != "aggregated_at"}


@pytest.fixture
def bucket_tree(tmp_path):
    """24 generated runs over r100/r101 × de/fr/us, the real samples, and one corrupt run."""
    root = tmp_path / "bucket"
    generate_runs(plan_runs(24, str(root)))
    for run_dir in sample_run_dirs():
        dest = root.joinpath(*run_dir.parts[-4:])
        shutil.copytree(run_dir, dest, ignore=shutil.ignore_patterns("reference_model_summary.json"))
    good = (root / "robyn" / "r100" / "de").iterdir().__next__() / "OutputCollect.RDS"
    (root / CORRUPT).mkdir(parents=True)
    (root / CORRUPT / "OutputCollect.RDS").write_bytes(good.read_bytes()[: good.stat().st_size // 2])  # truncated
    return root, good


def test_backfill_end_to_end(settings, storage, emulator_env, bucket_tree, tmp_path):
    root, good_rds = bucket_tree
    upload_tree(storage, str(root))
    expected_runs = len({p.parent for p in root.glob("robyn/*/*/*/OutputCollect.RDS")})
    stack = LocalStack(
        settings,
        pubsub_host=emulator_env["PUBSUB_EMULATOR_HOST"],
        storage_url=emulator_env["STORAGE_EMULATOR_HOST"],
        workdir=str(tmp_path / "stack"),
    )
    (tmp_path / "stack").mkdir()
    env = {**emulator_env, **stack.env}

    cli(env, "setup")
    first = json.loads(cli(env, "enqueue", "--json").stdout)
    assert first["enqueued"] == expected_runs
    stack.spawn("worker", "--processes", "2", log_name="worker")
    stack.spawn("aggregator", log_name="aggregator")
    try:
        wait_for(lambda: len(summaries(storage)) == expected_runs - 1, 240, "every good run summarised")
        generations = summaries(storage)

        second = json.loads(cli(env, "enqueue", "--json").stdout)
        assert second["enqueued"] == 1  # only the corrupt run is still missing
        dead = json.loads(cli(env, "replay", "--dry-run", "--json").stdout)
        assert CORRUPT in json.dumps(dead) and "rds_truncated" in json.dumps(dead)

        storage.upload_file(f"{CORRUPT}/OutputCollect.RDS", str(good_rds))
        wait_for(lambda: _replay_once(env), 60, "the dead letter replayed")
        wait_for(lambda: f"{CORRUPT}/model_summary.json" in summaries(storage), 120, "the fixed run summarised")
        after = summaries(storage)
        assert {k: after[k] for k in generations} == generations  # nothing written twice
        countries = {p.split("/")[2] for p in after}
        wait_for(
            lambda: all(_country_total(storage, c) == _count(after, c) for c in countries),
            120,
            "country files complete",
        )
    finally:
        codes = stack.stop_processes()
    assert codes == [0, 0]

    streamed = {c: without_time(json.loads(storage.read(country_summary_name(c))[0])) for c in countries}
    cli(env, "aggregate", "--json")
    rebuilt = {c: without_time(json.loads(storage.read(country_summary_name(c))[0])) for c in countries}
    assert streamed == rebuilt


def _replay_once(env) -> bool:
    result = json.loads(cli(env, "replay", "--json").stdout)
    return result.get("replayed", 0) >= 1


def _country_total(storage, country):
    found = storage.read(country_summary_name(country))
    return json.loads(found[0])["total_runs"] if found else -1


def _count(summary_names, country):
    return sum(1 for p in summary_names if p.split("/")[2] == country)
