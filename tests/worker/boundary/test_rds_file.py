import bz2
import gzip
import lzma

import pytest

from mmm_backfill.config import RdsLimits
from mmm_backfill.errors import NotRds, RdsCorrupt, RdsTooLarge, RdsTruncated
from worker.boundary.rds_file import read_serialized

STREAM = b"X\n\x00\x00\x00\x03\x00\x04\x02\x02\x00\x03\x05\x00" + b"\x00" * 64


def write(tmp_path, data, name="OutputCollect.RDS"):
    path = tmp_path / name
    path.write_bytes(data)
    return str(path)


@pytest.mark.parametrize("compress", [gzip.compress, bz2.compress, lzma.compress, lambda b: b])
def test_every_compression_r_writes_is_read(tmp_path, compress):
    assert read_serialized(write(tmp_path, compress(STREAM))) == STREAM


def test_non_rds_bytes_are_refused(tmp_path):
    with pytest.raises(NotRds, match="OutputCollect.RDS"):
        read_serialized(write(tmp_path, b"PK\x03\x04 a zip file"))


def test_compressed_non_rds_is_refused(tmp_path):
    with pytest.raises(NotRds):
        read_serialized(write(tmp_path, gzip.compress(b"hello, world" * 10)))


def test_empty_file_is_truncated(tmp_path):
    with pytest.raises(RdsTruncated):
        read_serialized(write(tmp_path, b""))


def test_truncated_gzip_is_reported_as_truncated(tmp_path):
    data = gzip.compress(STREAM * 1000)
    with pytest.raises(RdsTruncated):
        read_serialized(write(tmp_path, data[: len(data) // 2]))


def test_damaged_gzip_is_corrupt(tmp_path):
    data = bytearray(gzip.compress(STREAM * 1000))
    data[20:40] = b"\xff" * 20
    with pytest.raises((RdsCorrupt, RdsTruncated)):
        read_serialized(write(tmp_path, bytes(data)))


def test_file_over_the_size_limit_is_refused_before_reading(tmp_path):
    with pytest.raises(RdsTooLarge, match="limit of 50"):
        read_serialized(write(tmp_path, STREAM), RdsLimits(max_file_bytes=50))


def test_decompression_bomb_stops_at_the_limit(tmp_path):
    bomb = gzip.compress(STREAM + b"\x00" * (64 * 1024 * 1024), compresslevel=9)
    assert len(bomb) < 200_000
    with pytest.raises(RdsTooLarge, match="decompresses"):
        read_serialized(write(tmp_path, bomb), RdsLimits(max_serialized_bytes=8 * 1024 * 1024))


def test_xz_bomb_stops_at_the_limit(tmp_path):
    bomb = lzma.compress(STREAM + b"\x00" * (32 * 1024 * 1024))
    with pytest.raises(RdsTooLarge):
        read_serialized(write(tmp_path, bomb), RdsLimits(max_serialized_bytes=4 * 1024 * 1024))


def python_alloc(calls):
    def alloc(size):
        calls.append(size)
        return memoryview(bytearray(size))

    return alloc


def with_trailer_size(data: bytes, size: int) -> bytes:
    return data[:-4] + (size % 2**32).to_bytes(4, "little")


def test_gzip_is_decompressed_into_the_buffer_its_trailer_announces(tmp_path):
    calls = []
    data = read_serialized(write(tmp_path, gzip.compress(STREAM)), alloc=python_alloc(calls))
    assert calls == [len(STREAM)] and isinstance(data, memoryview) and bytes(data) == STREAM


@pytest.mark.parametrize("announced", [len(STREAM) // 2, len(STREAM) * 3])
def test_a_trailer_size_that_lies_is_corrupt_not_trusted(tmp_path, announced):
    path = write(tmp_path, with_trailer_size(gzip.compress(STREAM), announced))
    with pytest.raises(RdsCorrupt):
        read_serialized(path, alloc=python_alloc([]))


def test_an_announced_size_over_the_limit_allocates_nothing(tmp_path):
    calls = []
    path = write(tmp_path, with_trailer_size(gzip.compress(STREAM), 10**9))
    with pytest.raises(RdsCorrupt):
        read_serialized(path, RdsLimits(max_serialized_bytes=1000), python_alloc(calls))
    assert calls == []


def test_a_bomb_with_a_small_announced_size_stops_at_the_limit(tmp_path):
    bomb = with_trailer_size(gzip.compress(STREAM + b"\x00" * (16 * 1024 * 1024)), 100)
    with pytest.raises(RdsTooLarge):
        read_serialized(write(tmp_path, bomb), RdsLimits(max_serialized_bytes=4 * 1024 * 1024), python_alloc([]))
