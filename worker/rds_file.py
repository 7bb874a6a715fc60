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


def read_serialized(path: str, limits: RdsLimits = RdsLimits()) -> bytes | bytearray:
    """Return the decompressed serialization stream of the RDS file at ``path``.

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
                data = _decompress(fh, factory(), kind, name, limits.max_serialized_bytes)
                break
        else:
            if not head.startswith(_SERIAL_MAGIC):
                raise NotRds(f"{name}: not an RDS file (unknown header {head[:6]!r})")
            data = fh.read()
    if not data.startswith(_SERIAL_MAGIC):
        raise NotRds(f"{name}: decompressed data is not an R serialization stream")
    if len(data) < 14:
        raise RdsTruncated(f"{name}: serialization stream ends after {len(data)} bytes")
    return data


def _decompress(fh, dec, kind: str, name: str, limit: int) -> bytearray:  # noqa: ANN001 - file, decompressor
    """Stream-decompress ``fh``, never holding more than ``limit`` bytes of output."""
    out = bytearray()
    try:
        while chunk := fh.read(CHUNK):
            data = chunk
            while True:
                out += dec.decompress(data, CHUNK)
                if len(out) > limit:
                    raise RdsTooLarge(f"{name}: decompresses to more than the limit of {limit} bytes")
                if dec.eof:
                    return out  # no final copy: the stream can be hundreds of MB
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
