"""The benchmark runs end to end in its quick mode and reports every section (structure only, no timings)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.integration

REPO = Path(__file__).resolve().parents[2]
TARGET_NAMES = (
    "pool 2 worker(s) vs baseline",
    "pool 1 worker(s) vs baseline",
    "worker per-run time vs floor",
    "scaling efficiency at 2 workers",
)


@pytest.fixture(scope="module")
def quick(tmp_path_factory: pytest.TempPathFactory) -> dict:
    cache = tmp_path_factory.mktemp("bench-cache")
    env = {k: v for k, v in os.environ.items() if k not in ("PUBSUB_EMULATOR_HOST", "STORAGE_EMULATOR_HOST")}
    env["MMM_BENCH_CACHE"] = str(cache)
    out = subprocess.run(
        [sys.executable, "-m", "bench", "--quick", "--json"],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert out.returncode == 0, out.stderr[-4000:]
    return json.loads(out.stdout)


def test_reports_every_section_without_errors(quick):
    assert quick["errors"] == {}
    for key in (
        "meta",
        "config",
        "data",
        "baseline",
        "floor",
        "pool",
        "scaling",
        "producer",
        "aggregator",
        "refresh",
        "wait",
        "latency",
        "targets",
    ):
        assert key in quick, key
    assert quick["config"]["quick"] is True
    assert {"date", "cores", "memory_gib"} <= set(quick["meta"])


def test_pool_and_baseline_summarise_every_run(quick):
    runs = quick["config"]["runs"]
    assert quick["baseline"]["summarised"] == runs
    assert set(quick["pool"]) == {"1", "2"}
    for pool in quick["pool"].values():
        assert pool["complete"] is True
        assert pool["summaries_in_bucket"] == runs
        assert pool["runs_per_second"] > 0
        assert pool["peak_rss_mib_per_worker"] > 0
        assert len(pool["worker_memory_mib"]) == pool["workers"]
    assert quick["floor"]["runs"] == runs
    assert quick["scaling"]["2"]["efficiency"] is not None


def test_producer_reports_calls_and_ratio(quick):
    lite = quick["producer"]["lite"]
    assert lite["runs_seen"] == lite["runs"] == 2000
    assert lite["per_run_calls"] == 0  # a structural fact, not a timing
    assert lite["ratio_to_bare_list"] > 0
    assert lite["publish"]["enqueued"] == lite["missing"]
    assert quick["producer"]["fake_gcs"]["runs_seen"] == quick["producer"]["fake_gcs"]["runs"]


def test_aggregator_reports_rebuilds_and_downloads(quick):
    agg = quick["aggregator"]
    assert agg["events"] == 100
    assert agg["complete"] is True
    assert agg["rebuilds"] >= 1
    assert agg["summary_downloads"] >= 1


def test_refresh_scan_lists_only_and_refresh_replaces_every_run(quick):
    scan = quick["refresh"]["scan"]["refresh"]
    assert scan["states"] == {"missing": 500, "legacy": 500, "outdated": 500, "current": 500}
    assert scan["would_enqueue"] == 1500 and scan["per_run_calls"] == 0  # structural facts, not timings
    assert set(scan["dry_run_calls"]) == {"list_page"}
    per_run = quick["refresh"]["per_run"]
    assert per_run["fresh"]["outcomes"] == {"created": per_run["runs"]}
    assert per_run["refresh"]["outcomes"] == {"replaced": per_run["runs"]}
    assert per_run["refresh_to_fresh"] > 0


def test_wait_follows_every_run_and_reports_its_requests_beside_a_listing(quick):
    wait = quick["wait"]
    assert wait["follow"]["settled"] == wait["runs"] == 1000
    assert wait["follow"]["requests"]["pull"] >= 1 and wait["bare_listing"]["pages"] >= 1
    assert wait["ratio_to_bare_listing"] > 0


def test_drain_applies_every_event_that_waited_for_a_restarted_aggregator(quick):
    drain = quick["drain"]
    assert drain["complete"] is True
    assert drain["events_applied"] == drain["events"] == 100 and drain["country_file_runs"] == 101


def test_latency_measures_each_path_at_loopback_and_shaped(quick):
    latency = quick["latency"]
    assert set(latency["per_process"]) == {"samples", "generated"}
    for paths in latency["per_process"].values():
        assert set(paths) == {"sequential", "prefetch"}
        for found in paths.values():
            assert found["loopback"]["complete"] and found["shaped"]["complete"]
            assert found["shaped_to_loopback"] > 0
    for found in latency["spread"].values():
        assert found["complete"] and sum(found["runs_by_worker"]) == quick["config"]["latency_runs"]


def test_targets_are_listed_with_a_verdict(quick):
    names = [t["name"] for t in quick["targets"]]
    for name in TARGET_NAMES:
        assert name in names
    assert any(n.startswith("producer dry run") for n in names)
    assert any(n.startswith("aggregator") for n in names)
    assert any(n.startswith("refresh scan") for n in names)
    assert any(n.startswith("shaped / loopback per process") for n in names)
    assert {t["result"] for t in quick["targets"]} <= {"PASS", "FAIL", "n/a"}
