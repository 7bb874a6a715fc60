"""enqueue --refresh on the real emulators: states from the listing, generations in the requests."""

import json
import subprocess
import sys

import pytest

from mmm_backfill.messages import SummaryRequest
from mmm_backfill.summary_state import summary_metadata
from producer.enqueue import enqueue

pytestmark = pytest.mark.integration


def run_enqueue(settings, storage, bus, **options):
    args = {"revision": None, "country": None, "limit": None, "dry_run": False, "show_progress": False, **options}
    return enqueue(settings, storage, bus, **args)


@pytest.fixture
def mixed(storage):
    """Runs t0..t3 of r1/de: missing, legacy, outdated, current; returns summary generations by run."""
    generations = {}
    for i, metadata in enumerate([None, {}, summary_metadata(generator_version="0.0.1"), summary_metadata()]):
        run = f"robyn/r1/de/t{i}"
        storage.write(f"{run}/OutputCollect.RDS", b"x", 0)
        if metadata is not None:
            generations[run] = storage.write(f"{run}/model_summary.json", b"{}", 0, metadata=metadata)
    return generations


def test_refresh_enqueues_missing_legacy_and_outdated_naming_the_generation(
    settings, storage, bus, topology, mixed, drain
):
    report = run_enqueue(settings, storage, bus, refresh=True)
    assert report.states == {"missing": 1, "legacy": 1, "outdated": 1, "current": 1}
    assert (report.runs_seen, report.missing, report.enqueued) == (4, 1, 3)
    received = drain(settings.request_subscription, expect=3)
    requests = {r.run_path: r.replace_generation for r in map(SummaryRequest.decode, (m.data for m in received))}
    assert requests == {
        "robyn/r1/de/t0": None,
        "robyn/r1/de/t1": mixed["robyn/r1/de/t1"],
        "robyn/r1/de/t2": mixed["robyn/r1/de/t2"],
    }


def test_refresh_scan_uses_listing_calls_only(settings, storage, mixed):
    storage.calls.clear()
    report = run_enqueue(settings, storage, None, refresh=True, dry_run=True)
    assert report.would_enqueue == 3
    assert storage.calls == {"list_page": 1}


def test_without_refresh_only_missing_runs_are_enqueued(settings, storage, bus, topology, mixed, drain):
    report = run_enqueue(settings, storage, bus)
    assert report.enqueued == 1
    (message,) = drain(settings.request_subscription, expect=1)
    assert "replace_generation" not in json.loads(message.data)


def test_refresh_limit_takes_runs_in_path_order(settings, storage, mixed):
    report = run_enqueue(settings, storage, None, refresh=True, dry_run=True, limit=2)
    assert report.would_enqueue == 2


def test_cli_enqueue_refresh_dry_run_prints_states_as_json(settings, storage, topology, mixed, emulator_env):
    env = {**emulator_env, "MMM_BACKFILL_PROJECT": settings.project, "MMM_BACKFILL_BUCKET": settings.bucket}
    args = ["enqueue", "--refresh", "--dry-run", "--revision", "r1", "--country", "de", "--json"]
    result = subprocess.run(
        [sys.executable, "-m", "mmm_backfill", *args], env=env, capture_output=True, text=True, timeout=120
    )
    assert result.returncode == 0, result.stderr
    document = json.loads(result.stdout)
    assert document["refresh"] is True and document["would_enqueue"] == 3
    assert document["states"] == {"missing": 1, "legacy": 1, "outdated": 1, "current": 1}
