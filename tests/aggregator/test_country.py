"""The country file built from run summaries (pure: no bucket)."""

import datetime as dt
import json
import math
import random

from aggregator.country import (
    Unreadable,
    build_country_file,
    encode_country_file,
    parse_summary,
    same_content,
)
from mmm_backfill.runpath import RunPath
from mmm_backfill.summary_schema import SCHEMA_VERSION
from worker.summarize.summary import ModelRow, RunData, build_summary

NOW = dt.datetime(2026, 12, 1, 8, 30, 0, tzinfo=dt.UTC)


def named(revision, timestamp, nrmse=0.2, country="de", fronts=1):
    """``(object name, summary)`` of a realistic run summary whose best model has ``nrmse``."""
    run = RunPath(revision, country, timestamp)
    models = [ModelRow(f"{revision}_{timestamp}", 1 if fronts else None, {"nrmse": nrmse}), ModelRow("other", None)]
    created = dt.datetime(2026, 11, 29, 12, 0, 5, tzinfo=dt.UTC)
    return run.summary_name, build_summary(run, RunData(models=models, training_time_mins=2.0), created)


def build(pairs, country="de"):
    return build_country_file(country, pairs, NOW)


def test_file_has_the_documented_fields_and_no_revision():
    document = build([named("r1", "t1")]).document
    assert list(document) == [
        "schema_version",
        "country",
        "revision",
        "aggregated_at",
        "total_runs",
        "runs_with_pareto_models",
        "best_model_overall",
        "runs",
    ]
    assert document["schema_version"] == SCHEMA_VERSION
    assert document["country"] == "de"
    assert document["revision"] is None


def test_aggregated_at_is_iso_utc_with_z():
    aware = dt.datetime(2026, 12, 1, 10, 30, 0, tzinfo=dt.timezone(dt.timedelta(hours=2)))
    assert build_country_file("de", [], aware).document["aggregated_at"] == "2026-12-01T08:30:00Z"


def test_run_entry_carries_where_the_run_is_and_its_headline_fields():
    name, summary = named("r1", "t1", nrmse=0.25)
    (entry,) = build([(name, summary)]).document["runs"]
    assert entry == {
        "revision": "r1",
        "timestamp": "t1",
        "run_path": "robyn/r1/de/t1",
        "created_at": "2026-11-29T12:00:05Z",
        "has_pareto_models": True,
        "pareto_model_count": 1,
        "candidate_model_count": 2,
        "best_model": summary["best_model"],
        "training_time_mins": 2.0,
    }


def test_runs_are_ordered_by_revision_then_timestamp_whatever_the_input_order():
    pairs = [named("r2", "t1"), named("r1", "t2"), named("r1", "t1"), named("r10", "t0")]
    random.Random(4).shuffle(pairs)
    runs = build(pairs).document["runs"]
    assert [(r["revision"], r["timestamp"]) for r in runs] == [("r1", "t1"), ("r1", "t2"), ("r10", "t0"), ("r2", "t1")]


def test_counts_runs_and_runs_with_pareto_models():
    document = build([named("r1", "t1"), named("r1", "t2", fronts=0), named("r2", "t1")]).document
    assert document["total_runs"] == 3
    assert document["runs_with_pareto_models"] == 2


def test_best_model_overall_is_the_lowest_nrmse_across_runs_with_its_run():
    document = build([named("r1", "t1", 0.3), named("r2", "t9", 0.1), named("r3", "t1", 0.2)]).document
    best = document["best_model_overall"]
    assert (best["revision"], best["timestamp"], best["run_path"]) == ("r2", "t9", "robyn/r2/de/t9")
    assert best["model_id"] == "r2_t9"
    assert best["nrmse"] == 0.1


def test_missing_nrmse_ranks_last():
    document = build([named("r1", "t1", None), named("r1", "t2", 0.9)]).document
    assert document["best_model_overall"]["timestamp"] == "t2"


def test_a_model_without_nrmse_is_still_best_when_no_run_has_one():
    document = build([named("r1", "t1", None)]).document
    assert document["best_model_overall"]["model_id"] == "r1_t1"


