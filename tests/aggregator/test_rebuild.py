"""Rebuilding country files against fake-gcs-server: listing, cache, conditional writes, one-shot aggregate."""

import datetime as dt
import json
import threading

import pytest

from aggregator.cache import SummaryCache
from aggregator.country import Skipped, build_country_file, same_content
from aggregator.rebuild import (
    MAX_SKIPPED_REPORTED,
    AggregateReport,
    RebuildConflict,
    RebuildResult,
    aggregate,
    list_run_summaries,
    rebuild_country,
)
from mmm_backfill.errors import InvalidRunPath
from mmm_backfill.runpath import RunPath, country_summary_name
from mmm_backfill.stopping import StopRequest
from mmm_backfill.storage import PreconditionFailed

pytestmark = pytest.mark.integration


def runs(country, n, revision="r1"):
    return [RunPath(revision, country, f"t{i:03d}") for i in range(n)]


def fresh_build(storage, country):
    """The country file built straight from every summary in the bucket, without the aggregator's I/O."""
    pairs = [(name, json.loads(storage.read(name)[0])) for name, _ in list_run_summaries(storage, country)]
    return build_country_file(country, pairs, dt.datetime.now(dt.UTC)).document


def test_rebuild_writes_the_same_file_as_a_fresh_build(kit, storage):
    kit.put_summaries(runs("de", 3, "r1") + runs("de", 2, "r2") + runs("fr", 2))
    result = rebuild_country(storage, "de", SummaryCache(storage))
    assert result.result == "written"
    assert same_content(kit.read_country("de"), fresh_build(storage, "de"))
    assert kit.read_country("de")["total_runs"] == 5


def test_only_run_summaries_of_the_country_are_listed(kit, storage):
    kit.put_summary(RunPath("r1", "de", "t1"))
    kit.put_summary(RunPath("r1", "den", "t1"))
    for name in ("robyn/r1/de/t2/OutputCollect.RDS", "robyn/r1/de/t1/old/model_summary.json"):
        storage.write(name, b"{}", 0)
    assert [name for name, _ in list_run_summaries(storage, "de")] == ["robyn/r1/de/t1/model_summary.json"]


def test_second_rebuild_without_new_runs_leaves_the_file_alone(kit, storage):
    kit.put_summaries(runs("de", 2))
    cache = SummaryCache(storage)
    first = rebuild_country(storage, "de", cache)
    writes = storage.calls.get("write", 0)
    second = rebuild_country(storage, "de", cache)
    assert (second.result, second.generation) == ("unchanged", first.generation)
    assert storage.calls.get("write", 0) == writes


def test_each_summary_is_downloaded_once_across_rebuilds(kit, storage):
    kit.put_summaries(runs("de", 4))
    cache = SummaryCache(storage)
    rebuild_country(storage, "de", cache)
    kit.put_summary(RunPath("r2", "de", "t9"))
    rebuild_country(storage, "de", cache)
    rebuild_country(storage, "de", cache)
    assert cache.downloads == 5
    assert kit.read_country("de")["total_runs"] == 5


def test_a_broken_summary_is_left_out_and_reported(kit, storage):
    kit.put_summary(RunPath("r1", "de", "t1"))
    storage.write("robyn/r1/de/t2/model_summary.json", b"\x00 not json", 0)
    result = rebuild_country(storage, "de", SummaryCache(storage))
    assert kit.read_country("de")["total_runs"] == 1
    assert [(s.name, s.reason.split(":")[0]) for s in result.skipped] == [
        ("robyn/r1/de/t2/model_summary.json", "not_json")
    ]


class RacingStorage:
    """Storage whose first country-file write is preceded by a competitor's rebuild (a lost race)."""

    def __init__(self, storage, competitor) -> None:
        self.storage, self.competitor, self.raced = storage, competitor, False

    def __getattr__(self, name):
        return getattr(self.storage, name)

    def write(self, name, data, if_generation_match, **kwargs):
        if not self.raced and name.startswith("model_summary/"):
            self.raced = True
            self.competitor()
        return self.storage.write(name, data, if_generation_match, **kwargs)


def test_a_lost_race_rebuilds_again_and_keeps_both_updates(kit, storage):
    kit.put_summary(RunPath("r1", "de", "t1"))

    def competitor():  # another aggregator saw a newer run and wrote first
        kit.put_summary(RunPath("r1", "de", "t2"))
        rebuild_country(storage, "de", SummaryCache(storage))

    result = rebuild_country(RacingStorage(storage, competitor), "de", SummaryCache(storage), sleep=lambda _: None)
    assert result.attempts == 2
    assert kit.runs_in_file("de") == {"robyn/r1/de/t1", "robyn/r1/de/t2"}


def test_rebuild_gives_up_after_bounded_lost_races(kit, storage, monkeypatch):
    kit.put_summary(RunPath("r1", "de", "t1"))

    def always_lose(*args, **kwargs):
        raise PreconditionFailed("model_summary/de/summary.json")

    monkeypatch.setattr(storage, "write", always_lose)
    with pytest.raises(RebuildConflict):
        rebuild_country(storage, "de", SummaryCache(storage), max_attempts=3, sleep=lambda _: None)


