"""Status on the real emulators: coverage per revision × country and the country files' freshness."""

import json
import subprocess
import sys
import time

import pytest

from mmm_backfill.errors import InvalidRunPath
from producer.status import coverage

pytestmark = pytest.mark.integration


@pytest.fixture
def bucket(put):
    """r1/de: 2 runs, 1 summarised; r1/fr: 1 run, summarised; r2/de: 1 run; a de file and an orphan it file."""
    put(
        "robyn/r1/de/t1/OutputCollect.RDS",
        "robyn/r1/de/t1/model_summary.json",
        "robyn/r1/de/t2/OutputCollect.RDS",
        "robyn/r1/fr/t1/OutputCollect.RDS",
        "robyn/r1/fr/t1/model_summary.json",
        "robyn/r2/de/t1/OutputCollect.RDS",
        "robyn/r2/de/t1/extra/plot.png",
        "model_summary/de/summary.json",
        "model_summary/it/summary.json",
        "model_summary/de/notes.txt",
    )


def rows(report):
    return [(c.revision, c.country, c.runs, c.summarised, c.missing, c.percent) for c in report.coverage]


def files(report):
    return {f.country: f for f in report.country_files}


def test_coverage_per_revision_and_country_with_totals(settings, storage, bucket):
    report = coverage(settings, storage, revision=None, country=None)
    assert rows(report) == [
        ("r1", "de", 2, 1, 1, 50.0),
        ("r1", "fr", 1, 1, 0, 100.0),
        ("r2", "de", 1, 0, 1, 0.0),
    ]
    assert report.totals == {
        "runs": 4,
        "summarised": 2,
        "missing": 2,
        "percent": 50.0,
        "legacy": 2,  # placeholders written without mmm-backfill's metadata
        "outdated": 0,
        "current": 0,
    }
    assert (report.skipped, report.skipped_examples) == (1, ["robyn/r2/de/t1/extra/plot.png"])
    assert report.list_calls == 2  # robyn/ and model_summary/, one page each


def test_country_files_show_presence_generation_and_age(settings, storage, bucket):
    now = time.time() + 100
    report = coverage(settings, storage, revision=None, country=None, now=lambda: now)
    found = files(report)
    assert sorted(found) == ["de", "fr", "it"]  # fr has runs but no file; it has a file but no runs
    assert not found["fr"].present and found["fr"].generation is None
    de = found["de"]
    assert de.present and de.generation == storage.generation("model_summary/de/summary.json")
    assert de.updated.endswith("Z") and 100 <= de.age_seconds < 200


def test_country_filter_lists_only_that_country(settings, storage, bucket):
    report = coverage(settings, storage, revision=None, country="de")
    assert rows(report) == [("r1", "de", 2, 1, 1, 50.0), ("r2", "de", 1, 0, 1, 0.0)]
    assert list(files(report)) == ["de"]
    assert report.list_calls == 4  # revisions, robyn/r1/de/, robyn/r2/de/, model_summary/de/


def test_revision_filter_shows_only_the_files_of_its_countries(settings, storage, bucket):
    report = coverage(settings, storage, revision="r2", country=None)
    assert rows(report) == [("r2", "de", 1, 0, 1, 0.0)]
    assert list(files(report)) == ["de"]


def test_a_filtered_country_without_runs_or_file_is_shown_absent(settings, storage, bucket):
    report = coverage(settings, storage, revision=None, country="us")
    assert report.coverage == [] and report.totals["percent"] == 100.0
    assert [(f.country, f.present) for f in report.country_files] == [("us", False)]


def test_invalid_filters_are_refused(settings, storage):
    with pytest.raises(InvalidRunPath):
        coverage(settings, storage, revision="../x", country=None)


def test_report_renders_tables_and_json(settings, storage, bucket):
    report = coverage(settings, storage, revision=None, country=None)
    document = json.loads(json.dumps(report.to_dict()))
    assert document["coverage"][0] == {
        "revision": "r1",
        "country": "de",
        "runs": 2,
        "summarised": 1,
        "missing": 1,
        "percent": 50.0,
        "legacy": 1,
        "outdated": 0,
        "current": 0,
    }
    assert {f["country"]: f["present"] for f in document["country_files"]} == {"de": True, "fr": False, "it": True}
    titles = [t[0] for t in report.tables()]
    assert titles[0].startswith("coverage") and titles[1] == "country files"
    assert report.tables()[0][2][-1][:3] == ["all", "", 4]


def test_cli_status_prints_json(settings, storage, bucket, emulator_env):
    env = {**emulator_env, "MMM_BACKFILL_PROJECT": settings.project, "MMM_BACKFILL_BUCKET": settings.bucket}
    result = subprocess.run(
        [sys.executable, "-m", "mmm_backfill", "status", "--json"], env=env, capture_output=True, text=True, timeout=120
    )
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout)["totals"]["runs"] == 4


def test_summaries_are_counted_by_state_per_revision_and_country(settings, storage, put):
    from mmm_backfill.summary_state import summary_metadata

    put("robyn/r1/de/a/OutputCollect.RDS", "robyn/r1/de/b/OutputCollect.RDS", "robyn/r1/de/c/OutputCollect.RDS")
    put("robyn/r1/de/d/OutputCollect.RDS", "robyn/r1/de/b/model_summary.json")
    storage.write("robyn/r1/de/c/model_summary.json", b"{}", 0, metadata=summary_metadata(generator_version="0.0.1"))
    storage.write("robyn/r1/de/d/model_summary.json", b"{}", 0, metadata=summary_metadata())
    report = coverage(settings, storage, revision=None, country=None)
    (row,) = report.coverage
    assert (row.runs, row.missing, row.legacy, row.outdated, row.current) == (4, 1, 1, 1, 1)
    table = report.tables()[0]
    assert table[1][-3:] == ["legacy", "outdated", "current"] and table[2][0][-3:] == [1, 1, 1]