def test_equal_nrmse_is_broken_by_run_path_whatever_the_input_order():
    pairs = [named("r2", "t1", 0.1), named("r1", "t3", 0.1), named("r1", "t2", 0.1)]
    for seed in range(5):
        random.Random(seed).shuffle(pairs)
        assert build(pairs).document["best_model_overall"]["run_path"] == "robyn/r1/de/t2"


def test_non_numeric_nrmse_counts_as_missing():
    name, summary = named("r1", "t1", 0.1)
    summary["best_model"]["nrmse"] = "0.01"
    document = build([(name, summary), named("r1", "t2", 0.5)]).document
    assert document["best_model_overall"]["timestamp"] == "t2"


def test_no_runs_gives_an_empty_file():
    document = build([]).document
    assert (document["total_runs"], document["runs_with_pareto_models"]) == (0, 0)
    assert document["best_model_overall"] is None
    assert document["runs"] == []


def test_summaries_that_are_not_json_objects_are_skipped_and_reported():
    good = named("r1", "t1")
    pairs = [good, ("robyn/r1/de/t2/model_summary.json", [1, 2]), ("robyn/r1/de/t3/model_summary.json", "text")]
    built = build(pairs)
    assert built.document["total_runs"] == 1
    assert [(s.name, s.reason) for s in built.skipped] == [
        ("robyn/r1/de/t2/model_summary.json", "not_object"),
        ("robyn/r1/de/t3/model_summary.json", "not_object"),
    ]


def test_unparseable_summary_is_skipped_with_its_reason():
    broken = parse_summary(b"{not json")
    assert isinstance(broken, Unreadable)
    built = build([("robyn/r1/de/t1/model_summary.json", broken)])
    assert built.document["total_runs"] == 0
    assert built.skipped[0].reason.startswith("not_json")


def test_summary_of_another_country_is_skipped():
    name, summary = named("r1", "t1", country="fr")
    built = build([(name, summary), named("r1", "t2")])
    assert [r["timestamp"] for r in built.document["runs"]] == ["t2"]
    assert [(s.name, s.reason) for s in built.skipped] == [(name, "other_country")]


def test_summary_whose_fields_disagree_with_its_path_is_skipped():
    _, summary = named("r1", "t1")
    built = build([("robyn/r1/de/t2/model_summary.json", summary)])
    assert [s.reason for s in built.skipped] == ["path_mismatch"]


def test_summary_of_an_unknown_schema_version_is_skipped():
    name, summary = named("r1", "t1")
    summary["schema_version"] = SCHEMA_VERSION + 1
    assert [s.reason for s in build([(name, summary)]).skipped] == ["unknown_schema_version"]


def test_old_extractor_summary_without_schema_version_is_kept():
    name, summary = named("r1", "t1")
    del summary["schema_version"], summary["generator"]
    assert build([(name, summary)]).document["total_runs"] == 1


def test_nan_in_a_summary_becomes_null_so_the_file_stays_json():
    parsed = parse_summary(b'{"training_time_mins": NaN, "x": Infinity}')
    assert parsed == {"training_time_mins": None, "x": None}


def test_same_content_ignores_aggregated_at_only():
    pairs = [named("r1", "t1"), named("r2", "t1")]
    earlier = build_country_file("de", pairs, NOW).document
    later = build_country_file("de", list(reversed(pairs)), NOW + dt.timedelta(hours=1)).document
    assert earlier["aggregated_at"] != later["aggregated_at"]
    assert same_content(earlier, later)
    assert not same_content(earlier, build(pairs[:1]).document)


def test_same_content_is_false_against_a_missing_file():
    assert not same_content(None, build([]).document)


def test_encoded_file_round_trips_and_is_stable():
    document = build([named("r1", "t1", 0.123456789012345)]).document
    data = encode_country_file(document)
    assert json.loads(data) == document
    assert data == encode_country_file(json.loads(data))
    assert not math.isnan(json.loads(data)["best_model_overall"]["nrmse"])