def test_concurrent_rebuilds_under_a_burst_of_new_runs_lose_no_update(kit, storage):
    """Two rebuilders, each adding runs and rebuilding after every one: the file ends with all of them."""
    errors = []

    def rebuilder(revision):
        cache = SummaryCache(storage)
        try:
            for run in runs("de", 60, revision):
                kit.put_summary(run)
                rebuild_country(storage, "de", cache)
        except Exception as exc:  # noqa: BLE001 - reported below
            errors.append(exc)

    threads = [threading.Thread(target=rebuilder, args=(rev,)) for rev in ("r1", "r2")]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(120)
    assert errors == []
    assert len(kit.runs_in_file("de")) == 120
    assert same_content(kit.read_country("de"), fresh_build(storage, "de"))


def test_a_bad_country_name_is_refused(storage):
    with pytest.raises(InvalidRunPath):
        rebuild_country(storage, "../x", SummaryCache(storage))


def test_aggregate_rebuilds_every_country_found(kit, storage, settings):
    kit.put_summaries(runs("de", 2) + runs("fr", 1, "r2"))
    storage.write("robyn/r3/us/t1/OutputCollect.RDS", b"x", 0)  # a country with no summary yet
    report = aggregate(settings, storage)
    assert [(r.country, r.result, r.document["total_runs"]) for r in report.results] == [
        ("de", "written", 2),
        ("fr", "written", 1),
        ("us", "written", 0),
    ]
    for country in ("de", "fr"):
        assert same_content(kit.read_country(country), fresh_build(storage, country))


def test_aggregate_of_one_country_touches_only_that_country(kit, storage, settings):
    kit.put_summaries(runs("de", 1) + runs("fr", 1))
    report = aggregate(settings, storage, country="fr")
    assert [r.country for r in report.results] == ["fr"]
    assert storage.generation(country_summary_name("de")) is None


def test_aggregate_again_reports_unchanged_with_the_same_generation(kit, storage, settings):
    kit.put_summaries(runs("de", 2))
    first = aggregate(settings, storage).to_dict()["countries"][0]
    second = aggregate(settings, storage).to_dict()["countries"][0]
    assert (second["result"], second["generation"]) == ("unchanged", first["generation"])


def test_aggregate_report_has_a_table_and_a_json_form(kit, storage, settings):
    kit.put_summary(RunPath("r1", "de", "t1"), nrmse=0.15)
    storage.write("robyn/r1/de/t2/model_summary.json", b"[]", 0)
    report = aggregate(settings, storage)
    (title, columns, rows), (_, _, skipped) = report.tables()
    assert columns == ["country", "runs", "with pareto", "best model", "result", "generation"]
    assert rows[0][:5] == ["de", 1, 1, "t1_m0 (r1/t1)", "written"]
    assert skipped == [["de", "robyn/r1/de/t2/model_summary.json", "not_object"]]
    entry = json.loads(json.dumps(report.to_dict()))["countries"][0]
    assert entry["best_model_overall"]["nrmse"] == 0.15
    assert entry["skipped"] == [{"name": "robyn/r1/de/t2/model_summary.json", "reason": "not_object"}]


class StopAfterChecks(StopRequest):
    """A stop that arrives once the rebuild has looked ``checks`` times (e.g. while the first country is rebuilt)."""

    def __init__(self, checks: int) -> None:
        super().__init__()
        self.left = checks

    @property
    def requested(self) -> bool:
        self.left -= 1
        return self.left < 0


def test_a_stop_lets_the_country_in_hand_finish_and_skips_the_others(kit, settings, storage):
    for country in ("de", "fr", "us"):
        kit.put_summary(RunPath("r1", country, "t1"))
    report = aggregate(settings, storage, stop=StopAfterChecks(1))
    assert [r.country for r in report.results] == ["de"] and report.interrupted_by == "stop"
    assert kit.read_country("de") is not None and kit.read_country("fr") is None
    assert report.to_dict()["interrupted_by"] == "stop" and "interrupted" in report.tables()[0][0]


def test_the_report_names_a_bounded_number_of_skipped_summaries_and_counts_them_all():
    skipped = [
        Skipped(f"robyn/r1/de/t{i:04d}/model_summary.json", "too_large") for i in range(MAX_SKIPPED_REPORTED + 50)
    ]
    document = build_country_file("de", [], dt.datetime.now(dt.UTC)).document
    report = AggregateReport([RebuildResult("de", "written", 1, document, skipped)])
    (entry,) = report.to_dict()["countries"]
    assert len(entry["skipped"]) == MAX_SKIPPED_REPORTED
    assert (entry["skipped_count"], entry["skipped_reasons"]) == (
        MAX_SKIPPED_REPORTED + 50,
        {"too_large": MAX_SKIPPED_REPORTED + 50},
    )
    rows = report.tables()[1][2]
    assert len(rows) == MAX_SKIPPED_REPORTED + 1 and rows[-1][1] == "... and 50 more"
