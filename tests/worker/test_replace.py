"""Refreshing a summary on the real emulators: compare-and-swap, the old version kept, races with writers."""

import json
import threading

import pytest

from mmm_backfill.messages import CompletionEvent, SummaryRequest
from mmm_backfill.runpath import RunPath
from mmm_backfill.storage import Storage
from mmm_backfill.summary_state import SummaryState, summary_metadata, summary_state
from worker.boundary.rbridge import RSession
from worker.handler import Handler
from worker.replace import PREVIOUS_GENERATION_KEY, ReplaceConflict, previous_name, swap_in

pytestmark = pytest.mark.integration

RUN = RunPath("gen", "xx", "standard")
LEGACY = b'{"has_pareto_models": false, "pareto_model_count": 0}'
NEW = b'{"has_pareto_models": true}'


@pytest.fixture
def run_files(storage, generated_runs):
    for name in ("OutputCollect.RDS", "InputCollect.RDS", "best_model_id.txt", "timings.csv"):
        storage.upload_file(RUN.object_name(name), str(generated_runs["standard"] / name))
    return RUN


@pytest.fixture
def legacy(storage):
    """A summary written without mmm-backfill's metadata, as the old extractor did; its generation."""
    return storage.write(RUN.summary_name, LEGACY, 0)


def refresh_request(settings, generation):
    msg = SummaryRequest.for_run(settings.bucket, RUN, "bf-refresh", replace_generation=generation)
    return msg.encode(), msg.attributes()


def live(storage):
    return storage.stat(RUN.summary_name)


def previous(storage):
    found = storage.read(previous_name(RUN))
    return None if found is None else found[0]


class RacingStorage(Storage):
    """Storage that lets another writer in once the summary is copied aside, before the swap (a real
    write, on the emulator): the copy is made inside Cloud Storage, so that is where a writer can come in."""

    def __init__(self, settings, on_copy):
        super().__init__(settings.project, settings.bucket)
        self.on_copy = on_copy

    def copy(self, source, name, if_generation_match, metadata=None):
        generation = super().copy(source, name, if_generation_match, metadata)
        if name == previous_name(RUN) and self.on_copy:
            hook, self.on_copy = self.on_copy, None
            hook()
        return generation


# -- through the handler ---------------------------------------------------------------------------


def test_refresh_replaces_a_legacy_summary_and_keeps_the_old_one(settings, storage, bus, topology, run_files, legacy):
    handler = Handler(settings, storage, bus, RSession.shared(), "w")
    outcome = handler.handle(*refresh_request(settings, legacy))
    assert outcome.outcome == "replaced"
    now = live(storage)
    assert now.generation != legacy and summary_state(now.metadata) is SummaryState.CURRENT
    assert json.loads(storage.read(RUN.summary_name)[0])["candidate_model_count"] == 30
    assert previous(storage) == LEGACY
    assert storage.stat(previous_name(RUN)).metadata[PREVIOUS_GENERATION_KEY] == str(legacy)
    (event,) = bus.pull(settings.event_subscription, 10, timeout=10)
    assert (CompletionEvent.decode(event.data).outcome, CompletionEvent.decode(event.data).generation) == (
        "replaced",
        now.generation,
    )


def test_refresh_copies_the_old_summary_inside_storage_without_reading_it(settings, storage, bus, topology, run_files):
    oversized = b'{"created_at": "' + b"x" * (2 * settings.max_summary_bytes) + b'"}'  # a legacy summary, however large
    generation = storage.write(RUN.summary_name, oversized, 0)
    storage.calls.clear()
    outcome = Handler(settings, storage, bus, RSession.shared(), "w").handle(*refresh_request(settings, generation))
    assert (storage.calls.get("read", 0), storage.calls["copy"]) == (0, 1)
    assert outcome.outcome == "replaced" and summary_state(live(storage).metadata) is SummaryState.CURRENT
    assert previous(storage) == oversized


def test_refresh_of_a_current_summary_is_a_no_op_that_still_completes(settings, storage, bus, topology, run_files):
    generation = storage.write(RUN.summary_name, NEW, 0, metadata=summary_metadata())
    storage.calls.clear()
    outcome = Handler(settings, storage, bus, RSession.shared(), "w").handle(*refresh_request(settings, generation))
    assert outcome.outcome == "already_existed" and live(storage).generation == generation
    assert "download" not in storage.calls and previous(storage) is None
    (event,) = bus.pull(settings.event_subscription, 10, timeout=10)
    assert CompletionEvent.decode(event.data).outcome == "already_existed"


