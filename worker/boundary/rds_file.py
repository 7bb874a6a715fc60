"""Read an RDS file's bytes safely: recognise the format, bound its cost, decompress in Python.

R's own ``readRDS`` would decompress without any bound (a 1 MB gzip bomb can expand to
gigabytes) and report truncation vaguely. Doing it here gives each failure a named error and
hands R only a bounded, fully-present serialization stream.
"""

from __future__ import annotations

import bz2
import lzma
import os
import zlib
from collections.abc import Callable

from mmm_backfill.config import RdsLimits
from mmm_backfill.errors import NotRds, RdsCorrupt, RdsTooLarge, RdsTruncated

#: Size of each read from disk and of each decompression step, in bytes.
CHUNK = 1 << 20

#: Serialization headers R writes: XDR binary (saveRDS default), ASCII, native binary.
_SERIAL_MAGIC = (b"X\n", b"A\n", b"B\n")


def _gzip() -> object:
    return zlib.decompressobj(wbits=16 + zlib.MAX_WBITS)


#: Compression magic → factory of a streaming decompressor.
_COMPRESSIONS: tuple[tuple[bytes, str, Callable[[], object]], ...] = (
    (b"\x1f\x8b", "gzip", _gzip),
    (b"BZh", "bzip2", bz2.BZ2Decompressor),
    (b"\xfd7zXZ\x00", "xz", lzma.LZMADecompressor),
)


#: A decompressed-size hint below this is not trusted (and no valid stream is that short).
_MIN_HINT = 14
#: Deflate never expands more than about 1032:1, so a trailer claiming more than that times the
#: file's size is a lie (a 200-byte file claiming 2 GiB reserved 2 GiB before this bound).
_MAX_GZIP_RATIO = 1032

#: ``alloc(size)`` returns a writable buffer of exactly ``size`` bytes to decompress into.
Alloc = Callable[[int], memoryview]


def read_serialized(
    path: str, limits: RdsLimits = RdsLimits(), alloc: Alloc | None = None
) -> bytes | bytearray | memoryview:
    """Return the decompressed serialization stream of the RDS file at ``path``.

    With ``alloc``, a gzip file whose trailer announces a size within the limit is decompressed
    straight into ``alloc(size)`` (for R: no second copy); the very buffer is returned when the
    stream filled it exactly. The trailer is only a hint: output beyond it, or short of it, falls
    back to an ordinary buffer, and the limit is enforced on what is actually produced.

    Raises RdsTooLarge, NotRds, RdsTruncated or RdsCorrupt, each naming the file.
    """
    name = os.path.basename(path)
    size = os.path.getsize(path)
    if size > limits.max_file_bytes:
        raise RdsTooLarge(f"{name}: file is {size} bytes, over the limit of {limits.max_file_bytes}")
    if size == 0:
        raise RdsTruncated(f"{name}: file is empty")
    with open(path, "rb") as fh:
        head = fh.read(8)
        fh.seek(0)
        for magic, kind, factory in _COMPRESSIONS:
            if head.startswith(magic):
                sink = _Sink(_preallocate(fh, kind, limits, alloc))
                data = _decompress(fh, factory(), kind, name, limits.max_serialized_bytes, sink)
                break
        else:
            if not head.startswith(_SERIAL_MAGIC):
                raise NotRds(f"{name}: not an RDS file (unknown header {head[:6]!r})")
            data = fh.read()
    if bytes(data[:2]) not in _SERIAL_MAGIC:
        raise NotRds(f"{name}: decompressed data is not an R serialization stream")
    if len(data) < 14:
        raise RdsTruncated(f"{name}: serialization stream ends after {len(data)} bytes")
    return data


def _preallocate(fh, kind: str, limits: RdsLimits, alloc: Alloc | None) -> memoryview | None:  # noqa: ANN001
    """A buffer of the size gzip's trailer announces (ISIZE, the size mod 2**32), when usable."""
    if alloc is None or kind != "gzip":
        return None
    fh.seek(-4, os.SEEK_END)
    hint = int.from_bytes(fh.read(4), "little")
    fh.seek(0)
    most = min(limits.max_serialized_bytes, os.fstat(fh.fileno()).st_size * _MAX_GZIP_RATIO)
    return alloc(hint) if _MIN_HINT <= hint <= most else None


class _Sink:
    """Decompressed output: into a preallocated buffer while it fits, else a growing bytearray."""

    def __init__(self, buffer: memoryview | None) -> None:
        self.view, self.pos, self.spill = buffer, 0, bytearray()

    def __len__(self) -> int:
        return self.pos if self.view is not None else len(self.spill)

    def write(self, part: bytes) -> None:
        if self.view is not None:
            end = self.pos + len(part)
            if end <= len(self.view):
                self.view[self.pos : end] = part
                self.pos = end
                return
            self.spill += self.view[: self.pos]  # the hint was wrong: carry on in a bytearray
            self.view = None
        self.spill += part

    def result(self) -> bytes | bytearray | memoryview:
        if self.view is None:
            return self.spill  # no final copy: the stream can be hundreds of MB
        return self.view if self.pos == len(self.view) else bytes(self.view[: self.pos])


def _decompress(fh, dec, kind: str, name: str, limit: int, sink: _Sink):  # noqa: ANN001, ANN202
    """Stream-decompress ``fh`` into ``sink``, never holding more than ``limit`` bytes of output."""
    try:
        while chunk := fh.read(CHUNK):
            data = chunk
            while True:
                sink.write(dec.decompress(data, CHUNK))
                if len(sink) > limit:
                    raise RdsTooLarge(f"{name}: decompresses to more than the limit of {limit} bytes")
                if dec.eof:
                    return sink.result()
                data = _pending_input(dec)
                if data is None:
                    break
    except (OSError, EOFError, zlib.error, lzma.LZMAError, ValueError) as exc:
        raise RdsCorrupt(f"{name}: corrupt {kind} data ({exc})") from None
    raise RdsTruncated(f"{name}: {kind} stream ends before its end marker (file truncated?)")


def _pending_input(dec) -> bytes | None:  # noqa: ANN001
    """What to feed next without reading: zlib hands back its unconsumed tail, bz2/lzma keep it
    inside and continue on ``b""``. None when the decompressor needs more of the file."""
    if hasattr(dec, "unconsumed_tail"):
        return dec.unconsumed_tail or None
    return None if dec.needs_input else b""
