import pytest

from mmm_backfill.errors import InvalidRunFile
from worker.boundary.runfiles import parse_best_model_id, parse_timings


def test_best_model_file_gives_id_and_training_minutes():
    text = b"1_140_1\nIterations: 500\nTrials: 2\nTraining time (mins): 5.38\n"
    assert parse_best_model_id(text) == ("1_140_1", 5.38)


def test_best_model_file_without_training_line():
    assert parse_best_model_id(b"2_1_1\n") == ("2_1_1", None)


def test_empty_best_model_file_names_no_model():
    assert parse_best_model_id(b"") == (None, None)


def test_timings_give_training_minutes_from_seconds():
    assert parse_timings(b"Step,Time (s)\nR training (robyn_run),322.52\n") == pytest.approx(322.52 / 60)


def test_timings_without_training_row_give_nothing():
    assert parse_timings(b"Step,Time (s)\nexport,3\n") is None


@pytest.mark.parametrize(
    "call,data",
    [
        (parse_best_model_id, b"\xff\xfe\x00bad"),
        (parse_best_model_id, b"x\nTraining time (mins): soon\n"),
        (parse_timings, b"Step,Time (s)\nR training (robyn_run),-5\n"),
        (parse_timings, b"x" * 70000),
    ],
)
def test_malformed_text_files_raise_invalid_run_file(call, data):
    with pytest.raises(InvalidRunFile):
        call(data)
