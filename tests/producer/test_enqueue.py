"""Enqueue on the real emulators: counts, one listing pass per prefix, idempotence, dry run, limit."""

import json
import subprocess
import sys

import pytest

from mmm_backfill import metrics
from mmm_backfill.messages import SummaryRequest
from producer.enqueue import PublishFailed, enqueue

pytestmark = pytest.mark.integration


def run_enqueue(settings, storage, bus, **options):
    args = {"revision": None, "country": None, "limit": None, "dry_run": False, "show_progress": False, **options}
    return enqueue(settings, storage, bus, **args)


def runs(*paths):
    return [f"{p}/OutputCollect.RDS" for p in paths]


@pytest.fixture
def grid(put):
    """2 revisions x 2 countries x 3 runs, none summarised; returns the run paths."""
    paths = [f"robyn/{r}/{c}/t{i}" for r in ("r1", "r2") for c in ("de", "fr") for i in range(3)]
    put(*runs(*paths))
    return paths


def test_one_request_per_missing_run_and_the_rest_counted(settings, storage, bus, topology, put, drain):
    put(
        *runs("robyn/r1/de/t1", "robyn/r1/de/t2", "robyn/r1/fr/t1", "robyn/r1/fr/done"),
        "robyn/r1/fr/done/model_summary.json",
        "robyn/r1/fr/no-output/InputCollect.RDS",
        "robyn/stray.txt",
    )
    before = metrics.ENQUEUED._value.get()
    report = run_enqueue(settings, storage, bus)
    assert (report.runs_seen, report.already_summarised, report.missing, report.enqueued) == (4, 1, 3, 3)
    assert (report.skipped, report.skipped_examples) == (1, ["robyn/stray.txt"])
    assert report.list_calls == 1 and report.publish_per_second and len(report.backfill_id) == 32
    assert metrics.ENQUEUED._value.get() - before == 3

    received = drain(settings.request_subscription, expect=3)
    requests = sorted((SummaryRequest.decode(m.data) for m in received), key=lambda r: r.run_path)
    assert [r.run_path for r in requests] == ["robyn/r1/de/t1", "robyn/r1/de/t2", "robyn/r1/fr/t1"]
    assert {r.backfill_id for r in requests} == {report.backfill_id}
    assert all(m.attributes == SummaryRequest.decode(m.data).attributes() for m in received)
    assert all(r.bucket == settings.bucket and r.replay_count == 0 for r in requests)


@pytest.mark.parametrize(
    ("revision", "country", "runs_seen", "list_calls"),
    [
        (None, None, 12, 1),  # robyn/
        ("r1", None, 6, 1),  # robyn/r1/
        ("r1", "de", 3, 1),  # robyn/r1/de/
        (None, "de", 6, 3),  # revisions of robyn/, then robyn/r1/de/ and robyn/r2/de/
    ],
)
def test_listing_is_one_pass_per_prefix_never_one_call_per_run(
    settings, storage, grid, revision, country, runs_seen, list_calls
):
    report = run_enqueue(settings, storage, None, revision=revision, country=country, dry_run=True)
    assert report.runs_seen == report.would_enqueue == runs_seen
    assert report.list_calls == list_calls


def test_second_enqueue_after_summaries_exist_enqueues_nothing(settings, storage, bus, topology, grid, put, drain):
    first = run_enqueue(settings, storage, bus)
    assert first.enqueued == 12
    assert len(drain(settings.request_subscription, expect=12)) == 12
    put(*[f"{p}/model_summary.json" for p in grid])

    second = run_enqueue(settings, storage, bus)
    assert (second.runs_seen, second.already_summarised, second.enqueued) == (12, 12, 0)
    assert second.backfill_id != first.backfill_id
    assert drain(settings.request_subscription) == []


def test_dry_run_publishes_nothing_and_reports_what_it_would_enqueue(settings, storage, bus, topology, grid, drain):
    report = run_enqueue(settings, storage, bus, dry_run=True, limit=5)
    assert (report.dry_run, report.enqueued, report.would_enqueue, report.missing) == (True, 0, 5, 12)
    assert report.publish_per_second is None
    assert drain(settings.request_subscription) == []


def test_limit_enqueues_only_the_first_missing_runs_in_path_order(settings, storage, bus, topology, grid, drain):
    report = run_enqueue(settings, storage, bus, limit=4)
    assert (report.missing, report.enqueued) == (12, 4)
    paths = sorted(SummaryRequest.decode(m.data).run_path for m in drain(settings.request_subscription, expect=4))
    assert paths == sorted(grid)[:4]


def test_filters_enqueue_only_matching_runs(settings, storage, bus, topology, grid, drain):
    report = run_enqueue(settings, storage, bus, country="fr")
    assert report.enqueued == 6
    paths = {SummaryRequest.decode(m.data).run_path for m in drain(settings.request_subscription, expect=6)}
    assert paths == {p for p in grid if p.split("/")[2] == "fr"}


def test_unconfirmed_publish_is_a_typed_error_not_a_silent_loss(settings, storage, bus, topology, grid):
    # the request topic is deleted after the check before publishing, so no publish can be confirmed
    def delete_topic(found, todo):
        bus.publisher.delete_topic(request={"topic": bus.topic_path(settings.request_topic)})

    with pytest.raises(PublishFailed):
        run_enqueue(settings, storage, bus, on_scanned=delete_topic)


def test_progress_goes_to_stderr_so_stdout_stays_clean(settings, storage, bus, topology, grid, drain, capsys):
    report = run_enqueue(settings, storage, bus, show_progress=True)
    assert report.enqueued == 12
    assert capsys.readouterr().out == ""
    drain(settings.request_subscription, expect=12)


def test_report_renders_one_counts_table_and_json(settings, storage, grid):
    report = run_enqueue(settings, storage, None, dry_run=True)
    document = report.to_dict()
    assert json.loads(json.dumps(document))["would_enqueue"] == 12
    title, columns, rows = report.tables()[0]
    assert "dry run" in title and ["would enqueue", 12] in rows


def test_cli_dry_run_prints_json_counts(settings, storage, topology, grid, emulator_env):
    env = {**emulator_env, "MMM_BACKFILL_PROJECT": settings.project, "MMM_BACKFILL_BUCKET": settings.bucket}
    result = subprocess.run(
        [sys.executable, "-m", "mmm_backfill", "enqueue", "--dry-run", "--json", "--revision", "r2"],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, result.stderr
    document = json.loads(result.stdout)
    assert (document["runs_seen"], document["would_enqueue"], document["enqueued"]) == (6, 6, 0)
