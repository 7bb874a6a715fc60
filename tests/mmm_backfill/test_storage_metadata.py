"""Custom metadata written with an object comes back in a bucket listing (fake-gcs-server)."""

import pytest

from mmm_backfill.storage import WRITE_ID_KEY

pytestmark = pytest.mark.integration


def test_listing_returns_each_objects_custom_metadata_and_generation(storage):
    generation = storage.write("robyn/r/c/t/model_summary.json", b"{}", 0, metadata={"mmm-writer": "mmm-backfill"})
    storage.write("robyn/r/c/t/OutputCollect.RDS", b"x", 0)
    listed = {o.name: o for o in storage.list("robyn/")}
    summary = listed["robyn/r/c/t/model_summary.json"]
    assert summary.generation == generation and summary.metadata["mmm-writer"] == "mmm-backfill"
    assert set(listed["robyn/r/c/t/OutputCollect.RDS"].metadata) == {WRITE_ID_KEY}


def test_stat_returns_the_live_generation_and_metadata(storage):
    generation = storage.write("a/b.json", b"{}", 0, metadata={"k": "v"})
    info = storage.stat("a/b.json")
    assert (info.generation, info.metadata["k"]) == (generation, "v")
    assert storage.stat("a/none.json") is None


def test_unconditional_write_replaces_whatever_is_there(storage):
    first = storage.write("a/copy.json", b"1", None)
    second = storage.write("a/copy.json", b"2", None)
    assert second != first and storage.read("a/copy.json")[0] == b"2"