def test_refresh_of_a_summary_deleted_since_enqueue_creates_it(settings, storage, bus, topology, run_files):
    outcome = Handler(settings, storage, bus, RSession.shared(), "w").handle(*refresh_request(settings, 12345))
    assert outcome.outcome == "created" and summary_state(live(storage).metadata) is SummaryState.CURRENT


def test_a_plain_backfill_writes_the_state_metadata(settings, storage, bus, topology, run_files):
    msg = SummaryRequest.for_run(settings.bucket, RUN, "bf")
    assert Handler(settings, storage, bus, RSession.shared(), "w").handle(msg.encode(), msg.attributes()).outcome == (
        "created"
    )
    assert summary_state(live(storage).metadata) is SummaryState.CURRENT


# -- races with a concurrent writer (the swap itself) ----------------------------------------------


def test_a_newer_summary_written_during_the_refresh_is_never_replaced(settings, storage, legacy):
    other = Storage(settings.project, settings.bucket)
    theirs = {}

    def concurrent_current_write():
        theirs["generation"] = other.write(RUN.summary_name, b'{"theirs": 1}', legacy, metadata=summary_metadata())

    racing = RacingStorage(settings, concurrent_current_write)
    outcome, generation = swap_in(racing, RUN, legacy, NEW, racing.stat(RUN.summary_name))
    assert (outcome, generation) == ("already_existed", theirs["generation"])
    assert storage.read(RUN.summary_name)[0] == b'{"theirs": 1}'
    assert previous(storage) == LEGACY  # the version their write replaced is kept too


def test_a_legacy_write_during_the_refresh_is_kept_aside_then_replaced(settings, storage, legacy):
    other = Storage(settings.project, settings.bucket)
    theirs = {}

    def concurrent_legacy_write():
        theirs["generation"] = other.write(RUN.summary_name, b'{"old app": 2}', legacy)

    racing = RacingStorage(settings, concurrent_legacy_write)
    outcome, generation = swap_in(racing, RUN, legacy, NEW, racing.stat(RUN.summary_name))
    assert outcome == "replaced" and generation not in (legacy, theirs["generation"])
    assert storage.read(RUN.summary_name)[0] == NEW
    assert previous(storage) == b'{"old app": 2}'  # their write is not lost
    assert storage.stat(previous_name(RUN)).metadata[PREVIOUS_GENERATION_KEY] == str(theirs["generation"])


def test_racing_refreshes_and_a_writer_lose_no_write(settings, storage, legacy, atomic_storage):
    """Six refreshes of one legacy summary and a writer of a current one, all at once.

    Through ``atomic_storage``: the copy aside is a rewrite, whose preconditions the emulator ignores.
    """
    barrier, results = threading.Barrier(7), []

    def refresh(i):
        mine = atomic_storage()
        barrier.wait()
        results.append(swap_in(mine, RUN, legacy, json.dumps({"refresh": i}).encode(), mine.stat(RUN.summary_name)))

    def writer():
        mine = atomic_storage()
        barrier.wait()
        try:
            results.append(
                ("writer", mine.write(RUN.summary_name, b'{"writer": 1}', legacy, metadata=summary_metadata()))
            )
        except Exception:  # noqa: BLE001 - lost its own compare-and-swap: nothing of it was written
            results.append(("writer lost", None))

    threads = [threading.Thread(target=refresh, args=(i,)) for i in range(6)] + [threading.Thread(target=writer)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    writes = [r for r in results if r[0] in ("replaced", "writer")]
    assert len(writes) == 1, results  # one swap of the legacy version won; nobody replaced a current one
    assert all(r[0] in ("already_existed", "writer lost") for r in results if r not in writes)
    assert live(storage).generation == writes[0][1]
    if writes[0][0] == "replaced":  # a refresh won: the legacy version it replaced is kept
        assert previous(storage) == LEGACY
    else:  # the writer won (it keeps nothing aside); only a refresh that lost may have copied it
        assert previous(storage) in (None, LEGACY)


def test_a_summary_that_keeps_changing_gives_up_to_a_retry(settings, storage, legacy):
    class Churning(Storage):
        def write(self, name, data, if_generation_match, content_type="application/json", metadata=None):
            if name == RUN.summary_name:  # another legacy writer wins every time
                super().write(name, b"{}", None)
            return super().write(name, data, if_generation_match, content_type, metadata)

    churning = Churning(settings.project, settings.bucket)
    with pytest.raises(ReplaceConflict):
        swap_in(churning, RUN, legacy, NEW, churning.stat(RUN.summary_name))
    assert summary_state(live(storage).metadata) is SummaryState.LEGACY
