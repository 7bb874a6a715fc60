"""The storage stage of a request on the real emulators: every file at once, large ones in slices, bounds first."""

import os

import pytest

from mmm_backfill.errors import RdsTooLarge
from mmm_backfill.messages import SummaryRequest
from mmm_backfill.runpath import RunPath
from worker.fetch import RunFetcher

pytestmark = pytest.mark.integration

RUN = RunPath("r1", "de", "1101_000001")
FILES = ("OutputCollect.RDS", "InputCollect.RDS", "best_model_id.txt", "timings.csv")


@pytest.fixture
def uploaded(storage, generated_runs):
    for name in FILES:
        storage.upload_file(RUN.object_name(name), str(generated_runs["standard"] / name))
    return generated_runs["standard"]


def body(settings, run=RUN) -> bytes:
    return SummaryRequest.for_run(settings.bucket, run, "bf-test").encode()


def read(path) -> bytes:
    with open(path, "rb") as fh:
        return fh.read()


def test_every_file_of_the_run_arrives_in_a_folder_of_its_own(settings, storage, uploaded):
    fetched = RunFetcher(settings, storage).fetch(body(settings))
    try:
        assert fetched.error is None and fetched.done is None
        assert sorted(fetched.files) == sorted(FILES)
        for name, path in fetched.files.items():
            assert read(path) == read(uploaded / name)
    finally:
        fetched.close()
    assert not os.path.exists(fetched.files.get("OutputCollect.RDS", "/nonexistent"))


def test_a_large_file_arrives_whole_in_slices(settings, storage, uploaded):
    sliced = settings.replace(slice_bytes=1024, fetch_streams=4)
    fetched = RunFetcher(sliced, storage).fetch(body(settings))
    try:
        assert read(fetched.files["OutputCollect.RDS"]) == read(uploaded / "OutputCollect.RDS")
        assert read(fetched.files["InputCollect.RDS"]) == read(uploaded / "InputCollect.RDS")
    finally:
        fetched.close()


def test_one_stream_fetches_the_same_files(settings, storage, uploaded):
    fetched = RunFetcher(settings.replace(fetch_streams=1), storage).fetch(body(settings))
    try:
        assert {name: read(path) for name, path in fetched.files.items()} == {n: read(uploaded / n) for n in FILES}
    finally:
        fetched.close()


def test_an_existing_summary_means_nothing_is_downloaded(settings, storage, uploaded):
    generation = storage.write(RUN.summary_name, b"{}", 0)
    fetched = RunFetcher(settings, storage).fetch(body(settings))
    assert fetched.done == ("already_existed", generation) and fetched.files == {}
    assert storage.calls.get("download", 0) == 0


def test_sizes_are_refused_before_any_download(settings, storage, uploaded):
    fetched = RunFetcher(settings.replace(max_rds_bytes=10), storage).fetch(body(settings))
    assert isinstance(fetched.error, RdsTooLarge) and fetched.folder is None
    assert storage.calls.get("download", 0) == 0
    with pytest.raises(RdsTooLarge):
        fetched.ready()


def test_a_run_over_the_byte_budget_is_deferred_not_downloaded(settings, storage, uploaded):
    fetched = RunFetcher(settings, storage).fetch(body(settings), max_bytes=100)
    assert fetched.deferred and fetched.error is None and fetched.folder is None
    assert storage.calls.get("download", 0) == 0
