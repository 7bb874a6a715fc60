"""Write R serialization streams (XDR, version 3) by hand, for inputs R's own writer would refuse to make.

Each function returns the bytes of one item; ``stream(item)`` adds the header. The shapes follow
``serialize.c``: flags (type, object bit, attribute and tag bits), then the item's body.
"""

from __future__ import annotations

import struct

HAS_ATTR, HAS_TAG = 1 << 9, 1 << 10
NIL = struct.pack(">i", 254)


def i32(*values: int) -> bytes:
    return struct.pack(f">{len(values)}i", *values)


def stream(item: bytes) -> bytes:
    """Header of ``saveRDS(version = 3)`` in a UTF-8 session, then ``item``."""
    return b"X\n" + i32(3, 0x040201, 0x030500, 5) + b"UTF-8" + item


def charsxp(text: bytes | None, utf8: bool = True) -> bytes:
    if text is None:
        return i32(9, -1)
    levels = (8 if utf8 else 64) << 12
    return i32(9 | levels, len(text)) + text


def strings(*texts: bytes | None) -> bytes:
    return i32(16, len(texts)) + b"".join(charsxp(t) for t in texts)


def doubles(*values: float) -> bytes:
    return i32(14, len(values)) + struct.pack(f">{len(values)}d", *values)


def ints(*values: int) -> bytes:
    return i32(13, len(values)) + i32(*values)


def symbol(name: bytes) -> bytes:
    return i32(1) + charsxp(name, utf8=False)


def pairlist(*entries: tuple[bytes, bytes]) -> bytes:
    """A tagged pairlist (as attributes are written): (tag name, value) pairs, then NULL."""
    return b"".join(i32(2 | HAS_TAG) + symbol(tag) + value for tag, value in entries) + NIL


def with_attributes(item: bytes, *attributes: tuple[bytes, bytes]) -> bytes:
    """``item`` (flags first) with the attribute bit set and the attribute pairlist appended."""
    flags = struct.unpack(">i", item[:4])[0] | HAS_ATTR
    return i32(flags) + item[4:] + pairlist(*attributes)


def named_list(**items: bytes) -> bytes:
    names = strings(*(k.encode() for k in items))
    return with_attributes(i32(19, len(items)) + b"".join(items.values()), (b"names", names))


def data_frame(rows: int, columns: dict[str, bytes]) -> bytes:
    """A data.frame of ``rows`` rows from column items (their lengths are not checked here)."""
    names = strings(*(k.encode() for k in columns))
    body = i32(19 | HAS_ATTR | (1 << 8), len(columns)) + b"".join(columns.values())
    return body + pairlist((b"names", names), (b"class", strings(b"data.frame")), (b"row.names", ints(-(2**31), -rows)))


def altrep(class_name: bytes, package: bytes, sexptype: int, state: bytes, attributes: bytes = NIL) -> bytes:
    """An ALTREP record: ``list3(class symbol, package symbol, type)``, state, attributes."""
    info = i32(2) + symbol(class_name) + i32(2) + symbol(package) + i32(2) + ints(sexptype) + NIL
    return i32(238) + info + state + attributes


def compact_intseq(length: int, first: int = 1) -> bytes:
    return altrep(b"compact_intseq", b"base", 13, doubles(float(length), float(first), 1.0))


def compact_realseq(length: int, first: float = 1.0) -> bytes:
    return altrep(b"compact_realseq", b"base", 14, doubles(float(length), first, 1.0))


def deferred_string(length: int) -> bytes:
    """``as.character(1:length)`` before anything touches it (R makes ``1:length`` real past 2**31 - 1)."""
    numbers = compact_intseq(length) if length < 2**31 else compact_realseq(length)
    return altrep(b"deferred_string", b"base", 16, i32(2) + numbers + ints(0))


def mmap_integer(path: bytes) -> bytes:
    """What ``saveRDS`` writes for ``.Internal(mmap_file(path, "int", TRUE, FALSE, TRUE))``: only the path."""
    state = i32(19, 3) + strings(path) + ints(13, 1, 0) + doubles(0.0)
    return altrep(b"mmap_integer", b"base", 13, state)


def nested_lists(depth: int, leaf: bytes = NIL) -> bytes:
    """``list(list(list(...)))`` ``depth`` levels deep."""
    return i32(19, 1) * depth + leaf


def robyn_like(ids: tuple[bytes, ...] = (b"1_1_1", b"1_2_1"), **extra: bytes) -> bytes:
    """``list(resultHypParam = data.frame(solID, nrmse, robynPareto), ...)``: a minimal valid OutputCollect."""
    table = data_frame(
        len(ids),
        {
            "solID": strings(*ids),
            "nrmse": doubles(*[0.1 * (i + 1) for i in range(len(ids))]),
            "robynPareto": ints(*[1] * len(ids)),
        },
    )
    return named_list(resultHypParam=table, **extra)
