"""Generated Robyn-shaped runs, one per variation the app produces."""

import datetime as dt

import pytest

from mmm_backfill.runpath import run_path_from_local_dir
from worker.summarize.extract import files_in_dir, summarize_files


@pytest.fixture(scope="module")
def summaries(generated_runs):
    return {
        name: summarize_files(run_path_from_local_dir(str(d)), files_in_dir(str(d)))
        for name, d in generated_runs.items()
    }


def test_standard_run_has_fronts_metadata_and_training_time(summaries):
    s = summaries["standard"]
    assert s["has_pareto_models"] and s["candidate_model_count"] == 30
    assert s["input_metadata"]["window_start"] == "2016-01-04"
    assert s["training_time_mins"] is not None


def test_absent_validation_columns_become_null(summaries):
    best = summaries["no_validation_columns"]["best_model"]
    assert best["rsq_val"] is None and best["nrmse_test"] is None and best["nrmse"] is not None


def test_logical_na_validation_columns_become_null(summaries):
    best = summaries["validation_na"]["best_model"]
    assert best["rsq_val"] is None and best["nrmse_val"] is None


def test_run_without_front_reports_no_pareto_models(summaries):
    s = summaries["no_pareto_front"]
    assert (s["has_pareto_models"], s["pareto_model_count"]) == (False, 0)
    assert not any(m["is_pareto"] for m in s["candidate_models"])


def test_single_paid_media_variable_is_an_array(summaries):
    assert summaries["one_paid_media"]["input_metadata"]["paid_media_vars"] == ["tv_S"]
    assert summaries["one_paid_media"]["input_metadata"]["organic_vars"] == ["newsletter"]


def test_character_window_dates_are_iso_dates(summaries):
    meta = summaries["character_dates"]["input_metadata"]
    assert (meta["window_start"], meta["window_end"]) == ("2016-01-04", "2018-12-31")


def test_na_nan_and_inf_metrics_become_null(summaries):
    models = summaries["bad_metrics"]["candidate_models"]
    values = [m[k] for m in models for k in ("nrmse", "rsq_train", "decomp_rssd")]
    assert None in values
    assert all(v is None or abs(v) < 1e300 for v in values)


def test_plain_data_frame_reads_like_a_tibble(summaries):
    assert summaries["plain_data_frame"]["candidate_model_count"] == 30


def test_older_front_column_names_are_accepted(summaries):
    assert summaries["old_front_name"]["pareto_model_count"] > 0
    assert summaries["logical_front_column"]["pareto_model_count"] > 0
    assert {m["robyn_pareto_front"] for m in summaries["logical_front_column"]["pareto_models"]} == {1}


def test_large_run_lists_are_capped_but_counted(summaries):
    s = summaries["many_models"]
    assert s["candidate_model_count"] == 150 and len(s["candidate_models"]) == 100
    assert len(s["pareto_models"]) == 10 and s["pareto_model_count"] >= 10


def test_run_with_only_output_collect_has_no_metadata_nor_time(summaries):
    s = summaries["only_output_collect"]
    assert s["input_metadata"] is None and s["training_time_mins"] is None


def test_training_time_falls_back_to_timings_csv(summaries):
    assert summaries["timings_only"]["training_time_mins"] is not None


def test_created_at_is_utc_iso8601(summaries):
    stamp = summaries["standard"]["created_at"]
    assert stamp.endswith("Z") and dt.datetime.fromisoformat(stamp).tzinfo is not None
