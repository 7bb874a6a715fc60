"""One request through the handler, on the real emulators."""

import gzip
import json
import time

import pytest

from local_stack.seed import upload_tree
from mmm_backfill.bus import Bus
from mmm_backfill.messages import CompletionEvent, SummaryRequest
from mmm_backfill.runpath import RunPath
from worker.boundary.rbridge import RSession
from worker.handler import Handler, remove_stale_temp_dirs

pytestmark = pytest.mark.integration


@pytest.fixture
def handler(settings, storage, bus, topology):
    return Handler(settings, storage, bus, RSession.shared(), "test-worker")


@pytest.fixture
def seeded(storage, generated_runs, tmp_path):
    """The generated 'standard' run uploaded as robyn/gen/xx/standard."""
    root = generated_runs["standard"].parents[3]
    for name in ("OutputCollect.RDS", "InputCollect.RDS", "best_model_id.txt", "timings.csv"):
        path = generated_runs["standard"] / name
        storage.upload_file(f"robyn/gen/xx/standard/{name}", str(path))
    assert root.name
    return RunPath("gen", "xx", "standard")


def request(settings, run, **changes):
    msg = SummaryRequest.for_run(settings.bucket, run, "bf-test")
    return msg.encode(), msg.attributes()


def pull_all(bus: Bus, subscription: str, expect: int, timeout: float = 20.0):
    got, deadline = [], time.monotonic() + timeout
    while len(got) < expect and time.monotonic() < deadline:
        batch = bus.pull(subscription, 10, timeout=2)
        bus.ack(subscription, [m.ack_id for m in batch])
        got += batch
    return got


def test_request_creates_the_summary_and_reports_created(handler, settings, storage, bus, seeded):
    outcome = handler.handle(*request(settings, seeded))
    assert outcome.outcome == "created"
    data, _ = storage.read(seeded.summary_name)
    assert json.loads(data)["candidate_model_count"] == 30
    (event,) = pull_all(bus, settings.event_subscription, 1)
    decoded = CompletionEvent.decode(event.data)
    assert decoded.outcome == "created" and decoded.run_path == seeded.prefix


def test_the_event_names_the_backfill_and_the_created_at_of_the_summary_written(
    handler, settings, storage, bus, seeded
):
    handler.handle(*request(settings, seeded))
    handler.handle(*request(settings, seeded))
    events = {CompletionEvent.decode(e.data).outcome: e for e in pull_all(bus, settings.event_subscription, 2)}
    created, found = events["created"], events["already_existed"]
    written = json.loads(storage.read(seeded.summary_name)[0])
    assert created.attributes["backfill_id"] == found.attributes["backfill_id"] == "bf-test"
    assert created.attributes["summary_created_at"] == written["created_at"]
    assert "summary_created_at" not in found.attributes  # already existed: this worker wrote nothing


def test_second_request_keeps_the_first_summary(handler, settings, storage, seeded):
    handler.handle(*request(settings, seeded))
    generation = storage.generation(seeded.summary_name)
    assert handler.handle(*request(settings, seeded)).outcome == "already_existed"
    assert storage.generation(seeded.summary_name) == generation


def test_non_rds_file_is_dead_lettered_with_its_reason(handler, settings, storage, bus):
    run = RunPath("r1", "de", "bad")
    storage.write(run.object_name("OutputCollect.RDS"), b"this is not an RDS file", 0)
    outcome = handler.handle(*request(settings, run))
    assert (outcome.outcome, outcome.reason) == ("dead_lettered", "not_rds")
    (letter,) = pull_all(bus, settings.dead_letter_subscription, 1)
    assert letter.attributes["error_reason"] == "not_rds"
    assert letter.attributes["run_path"] == run.prefix and letter.attributes["worker"] == "test-worker"
    assert letter.attributes["backfill_id"] == "bf-test"
    assert storage.generation(run.summary_name) is None


@pytest.mark.parametrize(
    "body,reason",
    [
        (b"{not json", "message_not_json"),
        (b"\xff\xfe", "message_not_utf8"),
        (b'{"v": 1}', "message_bad_fields"),
    ],
)
def test_malformed_message_is_dead_lettered(handler, bus, settings, body, reason):
    assert handler.handle(body, {}).reason == reason
    assert len(pull_all(bus, settings.dead_letter_subscription, 1)) == 1


def test_request_for_another_bucket_is_refused(handler, settings, seeded):
    msg = SummaryRequest.for_run("someone-elses-bucket", seeded, "bf")
    assert handler.handle(msg.encode(), msg.attributes()).reason == "other_bucket"


def test_run_without_output_collect_is_dead_lettered(handler, settings, storage):
    run = RunPath("r1", "de", "empty")
    storage.write(run.object_name("InputCollect.RDS"), b"x", 0)
    assert handler.handle(*request(settings, run)).reason == "missing_run_file"


def test_rds_over_the_size_limit_is_refused_before_download(settings, storage, bus, topology):
    small = Handler(settings.replace(max_rds_bytes=10), storage, bus, RSession.shared(), "w")
    run = RunPath("r1", "de", "big")
    storage.write(run.object_name("OutputCollect.RDS"), b"x" * 100, 0)
    assert small.handle(*request(settings, run)).reason == "rds_too_large"
    assert storage.calls.get("download", 0) == 0


def test_a_run_text_file_over_the_configured_limit_is_dead_lettered(settings, storage, bus, topology, seeded):
    small = Handler(settings.replace(max_run_text_bytes=10), storage, bus, RSession.shared(), "w")
    outcome = small.handle(*request(settings, seeded))
    assert (outcome.outcome, outcome.reason) == ("dead_lettered", "invalid_run_file")
    assert storage.generation(seeded.summary_name) is None


def test_an_rds_stored_compressed_that_decodes_past_the_limit_is_stopped(settings, storage, bus, topology, tmp_path):
    run = RunPath("r1", "de", "bomb")
    blob = storage.bucket.blob(run.object_name("OutputCollect.RDS"))
    blob.content_encoding = "gzip"
    blob.upload_from_string(gzip.compress(b"\0" * 50_000_000))
    small = Handler(settings.replace(max_rds_bytes=1 << 20), storage, bus, RSession.shared(), "w")
    assert small.handle(*request(settings, run)).reason == "object_too_large"
    assert storage.generation(run.summary_name) is None


def test_storage_outage_means_retry_not_dead_letter(settings, storage, bus, topology, seeded):
    broken = storage.__class__(settings.project, settings.bucket)
    broken.generation = lambda name: (_ for _ in ()).throw(ConnectionResetError("reset"))  # type: ignore[method-assign]
    outcome = Handler(settings, broken, bus, RSession.shared(), "w").handle(*request(settings, seeded))
    assert outcome.outcome == "retry"


def test_stale_temp_folders_of_dead_processes_are_removed(tmp_path):
    (tmp_path / "mmm-run-999999999-abc").mkdir()
    (tmp_path / "mmm-run-1-alive").mkdir()  # pid 1 is alive
    assert remove_stale_temp_dirs(str(tmp_path)) == 1
    assert (tmp_path / "mmm-run-1-alive").exists()


def test_upload_tree_keeps_relative_names(storage, tmp_path):
    (tmp_path / "robyn" / "r" / "c" / "t").mkdir(parents=True)
    (tmp_path / "robyn" / "r" / "c" / "t" / "OutputCollect.RDS").write_bytes(b"x")
    assert upload_tree(storage, str(tmp_path)) == 1
    assert [o.name for o in storage.list("robyn/")] == ["robyn/r/c/t/OutputCollect.RDS"]
