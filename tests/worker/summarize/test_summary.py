import datetime as dt
import json
import math

import pytest

from mmm_backfill.errors import EmptyModels
from mmm_backfill.runpath import RunPath
from worker.summarize.summary import ModelRow, RunData, build_summary, clean_number

RUN = RunPath("r1", "de", "t1")
NOW = dt.datetime(2026, 11, 29, 12, 0, 5, tzinfo=dt.UTC)


def row(model_id, nrmse, front=None, **metrics):
    return ModelRow(model_id=model_id, front=front, metrics={"nrmse": nrmse, **metrics})


def summary(models, **kw):
    return build_summary(RUN, RunData(models=models, **kw), NOW)


def test_pareto_models_are_ordered_by_front_then_nrmse():
    s = summary([row("a", 0.3, 2), row("b", 0.2, 1), row("c", 0.1, 2), row("d", 0.05, None), row("e", 0.4, 1)])
    assert [m["model_id"] for m in s["pareto_models"]] == ["b", "e", "c", "a"]
    assert [m["robyn_pareto_front"] for m in s["pareto_models"]] == [1, 1, 2, 2]


def test_pareto_count_covers_all_front_models_while_list_is_capped_at_ten():
    s = summary([row(f"m{i}", i / 100, 1) for i in range(25)])
    assert s["pareto_model_count"] == 25
    assert len(s["pareto_models"]) == 10
    assert s["has_pareto_models"] is True


def test_candidates_put_models_without_front_last_and_are_capped_at_100():
    models = [row(f"n{i}", i / 1000, None) for i in range(150)] + [row("p", 0.9, 1)]
    s = summary(models)
    assert s["candidate_model_count"] == 151
    assert len(s["candidate_models"]) == 100
    assert s["candidate_models"][0] == {**s["candidate_models"][0], "model_id": "p", "is_pareto": True}
    assert s["candidate_models"][1]["is_pareto"] is False


def test_missing_nrmse_sorts_after_known_nrmse():
    s = summary([row("none", None, 1), row("x", 0.5, 1)])
    assert [m["model_id"] for m in s["pareto_models"]] == ["x", "none"]


def test_best_model_is_the_one_named_by_the_app():
    s = summary([row("first", 0.5), row("chosen", 0.6)], best_model_id="chosen")
    assert s["best_model"]["model_id"] == "chosen"


def test_best_model_falls_back_to_first_row():
    assert summary([row("first", 0.5), row("x", 0.1)])["best_model"]["model_id"] == "first"
    assert summary([row("first", 0.5)], best_model_id="gone")["best_model"]["model_id"] == "first"


def test_non_finite_metrics_become_null_and_full_precision_is_kept():
    s = summary([row("a", 0.123456789012345, None, rsq_train=math.inf, mape=math.nan)])
    best = s["best_model"]
    assert best["nrmse"] == 0.123456789012345
    assert best["rsq_train"] is None and best["mape"] is None and best["rsq_val"] is None
    json.dumps(s, allow_nan=False)


def test_no_front_means_no_pareto_models():
    s = summary([row("a", 0.1), row("b", 0.2)])
    assert (s["has_pareto_models"], s["pareto_model_count"], s["pareto_models"]) == (False, 0, [])


def test_header_fields_follow_the_schema():
    s = summary([row("a", 0.1)], training_time_mins=5.38)
    assert (s["country"], s["revision"], s["timestamp"]) == ("de", "r1", "t1")
    assert s["created_at"] == "2026-11-29T12:00:05Z"
    assert s["training_time_mins"] == 5.38
    assert s["schema_version"] == 1 and s["generator"]["name"] == "mmm-backfill"
    assert s["input_metadata"] is None


def test_zero_models_is_an_error():
    with pytest.raises(EmptyModels):
        summary([])


@pytest.mark.parametrize("value", [None, True, "1", math.nan, -math.inf])
def test_clean_number_rejects_non_numbers(value):
    assert clean_number(value) is None
