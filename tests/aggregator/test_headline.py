"""Run summaries as untrusted input: bounded parsing and typed country entries (pure: no bucket)."""

import datetime as dt
import json

import pytest

from aggregator.country import build_country_file, encode_country_file
from aggregator.headline import RUN_FIELDS, Headline, Unreadable, headline_of, parse_summary, read_headline
from local_stack.samples import sample_run_dirs
from mmm_backfill.runpath import RunPath, run_path_from_local_dir
from mmm_backfill.summary_schema import MAX_MODEL_ID_CHARS, MODEL_METRICS
from worker.summarize.summary import ModelRow, RunData, build_summary

NOW = dt.datetime(2026, 12, 1, 8, 30, 0, tzinfo=dt.UTC)
RUN = RunPath("r1", "de", "t1")
REFERENCE = "reference_model_summary.json"


def summary(**changes):
    """A summary as mmm-backfill writes it, with ``changes`` applied (None deletes a field)."""
    models = [ModelRow("1_2_3", 1, {"nrmse": 0.1, "mape": 0}), ModelRow("other", None, {"nrmse": 0.2})]
    built = build_summary(RUN, RunData(models=models, training_time_mins=2.5), NOW)
    built.update(changes)
    return {k: v for k, v in built.items() if v is not None or k not in changes}


def skipped_reason(value):
    build = build_country_file("de", [(RUN.summary_name, value)], NOW)
    assert build.document["runs"] == [] and len(build.skipped) == 1
    return build.skipped[0].reason


def test_the_real_samples_legacy_summaries_are_copied_field_for_field(samples_root):
    for run_dir in sample_run_dirs():
        run = run_path_from_local_dir(str(run_dir))
        legacy = json.loads((run_dir / REFERENCE).read_bytes())
        build = build_country_file(
            run.country, [(run.summary_name, read_headline((run_dir / REFERENCE).read_bytes()))], NOW
        )
        (entry,) = build.document["runs"]
        assert entry == {"revision": run.revision, "timestamp": run.timestamp, "run_path": run.prefix} | {
            field: legacy[field] for field in RUN_FIELDS
        }


def test_a_summary_mmm_backfill_writes_is_copied_field_for_field():
    written = summary()
    (entry,) = build_country_file("de", [(RUN.summary_name, written)], NOW).document["runs"]
    assert {field: entry[field] for field in RUN_FIELDS} == {field: written[field] for field in RUN_FIELDS}


def test_legacy_created_at_without_a_zone_and_iso_with_fractions_are_kept():
    for created in ("2026-11-28 22:02:07", "2026-11-29T12:00:05Z", "2026-11-29T12:00:05.123456Z"):
        assert headline_of(summary(created_at=created)).fields["created_at"] == created


@pytest.mark.parametrize(
    ("changes", "field"),
    [
        ({"created_at": {"$date": 1}}, "created_at"),
        ({"created_at": "2026-11-29T12:00:05Z" + "x" * 1000}, "created_at"),
        ({"created_at": "2026-02-30T12:00:05Z"}, "created_at"),
        ({"created_at": "2026-11-29T12:00:05+02:00"}, "created_at"),
        ({"created_at": None}, "created_at"),
        ({"pareto_model_count": "1"}, "pareto_model_count"),
        ({"pareto_model_count": -1}, "pareto_model_count"),
        ({"pareto_model_count": True}, "pareto_model_count"),
        ({"candidate_model_count": 2.0}, "candidate_model_count"),
        ({"candidate_model_count": 10**30}, "candidate_model_count"),
        ({"has_pareto_models": "false"}, "has_pareto_models"),
        ({"training_time_mins": [1.5]}, "training_time_mins"),
        ({"training_time_mins": -2.0}, "training_time_mins"),
        ({"training_time_mins": float("inf")}, "training_time_mins"),
        ({"best_model": "1_2_3"}, "best_model"),
        ({"best_model": {"nrmse": 0.1}}, "best_model.model_id"),
        ({"best_model": {"model_id": "x" * (MAX_MODEL_ID_CHARS + 1)}}, "best_model.model_id"),
        ({"best_model": {"model_id": 7}}, "best_model.model_id"),
        ({"best_model": {"model_id": "\ud800"}}, "best_model.model_id"),
        ({"best_model": {"model_id": "a", "nrmse": "0.01"}}, "best_model.nrmse"),
        ({"best_model": {"model_id": "a", "mape": 10**400}}, "best_model.mape"),
        ({"best_model": {"model_id": "a", "rsq_train": [0.5]}}, "best_model.rsq_train"),
    ],
)
def test_a_field_of_the_wrong_type_or_size_leaves_the_summary_out_naming_it(changes, field):
    assert skipped_reason(summary(**changes)) == f"invalid_field: {field}"


