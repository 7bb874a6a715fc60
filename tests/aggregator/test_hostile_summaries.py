"""A hostile set of run summaries beside good ones, rebuilt on fake-gcs-server: the country file holds
the good runs with typed entries, each bad summary is named with its reason, the oversized ones are
never downloaded, and what the rebuild logs and reports stays bounded."""

import datetime as dt
import gzip
import json
import logging

import pytest

from aggregator.cache import SummaryCache
from aggregator.rebuild import MAX_SKIPPED_LOGGED, rebuild_country
from mmm_backfill.config import Settings
from mmm_backfill.runpath import RunPath, country_summary_name
from worker.summarize.summary import ModelRow, RunData, build_summary

pytestmark = pytest.mark.integration

LIMIT = Settings.max_summary_bytes


def run(timestamp: str) -> RunPath:
    return RunPath("r1", "de", timestamp)


def make_summary(path: RunPath) -> dict:
    models = [ModelRow(f"{path.timestamp}_m0", 1, {"nrmse": 0.2}), ModelRow("other", None, {"nrmse": 0.5})]
    return build_summary(path, RunData(models=models, training_time_mins=1.5), dt.datetime.now(dt.UTC))


def good(timestamp: str, **changes) -> bytes:
    return json.dumps({**make_summary(run(timestamp)), **changes}).encode()


#: Object bytes by run timestamp, and the reason each is left out (None: kept).
HOSTILE = {
    "huge": (b'{"created_at": "' + b"x" * LIMIT + b'"}', "too_large"),
    "deep": (b"[" * 100_000 + b"]" * 100_000, "too_deep"),
    "wrong_types": (
        good("wrong_types", created_at={"$date": 0}, pareto_model_count="3", training_time_mins=[1]),
        "invalid_field: created_at",
    ),
    "bad_utf8": (good("bad_utf8").replace(b'"t', b'"\xff\xfe', 1), "not_utf8"),
    "duplicate_keys": (good("duplicate_keys")[:-1] + b', "country": "fr"}', "duplicate_key"),
    "huge_number": (good("huge_number")[:-1] + b', "n": ' + b"7" * 5000 + b"}", "not_json: ValueError"),
    "other_country": (json.dumps(make_summary(RunPath("r1", "fr", "other_country"))).encode(), "other_country"),
    "other_run": (good("somewhere_else"), "path_mismatch"),
    "nan": (good("nan").replace(b'"training_time_mins": 1.5', b'"training_time_mins": NaN'), None),
    "padded_best": (good("padded_best", best_model={"model_id": "m", "nrmse": 0.3, "pad": [0] * 100_000}), None),
    "padded": (b" " * (LIMIT - 10_000) + good("padded"), None),
    "good": (good("good"), None),
}


def put_compressed(storage, name: str, data: bytes) -> None:
    blob = storage.bucket.blob(name)
    blob.content_encoding = "gzip"
    blob.upload_from_string(gzip.compress(data), content_type="application/json")


@pytest.fixture
def hostile_bucket(storage):
    for timestamp, (data, _) in HOSTILE.items():
        storage.write(run(timestamp).summary_name, data, 0)
    put_compressed(storage, run("gzip_bomb").summary_name, b"0" * 50_000_000)
    return storage


def test_the_country_file_holds_the_good_runs_and_names_each_bad_summary_with_its_reason(hostile_bucket, kit):
    cache = SummaryCache(hostile_bucket)
    result = rebuild_country(hostile_bucket, "de", cache)
    expected = {run(t).summary_name: reason for t, (_, reason) in HOSTILE.items() if reason is not None}
    expected[run("gzip_bomb").summary_name] = "too_large"
    assert {s.name: s.reason for s in result.skipped} == expected
    document = kit.read_country("de")
    assert {r["timestamp"] for r in document["runs"]} == {t for t, (_, reason) in HOSTILE.items() if reason is None}
    entries = {r["timestamp"]: r for r in document["runs"]}
    assert entries["nan"]["training_time_mins"] is None
    assert entries["padded_best"]["best_model"] == {"model_id": "m", "nrmse": 0.3}
    assert cache.downloads == len(HOSTILE)  # every one but the oversized summary; the bomb is stopped reading


def test_a_summary_over_the_limit_is_never_downloaded(storage, kit):
    storage.write(run("huge").summary_name, HOSTILE["huge"][0], 0)
    storage.calls.clear()
    result = rebuild_country(storage, "de", SummaryCache(storage))
    assert [s.reason for s in result.skipped] == ["too_large"]
    assert storage.calls.get("read", 0) == 0


def test_a_rebuild_names_a_bounded_number_of_bad_summaries_in_its_log(storage, kit, caplog):
    for i in range(MAX_SKIPPED_LOGGED + 5):
        storage.write(run(f"t{i:03d}").summary_name, b"[]", 0)
    with caplog.at_level(logging.WARNING, logger="aggregator.rebuild"):
        rebuild_country(storage, "de", SummaryCache(storage))
    named = [r for r in caplog.records if r.getMessage().startswith("run summary left out")]
    totals = [r for r in caplog.records if "left out in all" in r.getMessage()]
    assert len(named) == MAX_SKIPPED_LOGGED and len(totals) == 1
    assert totals[0].reasons == {"not_object": MAX_SKIPPED_LOGGED + 5}


def test_a_country_file_over_its_limit_is_replaced_unread(storage, kit):
    storage.write(country_summary_name("de"), b'{"runs": [' + b"0," * 5000 + b"0]}", 0)
    kit.put_summary(run("good"))
    storage.calls.clear()
    result = rebuild_country(storage, "de", SummaryCache(storage), max_file_bytes=1000)
    assert result.result == "written" and storage.calls.get("read", 0) == 1  # the run summary only
    assert kit.runs_in_file("de") == {run("good").prefix}


def test_a_country_file_that_decodes_past_its_limit_is_replaced(storage, kit):
    put_compressed(storage, country_summary_name("de"), b" " * 50_000_000)
    kit.put_summary(run("good"))
    assert rebuild_country(storage, "de", SummaryCache(storage), max_file_bytes=1 << 20).result == "written"
    assert kit.runs_in_file("de") == {run("good").prefix}


def test_a_country_file_that_is_not_a_json_object_is_replaced(storage, kit):
    storage.write(country_summary_name("de"), b"[" * 100_000, 0)
    kit.put_summary(run("good"))
    assert rebuild_country(storage, "de", SummaryCache(storage)).result == "written"
    assert kit.runs_in_file("de") == {run("good").prefix}
