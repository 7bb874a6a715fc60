import pytest

from mmm_backfill.errors import InvalidRunPath
from mmm_backfill.runpath import RunPath, country_summary_name, run_path_from_local_dir


def test_parse_accepts_the_bucket_layout():
    run = RunPath.parse("robyn/r100/de/1104_082103")
    assert (run.revision, run.country, run.timestamp) == ("r100", "de", "1104_082103")
    assert run.summary_name == "robyn/r100/de/1104_082103/model_summary.json"


@pytest.mark.parametrize(
    "path",
    [
        "",
        "robyn/r1/de",
        "robyn/r1/de/t1/extra",
        "/robyn/r1/de/t1",
        "robyn/r1/de/t1/",
        "robyn//de/t1",
        "robyn/../de/t1",
        "robyn/r1/../t1",
        "robyn/r1/de/..",
        "robyn/r1/.hidden/t1",
        "other/r1/de/t1",
        "robyn/r 1/de/t1",
        "robyn/r1/de/t1\n",
        "robyn/r1/d\\e/t1",
        "robyn/r1/dé/t1",
        "robyn/" + "x" * 200 + "/de/t1",
    ],
)
def test_parse_rejects_paths_outside_the_layout(path):
    with pytest.raises(InvalidRunPath):
        RunPath.parse(path)


def test_parse_rejects_non_strings():
    with pytest.raises(InvalidRunPath):
        RunPath.parse(42)  # type: ignore[arg-type]


def test_local_dir_infers_the_three_ids_from_its_last_segments():
    run = run_path_from_local_dir("/data/x/robyn/r101/fr/1201_090000/")
    assert run == RunPath("r101", "fr", "1201_090000")


def test_local_dir_without_layout_is_rejected():
    with pytest.raises(InvalidRunPath):
        run_path_from_local_dir("/tmp/somewhere/else")


def test_country_summary_name_follows_the_layout():
    assert country_summary_name("de") == "model_summary/de/summary.json"
    with pytest.raises(InvalidRunPath):
        country_summary_name("../de")
