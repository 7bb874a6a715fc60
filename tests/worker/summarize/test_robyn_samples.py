"""The real Robyn runs: our summary against the run's own files and the old extractor's output."""

import json

import pytest

from local_stack.samples import sample_run_dirs
from mmm_backfill.runpath import run_path_from_local_dir
from mmm_backfill.summary_schema import MODEL_METRICS
from worker.summarize.extract import files_in_dir, summarize_files

RUNS = sample_run_dirs()
pytestmark = pytest.mark.skipif(not RUNS, reason="real Robyn samples not present")


@pytest.fixture(scope="module", params=RUNS, ids=lambda p: "/".join(p.parts[-3:]))
def sample(request):
    run_dir = request.param
    summary = summarize_files(run_path_from_local_dir(str(run_dir)), files_in_dir(str(run_dir)))
    reference = json.loads((run_dir / "reference_model_summary.json").read_text())
    return run_dir, summary, reference


def test_every_real_run_has_pareto_models(sample):
    _, summary, _ = sample
    assert summary["has_pareto_models"] is True
    assert summary["pareto_model_count"] >= 1
    assert all(m["robyn_pareto_front"] >= 1 for m in summary["pareto_models"])


def test_candidate_count_matches_the_old_extractor(sample):
    _, summary, reference = sample
    assert summary["candidate_model_count"] == reference["candidate_model_count"]


def test_best_model_is_the_first_line_of_best_model_id(sample):
    run_dir, summary, reference = sample
    chosen = (run_dir / "best_model_id.txt").read_text().splitlines()[0].strip()
    assert summary["best_model"]["model_id"] == chosen == reference["best_model"]["model_id"]


def test_metrics_equal_the_old_extractor_to_its_four_digits(sample):
    _, summary, reference = sample
    ours = {m["model_id"]: m for m in summary["candidate_models"]}
    for old in reference["candidate_models"]:
        for metric in MODEL_METRICS:
            if old[metric] is None:
                assert ours[old["model_id"]][metric] is None, metric
            else:
                assert ours[old["model_id"]][metric] == pytest.approx(old[metric], abs=5.1e-5), metric


def test_input_metadata_lists_are_always_arrays(sample):
    _, summary, reference = sample
    meta, old = summary["input_metadata"], reference["input_metadata"]
    for key in ("paid_media_vars", "organic_vars", "context_vars", "factor_vars"):
        expected = old[key] if isinstance(old[key], list) else ([] if old[key] is None else [old[key]])
        assert meta[key] == expected
    for key in ("dep_var", "dep_var_type", "adstock", "window_start", "window_end"):
        assert meta[key] == old[key]


def test_training_time_is_read_from_the_run_files(sample):
    run_dir, summary, _ = sample
    text = (run_dir / "best_model_id.txt").read_text()
    minutes = float(text.split("Training time (mins):")[1].split()[0])
    assert summary["training_time_mins"] == minutes