def test_best_model_keeps_only_the_model_fields_of_the_schema():
    padded = {"model_id": "1_2_3", "nrmse": 0.1, "padding": [0] * 100_000, "mape": 0, "html": "<script>"}
    best = headline_of(summary(best_model=padded)).fields["best_model"]
    assert best == {"model_id": "1_2_3", "nrmse": 0.1, "mape": 0}


def test_best_model_and_training_time_may_be_null():
    fields = headline_of(summary(best_model=None, training_time_mins=None)).fields
    assert fields is not None and (fields["best_model"], fields["training_time_mins"]) == (None, None)


def test_one_bad_summary_leaves_the_rest_of_the_country_built():
    good = RunPath("r1", "de", "t2")
    bad = summary(pareto_model_count="lots")
    fine = summary(timestamp="t2")
    build = build_country_file("de", [(RUN.summary_name, bad), (good.summary_name, fine)], NOW)
    assert [r["run_path"] for r in build.document["runs"]] == [good.prefix]
    assert [(s.name, s.reason) for s in build.skipped] == [(RUN.summary_name, "invalid_field: pareto_model_count")]


def test_an_entry_stays_under_a_kilobyte_whatever_the_summary_held():
    best = {"model_id": "x" * MAX_MODEL_ID_CHARS, **{m: -1.2345678901234567e-300 for m in MODEL_METRICS}}
    huge = summary(best_model=best, candidate_models=[best] * 10_000, created_at="2026-11-29T12:00:05.123456789Z")
    (entry,) = build_country_file("de", [(RUN.summary_name, huge)], NOW).document["runs"]
    assert len(json.dumps(entry, indent=2)) < 1024


def test_the_headline_keeps_no_long_identity_text():
    headline = headline_of(summary(country="de" * 100_000))
    assert isinstance(headline, Headline) and headline.country is None
    assert skipped_reason(headline) == "other_country"


@pytest.mark.parametrize(
    ("data", "reason"),
    [
        (b'{"created_at": "\xff\xfe"}', "not_utf8"),
        (b"[" * 200_000 + b"]" * 200_000, "too_deep"),
        (b'{"country": "de", "country": "fr"}', "duplicate_key"),
        (b'{"pareto_model_count": ' + b"9" * 5000 + b"}", "not_json: ValueError"),
        (b"{not json", "not_json: JSONDecodeError"),
        (b"", "not_json: JSONDecodeError"),
    ],
)
def test_bytes_that_cannot_be_parsed_within_bounds_are_a_verdict(data, reason):
    assert parse_summary(data) == Unreadable(reason)
    assert skipped_reason(read_headline(data)) == reason


def test_nan_and_infinity_tokens_become_null_and_the_file_stays_json():
    data = json.dumps(summary(training_time_mins=float("nan"))).encode()
    assert b"NaN" in data
    document = build_country_file("de", [(RUN.summary_name, read_headline(data))], NOW).document
    assert document["runs"][0]["training_time_mins"] is None
    assert json.loads(encode_country_file(document)) == document


def test_a_summary_of_another_country_or_another_run_is_left_out():
    assert skipped_reason(summary(country="fr")) == "other_country"
    assert skipped_reason(summary(timestamp="t9")) == "path_mismatch"


def test_a_schema_version_that_is_not_the_integer_one_is_unknown():
    for version in (True, 1.0, "1", 2):
        assert skipped_reason(summary(schema_version=version)) == "unknown_schema_version"
