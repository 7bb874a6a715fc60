"""The worker's read of one OutputCollect.RDS beside the floor and the one open candidate fix.

``python -m bench.experiments [--size-mb 40] [--repeats 5]`` prints JSON with the median seconds
of getting one file from fake-gcs-server into R (``unserialize`` done, object dropped):

* ``floor``: ``Storage.download`` to a file, then ``readRDS`` (what the floor section times);
* ``product``: what the worker does today: ``Storage.download`` to a file, ``read_serialized``
  (bounded decompression into a bytearray), ``RSession.inspect`` (one copy into R, ``unserialize``);
* ``file_into_r_vector``: the same file decompressed (same bound) straight into an R raw vector
  sized by the gzip trailer's ISIZE hint: no bytearray, no copy into R;
* ``streamed_into_r_vector``: no temp file: ``Blob.download_to_file`` writes the response into a
  sink that feeds the bounded decompressor; the pieces are copied once into an R raw vector;
* the parts: download only, ``read_serialized`` only, ``inspect`` only.

The fixes that were measured here before (1 MiB download reads, unbatched event publish, no
copy of the decompressed stream) are in the product now.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import struct
import tempfile
import time
import zlib
from collections.abc import Callable
from pathlib import Path

from bench.data import default_cache_dir, template_runs
from bench.env import start_gcs

#: Output of one decompression step (as ``worker.rds_file.CHUNK``).
CHUNK = 1 << 20


def median_time(fn: Callable[[], object], repeats: int) -> float:
    times = []
    for _ in range(repeats):
        t = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t)
    return round(statistics.median(times), 4)


def r_raw_vector(size: int):  # noqa: ANN201 - an R raw vector and a writable view of it
    """A new R raw vector of ``size`` bytes and a writable buffer over its data (call on R's thread)."""
    import rpy2.rinterface as ri
    from rpy2.rinterface_lib import openrlib

    vector = ri.baseenv["raw"](size)
    return vector, openrlib.ffi.buffer(ri.ByteSexpVector._R_GET_PTR(vector.__sexp__._cdata), size)


def gzip_size_hint(path: str) -> int:
    """The gzip trailer's ISIZE (uncompressed size mod 2**32): a hint, never trusted as a bound."""
    with open(path, "rb") as fh:
        fh.seek(-4, os.SEEK_END)
        return struct.unpack("<I", fh.read(4))[0]


def file_into_r_vector(path: str, limit: int):  # noqa: ANN201 - R vector
    """Bounded gzip decompression of ``path`` written straight into an R raw vector (R's thread)."""
    size = min(gzip_size_hint(path), limit)
    vector, view = r_raw_vector(size)
    dec = zlib.decompressobj(wbits=16 + zlib.MAX_WBITS)
    pos = 0
    with open(path, "rb") as fh:
        while not dec.eof and (data := fh.read(CHUNK)):
            while data:
                out = dec.decompress(data, CHUNK)
                if pos + len(out) > size:
                    raise ValueError("larger than the hint: the product would fall back to a growing buffer")
                view[pos : pos + len(out)] = out
                pos += len(out)
                data = dec.unconsumed_tail
    if not dec.eof or pos != size:
        raise ValueError("truncated, or smaller than the hint")
    return vector


class DecompressingSink:
    """A write-only file object for ``Blob.download_to_file``: bounded gzip decompression as bytes arrive."""

    def __init__(self, limit: int) -> None:
        self.dec = zlib.decompressobj(wbits=16 + zlib.MAX_WBITS)
        self.parts: list[bytes] = []
        self.size, self.limit = 0, limit

    def write(self, data: bytes) -> int:
        n = len(data)
        while data and not self.dec.eof:
            out = self.dec.decompress(data, CHUNK)
            self.size += len(out)
            if self.size > self.limit:
                raise ValueError("over the limit")
            self.parts.append(out)
            data = self.dec.unconsumed_tail
        return n

    def into_r(self):  # noqa: ANN201 - R vector (call on R's thread)
        if not self.dec.eof:
            raise ValueError("truncated")
        vector, view = r_raw_vector(self.size)
        pos = 0
        for part in self.parts:
            view[pos : pos + len(part)] = part
            pos += len(part)
        self.parts.clear()
        return vector


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--size-mb", type=int, default=40)
    p.add_argument("--repeats", type=int, default=5)
    args = p.parse_args()

    import rpy2.rinterface as ri

    from mmm_backfill.config import RdsLimits
    from mmm_backfill.storage import TIMEOUT, Storage
    from worker.rbridge import RSession
    from worker.rds_file import read_serialized

    template = template_runs(default_cache_dir(), args.size_mb)[0]
    rds = str(template / "OutputCollect.RDS")
    workdir = Path(tempfile.mkdtemp(prefix="mmm-bench-exp-"))
    bucket = "bench-exp"
    target = workdir / "data" / bucket / "robyn/r1/de/t1"
    target.mkdir(parents=True)
    shutil.copyfile(rds, target / "OutputCollect.RDS")
    gcs = start_gcs(workdir, "gcs", workdir / "data")
    os.environ["STORAGE_EMULATOR_HOST"] = gcs.url
    out: dict = {"file_mb": round(os.path.getsize(rds) / 1e6, 1), "repeats": args.repeats}
    try:
        storage = Storage("bench", bucket)
        session = RSession.shared()
        limit = RdsLimits().max_serialized_bytes
        name = "robyn/r1/de/t1/OutputCollect.RDS"
        dest = str(workdir / "dl.RDS")
        storage.download(name, dest)
        serialized = read_serialized(dest)
        out["serialized_mb"] = round(len(serialized) / 1e6, 1)
        del serialized

        def unserialize(vector) -> None:  # noqa: ANN001 - R vector
            session.run(lambda: ri.baseenv["unserialize"](vector) and None)

        def floor() -> None:
            storage.download(name, dest)
            session.run(lambda: ri.baseenv["readRDS"](dest) and None)

        def product() -> None:
            storage.download(name, dest)
            session.inspect(read_serialized(dest), "OutputCollect.RDS", lambda root: None)

        def file_into_r() -> None:
            storage.download(name, dest)
            unserialize(session.run(file_into_r_vector, dest, limit))

        def streamed_into_r() -> None:
            sink = DecompressingSink(limit)
            storage.bucket.blob(name).download_to_file(sink, timeout=TIMEOUT, retry=None)
            unserialize(session.run(sink.into_r))

        serialized = read_serialized(dest)
        out["seconds"] = {
            "floor": median_time(floor, args.repeats),
            "product": median_time(product, args.repeats),
            "file_into_r_vector": median_time(file_into_r, args.repeats),
            "streamed_into_r_vector": median_time(streamed_into_r, args.repeats),
            "part_download": median_time(lambda: storage.download(name, dest), args.repeats),
            "part_read_serialized": median_time(lambda: read_serialized(dest), args.repeats),
            "part_inspect": median_time(
                lambda: session.inspect(serialized, "OutputCollect.RDS", lambda root: None), args.repeats
            ),
            "part_readRDS": median_time(
                lambda: session.run(lambda: ri.baseenv["readRDS"](dest) and None), args.repeats
            ),
        }
        base = out["seconds"]["floor"]
        out["ratio_to_floor"] = {k: round(v / base, 2) for k, v in out["seconds"].items() if not k.startswith("part")}
    finally:
        gcs.stop()
        shutil.rmtree(workdir, ignore_errors=True)
    print(json.dumps(out, indent=2))


if __name__ == "__main__":
    main()
