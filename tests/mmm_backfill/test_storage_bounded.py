"""Bounded reads and server-side copies of objects whose size someone else decides (fake-gcs-server).

fake-gcs-server v1.54 ignores ``ifGenerationMatch`` and ``ifSourceGenerationMatch`` on a rewrite
(it copies unconditionally); it does honour ``sourceGeneration``, so a copy pinned to a version that
was replaced meanwhile fails there as it does on Cloud Storage. The two preconditions are tested
through ``atomic_storage`` (a relay that checks them as Cloud Storage does): what is sent, and how
a refusal is taken.
"""

import gzip

import pytest

from mmm_backfill.errors import ObjectTooLarge
from mmm_backfill.storage import WRITE_ID_KEY, PreconditionFailed

pytestmark = pytest.mark.integration


def put_gzip(storage, name: str, data: bytes) -> None:
    """An object stored gzip-compressed with ``Content-Encoding: gzip``: clients receive it decoded."""
    blob = storage.bucket.blob(name)
    blob.content_encoding = "gzip"
    blob.upload_from_string(gzip.compress(data), content_type="application/json")


def test_an_object_listed_over_the_limit_is_refused_without_a_download(storage):
    storage.write("a/big.json", b"x" * 1001, 0)
    (listed,) = storage.list("a/")
    storage.calls.clear()
    with pytest.raises(ObjectTooLarge):
        storage.read_object(listed, 1000)
    assert storage.calls == {}


def test_a_listed_object_is_read_whole_up_to_the_limit(storage):
    storage.write("a/ok.json", b"x" * 1000, 0)
    (listed,) = storage.list("a/")
    assert storage.read_object(listed, 1000) == b"x" * 1000


def test_the_read_is_pinned_to_the_listed_version_never_a_newer_larger_one(storage):
    generation = storage.write("a/s.json", b"{}", 0)
    (listed,) = storage.list("a/")
    storage.write("a/s.json", b"x" * 10_000_000, generation)
    assert storage.read_object(listed, 1000) is None  # that version is gone; the caller lists again


def test_a_compressed_object_that_decodes_past_the_limit_is_stopped(storage):
    put_gzip(storage, "a/bomb.json", b"0" * 50_000_000)
    (listed,) = storage.list("a/")
    assert listed.size < 100_000
    with pytest.raises(ObjectTooLarge):
        storage.read_object(listed, 1 << 20)


def test_a_download_stops_at_the_limit_and_writes_no_more(storage, tmp_path):
    put_gzip(storage, "a/bomb.bin", b"0" * 50_000_000)
    (listed,) = storage.list("a/")
    with pytest.raises(ObjectTooLarge):
        storage.download_object(listed, str(tmp_path / "out"), 1 << 20)
    assert (tmp_path / "out").stat().st_size <= 1 << 20


def test_a_download_writes_the_listed_version(storage, tmp_path):
    storage.write("a/run.bin", b"rds bytes", 0)
    (listed,) = storage.list("a/")
    storage.download_object(listed, str(tmp_path / "out"), 100)
    assert (tmp_path / "out").read_bytes() == b"rds bytes"


def test_a_sliced_download_writes_the_listed_version(storage, tmp_path):
    data = bytes(range(256)) * 4000
    storage.write("a/run.bin", data, 0)
    (listed,) = storage.list("a/")
    storage.download_object_sliced(listed, str(tmp_path / "out"), len(data), 4)
    assert (tmp_path / "out").read_bytes() == data


def test_a_sliced_download_of_a_compressed_object_is_bounded_by_what_it_decodes_to(storage, tmp_path):
    put_gzip(storage, "a/bomb.bin", b"0" * 50_000_000)
    (listed,) = storage.list("a/")
    with pytest.raises(ObjectTooLarge):
        storage.download_object_sliced(listed, str(tmp_path / "out"), 1 << 20, 4)
    assert (tmp_path / "out").stat().st_size <= 1 << 20


def test_a_copy_keeps_the_bytes_type_and_encoding_and_carries_its_own_metadata(storage):
    put_gzip(storage, "a/old.json", b'{"legacy": true}')
    source = storage.stat("a/old.json")
    generation = storage.copy(source, "a/old.copy.json", 0, metadata={"k": "v"})
    copy = storage.stat("a/old.copy.json")
    assert copy.generation == generation and copy.size == source.size
    assert (copy.content_type, copy.content_encoding) == ("application/json", "gzip")
    assert copy.metadata["k"] == "v" and WRITE_ID_KEY in copy.metadata
    assert storage.read("a/old.copy.json")[0] == b'{"legacy": true}'


def test_a_copy_of_a_version_replaced_meanwhile_is_refused(storage):
    generation = storage.write("a/s.json", b"old", 0)
    seen = storage.stat("a/s.json")
    storage.write("a/s.json", b"new", generation)
    with pytest.raises(PreconditionFailed):
        storage.copy(seen, "a/s.copy.json", 0)
    assert storage.stat("a/s.copy.json") is None


def test_a_copy_over_a_destination_changed_since_it_was_seen_is_refused(storage, atomic_storage):
    storage.write("a/s.json", b"old", 0)
    seen = storage.stat("a/s.json")
    first = atomic_storage().copy(seen, "a/s.copy.json", 0)
    with pytest.raises(PreconditionFailed):
        atomic_storage().copy(seen, "a/s.copy.json", 0)  # another copy got there first
    assert storage.stat("a/s.copy.json").generation == first


def test_a_copy_of_a_summary_that_is_no_longer_live_is_refused(storage, atomic_storage):
    generation = storage.write("a/s.json", b"old", 0)
    seen = storage.stat("a/s.json")
    storage.write("a/s.json", b"new", generation)
    relayed = atomic_storage()
    with pytest.raises(PreconditionFailed):
        relayed.copy(seen, "a/s.copy.json", 0)
    assert storage.stat("a/s.copy.json") is None
