"""A refreshed summary (same run, new generation) replaces its entry in the country file."""

import dataclasses
import datetime as dt
import json

import pytest

from aggregator.cache import SummaryCache
from aggregator.country import build_country_file, same_content
from aggregator.rebuild import list_run_summaries, rebuild_country
from mmm_backfill.runpath import RunPath
from mmm_backfill.summary_state import summary_metadata
from worker.replace import previous_name
from worker.summarize.summary import ModelRow, RunData, build_summary

pytestmark = pytest.mark.integration

RUNS = [RunPath("r1", "de", "t1"), RunPath("r2", "de", "t2")]


def legacy_summary(run):
    """What the old extractor wrote: no Pareto models, 4 digits, no training time."""
    best = {"model_id": f"{run.timestamp}_m0", "nrmse": 0.1}
    return {
        "country": run.country,
        "revision": run.revision,
        "timestamp": run.timestamp,
        "created_at": "2026-11-04 08:21:03",
        "training_time_mins": None,
        "has_pareto_models": False,
        "pareto_model_count": 0,
        "candidate_model_count": 3,
        "best_model": best,
    }


def refresh(storage, run):
    """Replace the run's summary as a worker's refresh does: old version aside, then compare-and-swap."""
    old = storage.stat(run.summary_name)
    storage.write(previous_name(run), storage.read(run.summary_name)[0], None)
    models = [ModelRow(f"{run.timestamp}_m{i}", i + 1 if i < 2 else None, {"nrmse": 0.123456789 + i}) for i in range(3)]
    summary = build_summary(run, RunData(models=models, training_time_mins=1.5), dt.datetime.now(dt.UTC))
    body = json.dumps(summary).encode()
    return storage.write(run.summary_name, body, old.generation, metadata=summary_metadata())


def fresh_build(storage, country):
    pairs = [(name, json.loads(storage.read(name)[0])) for name, _ in list_run_summaries(storage, country)]
    return build_country_file(country, pairs, dt.datetime.now(dt.UTC)).document


@pytest.fixture
def legacy_bucket(storage):
    for run in RUNS:
        storage.write(run.summary_name, json.dumps(legacy_summary(run)).encode(), 0)


def test_rebuild_after_a_refresh_has_one_entry_with_the_new_content(kit, storage, legacy_bucket):
    cache = SummaryCache(storage)  # the same cache before and after: keyed by generation, never stale
    before = rebuild_country(storage, "de", cache).document
    assert before["runs_with_pareto_models"] == 0
    refresh(storage, RUNS[0])
    after = rebuild_country(storage, "de", cache).document
    assert after["total_runs"] == 2 and [r["run_path"] for r in after["runs"]] == [r.prefix for r in RUNS]
    entry = after["runs"][0]
    assert (entry["has_pareto_models"], entry["pareto_model_count"], entry["training_time_mins"]) == (True, 2, 1.5)
    assert after["runs_with_pareto_models"] == 1
    assert after["best_model_overall"]["nrmse"] == 0.1  # the other run's legacy best still counts until refreshed
    assert same_content(after, fresh_build(storage, "de"))


def test_running_aggregator_picks_up_a_replaced_event(kit, storage, legacy_bucket):
    aggregator = kit.start()
    kit.publish(RUNS)
    assert kit.wait_for(lambda: kit.runs_in_file("de") == {r.prefix for r in RUNS})
    generation = refresh(storage, RUNS[1])
    event = dataclasses.replace(kit.event(RUNS[1]), outcome="replaced", generation=generation)
    kit.bus.publish_many(kit.settings.event_topic, [(event.encode(), event.attributes())])
    assert kit.wait_for(lambda: (kit.read_country("de") or {}).get("runs_with_pareto_models") == 1)
    assert same_content(kit.read_country("de"), fresh_build(storage, "de"))
    aggregator.stop()
