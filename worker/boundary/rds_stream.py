"""Check an R serialization stream in Python before R's ``unserialize`` sees a byte of it.

R's reader trusts its input: it allocates whatever length a header declares, recurses as deep as the
nesting goes, turns ALTREP records into live objects (``mmap_integer`` maps a file named in the
stream; a compact sequence of 1e15 elements costs nothing until touched) and loads the package that
an ALTREP class names. One pass over the bytes here, building no R object, refuses all of that:

- every declared length must be backed by the bytes that follow and stay under the limits;
- ALTREP records are allowed only for R's own base classes (compact sequences, deferred strings,
  wrappers), with their state checked and their expanded length counted;
- nesting, string sizes and the estimated memory of the objects R would build are bounded;
- object kinds with no place in saved model output (external pointers, weak references,
  persistent or class references) are refused.

The format is R Internals' "Serialization formats" (XDR, versions 2 and 3); the walk follows
``ReadItem`` in R's ``serialize.c`` step for step, so the depth counted here is R's own recursion.
"""

from __future__ import annotations

import struct
import sys
from dataclasses import dataclass, field

from mmm_backfill.config import RdsLimits
from mmm_backfill.errors import (
    AltrepRefused,
    AltrepTooLong,
    ForbiddenRdsType,
    RdsCorrupt,
    RdsOverBudget,
    RdsTooDeep,
    RdsTruncated,
    RdsValueTooLarge,
)

_INT = struct.Struct(">i")
_II = struct.Struct(">ii")

# SEXPTYPE codes (Rinternals.h) and the stream's pseudo types (serialize.c).
NILSXP, SYMSXP, LISTSXP, CLOSXP, ENVSXP, PROMSXP, LANGSXP = 0, 1, 2, 3, 4, 5, 6
SPECIALSXP, BUILTINSXP, CHARSXP, LGLSXP, INTSXP, REALSXP, CPLXSXP = 7, 8, 9, 10, 13, 14, 15
STRSXP, DOTSXP, VECSXP, EXPRSXP, BCODESXP, EXTPTRSXP, WEAKREFSXP, RAWSXP, S4SXP = 16, 17, 19, 20, 21, 22, 23, 24, 25
ALTREP_SXP, ATTRLISTSXP, ATTRLANGSXP, BASEENV_SXP, EMPTYENV_SXP = 238, 239, 240, 241, 242
BCREPREF, BCREPDEF, GENERICREFSXP, CLASSREFSXP, PERSISTSXP = 243, 244, 245, 246, 247
PACKAGESXP, NAMESPACESXP, BASENAMESPACE_SXP, MISSINGARG_SXP = 248, 249, 250, 251
UNBOUNDVALUE_SXP, GLOBALENV_SXP, NILVALUE_SXP, REFSXP = 252, 253, 254, 255

_IS_OBJECT, _HAS_ATTR, _HAS_TAG = 1 << 8, 1 << 9, 1 << 10
#: Items that stand for a fixed object and carry nothing more.
_SINGLETONS = frozenset(
    {NILVALUE_SXP, GLOBALENV_SXP, UNBOUNDVALUE_SXP, MISSINGARG_SXP, BASENAMESPACE_SXP, EMPTYENV_SXP, BASEENV_SXP}
)
#: Dotted pairs: optional attributes and tag, then CAR and CDR (R recurses on both).
_PAIRS = frozenset({LISTSXP, LANGSXP, CLOSXP, PROMSXP, DOTSXP})
#: Types whose payload is ``length`` fixed-size elements: element size in bytes.
_ATOMIC_SIZES = {LGLSXP: 4, INTSXP: 4, REALSXP: 8, CPLXSXP: 16, RAWSXP: 1}
#: Kinds refused wherever they stand: no saved model output needs them, and each can carry state
#: from, or a handle into, the process that wrote the file. Measured: none occurs in the real Robyn
#: runs, which do hold closures, environments, promises, '...' objects, bytecode and namespace
#: references (inside ggplot objects); those are read, never run (see ``rbridge``).
FORBIDDEN = {
    EXTPTRSXP: "external pointer",
    WEAKREFSXP: "weak reference",
    PERSISTSXP: "persistent reference",
    CLASSREFSXP: "class reference",
    GENERICREFSXP: "generic reference",
}

#: ALTREP classes R itself registers (all in package ``base``) that only compute values, with the
#: vector type each produces. ``mmap_integer`` / ``mmap_real`` (they map a file named in the stream)
#: and every class of another package are refused.
ALLOWED_ALTREP = {
    "compact_intseq": INTSXP,
    "compact_realseq": REALSXP,
    "deferred_string": STRSXP,
    "wrap_integer": INTSXP,
    "wrap_logical": LGLSXP,
    "wrap_real": REALSXP,
    "wrap_complex": CPLXSXP,
    "wrap_raw": RAWSXP,
    "wrap_string": STRSXP,
    "wrap_list": VECSXP,
}
_ELEMENT_BYTES = {LGLSXP: 4, INTSXP: 4, REALSXP: 8, CPLXSXP: 16, RAWSXP: 1, STRSXP: 8, VECSXP: 8, EXPRSXP: 8}
#: Estimated bytes R spends per node (SEXPREC header) beside a vector's data.
NODE_BYTES = 56


@dataclass
class StreamReport:
    """What the walk saw; used to justify the limits (``bench``) and in tests."""

    items: int = 0
    max_depth: int = 0
    max_string_bytes: int = 0
    max_length: int = 0
    memory_bytes: int = 0
    types: dict[int, int] = field(default_factory=dict)
    namespaces: set[str] = field(default_factory=set)
    altrep: dict[str, int] = field(default_factory=dict)


#: Error codes of the C walker → the error each stands for.
_ERRORS = {
    "truncated": RdsTruncated,
    "corrupt": RdsCorrupt,
    "too_deep": RdsTooDeep,
    "too_large": RdsValueTooLarge,
    "forbidden": ForbiddenRdsType,
    "altrep_refused": AltrepRefused,
    "altrep_too_long": AltrepTooLong,
}


def check_stream(
    data: bytes | bytearray | memoryview, limits: RdsLimits = RdsLimits(), label: str = "RDS"
) -> StreamReport:
    """Walk the whole serialization stream ``data`` (in C); raise a named RdsError on anything refused."""
    from worker.boundary import _rdscheck

    result = _rdscheck.check(data, limits.max_depth, limits.max_string_bytes, limits.max_altrep_length)
    if result[0] != "ok":
        code, message = result
        raise _ERRORS[code](f"{label}: {message}")
    _, items, depth, longest_string, longest, memory, namespaces, altrep = result
    report = StreamReport(items, depth, longest_string, longest, memory, {}, set(namespaces), dict(altrep))
    return _within_budget(report, limits, label)


def check_stream_python(
    data: bytes | bytearray | memoryview, limits: RdsLimits = RdsLimits(), label: str = "RDS"
) -> StreamReport:
    """The same walk in Python: the readable reference the C walker is tested against."""
    walker = _Walker(memoryview(data).cast("B") if not isinstance(data, bytes) else data, limits, label)
    old = sys.getrecursionlimit()
    sys.setrecursionlimit(max(old, limits.max_depth * 3 + 200))
    try:
        walker.header()
        walker.item(1)
    except RecursionError:
        raise RdsTooDeep(f"{label}: nesting deeper than Python can check") from None
    finally:
        sys.setrecursionlimit(old)
    if walker.pos != len(data):
        raise RdsCorrupt(f"{label}: {len(data) - walker.pos} bytes after the end of the serialized object")
    return _within_budget(walker.report, limits, label)


def _within_budget(report: StreamReport, limits: RdsLimits, label: str) -> StreamReport:
    if report.memory_bytes > limits.max_memory_bytes:
        raise RdsOverBudget(
            f"{label}: R would need about {report.memory_bytes >> 20} MiB for these objects, "
            f"over the budget of {limits.max_memory_bytes >> 20} MiB"
        )
    return report


class _Walker:
    """Reads items exactly as R's ``ReadItem`` would, keeping only what the checks need."""

    def __init__(self, data: bytes | memoryview, limits: RdsLimits, label: str) -> None:
        self.data, self.limits, self.label = data, limits, label
        self.pos, self.end = 0, len(data)
        #: R's reference table: (type, name) for symbols, namespaces and packages, (type, 0) otherwise.
        self.refs: list[tuple[int, object]] = []
        self.report = StreamReport()

    # -- primitives -------------------------------------------------------------------------------
    def int(self) -> int:
        pos = self.pos
        if pos + 4 > self.end:
            raise RdsTruncated(f"{self.label}: serialization stream ends inside an item")
        self.pos = pos + 4
        return _INT.unpack_from(self.data, pos)[0]

    def skip(self, size: int, what: str) -> None:
        if size > self.end - self.pos:
            raise RdsTruncated(f"{self.label}: {what} declares {size} bytes but only {self.end - self.pos} follow")
        self.pos += size

    def length(self, what: str) -> int:
        n = self.int()
        if n == -1:  # long vector: two more integers
            upper, lower = self.int(), self.int() & 0xFFFFFFFF
            if upper < 0:
                raise RdsCorrupt(f"{self.label}: {what} has a negative length")
            n = (upper << 32) + lower
        elif n < 0:
            raise RdsCorrupt(f"{self.label}: {what} has a negative length ({n})")
        if n > self.report.max_length:
            self.report.max_length = n
        return n

    def header(self) -> None:
        if bytes(self.data[:2]) != b"X\n":
            raise RdsCorrupt(f"{self.label}: only XDR serialization (saveRDS's default) is read, not ASCII or native")
        self.pos = 2
        version, _writer, _min_reader = self.int(), self.int(), self.int()
        if version == 3:
            size = self.int()
            if not 0 <= size <= 63:  # R_CODESET_MAX
                raise RdsCorrupt(f"{self.label}: native encoding name of {size} bytes")
            self.skip(size, "the native encoding name")
        elif version != 2:
            raise RdsCorrupt(f"{self.label}: serialization version {version} (2 and 3 are read)")

    # -- items ------------------------------------------------------------------------------------
    def item(self, depth: int) -> tuple[int, object]:
        """Read one item; return its type and length (a symbol's or namespace's name instead)."""
        report = self.report
        if depth > report.max_depth:
            if depth > self.limits.max_depth:
                raise RdsTooDeep(f"{self.label}: objects nested deeper than {self.limits.max_depth} levels")
            report.max_depth = depth
        report.items += 1
        flags = self.int()
        kind = flags & 0xFF
        report.types[kind] = report.types.get(kind, 0) + 1
        if kind in _SINGLETONS:
            return kind, 0
        if kind == REFSXP:
            index = (flags >> 8) or self.int()
            if not 1 <= index <= len(self.refs):
                raise RdsCorrupt(f"{self.label}: reference {index} to an object not read yet")
            return self.refs[index - 1]
        if kind in FORBIDDEN:
            raise ForbiddenRdsType(f"{self.label}: holds an R {FORBIDDEN[kind]}, which saved model output never needs")
        if kind in _PAIRS:
            return self.pair(flags, kind, depth)
        if kind == SYMSXP:
            return self.remember((SYMSXP, self.charsxp(depth + 1, "a symbol name")))
        if kind in (PACKAGESXP, NAMESPACESXP):
            return self.remember((kind, self.string_vector_names(depth)))
        if kind == ENVSXP:
            self.int()  # locked
            entry = self.remember((ENVSXP, 0))
            for _ in range(4):  # enclosure, frame, hash table, attributes
                self.item(depth + 1)
            report.memory_bytes += NODE_BYTES
            return entry
        if kind == ALTREP_SXP:
            from worker.boundary.rds_records import read_altrep

            return read_altrep(self, depth)
        length = self.payload(kind, depth)
        if flags & _HAS_ATTR:  # R reads (and for a CHARSXP ignores) the attributes of every other item
            self.item(depth + 1)
        return kind, length

    def remember(self, entry: tuple[int, object]) -> tuple[int, object]:
        self.refs.append(entry)
        return entry

    def pair(self, flags: int, kind: int, depth: int) -> tuple[int, object]:
        if flags & _HAS_ATTR:
            self.item(depth + 1)
        if flags & _HAS_TAG:
            self.item(depth + 1)
        self.item(depth + 1)  # CAR
        self.item(depth + 1)  # CDR: R recurses here too, so a long pairlist is deep
        self.report.memory_bytes += NODE_BYTES
        return kind, 1

    def payload(self, kind: int, depth: int) -> int:
        """Read the body of a vector-like item; return its length."""
        size = _ATOMIC_SIZES.get(kind)
        if size is not None:
            n = self.length("a vector")
            self.skip(n * size, "a vector")
            self.report.memory_bytes += NODE_BYTES + n * size
            return n
        if kind == STRSXP:
            return self.strings(self.length("a character vector"))
        if kind == CHARSXP:
            return self.charsxp_body(self.int())
        if kind in (VECSXP, EXPRSXP):
            n = self.length("a list")
            if 4 * n > self.end - self.pos:
                raise RdsTruncated(
                    f"{self.label}: a list declares {n} elements but only {self.end - self.pos} bytes follow"
                )
            for _ in range(n):
                self.item(depth + 1)
            self.report.memory_bytes += NODE_BYTES + 8 * n
            return n
        if kind == BCODESXP:
            from worker.boundary.rds_records import read_bytecode

            read_bytecode(self, depth)
            return 1
        if kind in (SPECIALSXP, BUILTINSXP):
            self.skip(self.charsxp_size(self.int(), "a primitive's name"), "a primitive's name")
            return 1
        if kind == S4SXP:
            return 1
        raise RdsCorrupt(f"{self.label}: unknown item type {kind}")

    # -- strings ----------------------------------------------------------------------------------
    def charsxp_size(self, n: int, what: str) -> int:
        if n > self.limits.max_string_bytes:
            raise RdsValueTooLarge(
                f"{self.label}: {what} of {n} bytes, over the limit of {self.limits.max_string_bytes}"
            )
        if n < -1:
            raise RdsCorrupt(f"{self.label}: {what} has a negative length ({n})")
        if n > self.report.max_string_bytes:
            self.report.max_string_bytes = n
        return max(n, 0)

    def charsxp_body(self, n: int) -> int:
        size = self.charsxp_size(n, "a string")
        self.skip(size, "a string")
        self.report.memory_bytes += NODE_BYTES + size
        return size

    def charsxp(self, depth: int, what: str) -> str:
        """An item that must be a CHARSXP (a symbol's or namespace's name); return its text."""
        flags = self.int()
        if flags & 0xFF != CHARSXP or flags & _HAS_ATTR:
            raise RdsCorrupt(f"{self.label}: {what} is not a string")
        n = self.int()
        size = self.charsxp_size(n, what)
        start = self.pos
        self.skip(size, what)
        return bytes(self.data[start : start + size]).decode("latin-1")

    def string_vector_names(self, depth: int) -> str:
        """A namespace's or package's name vector (``InStringVec``)."""
        if self.int() != 0:
            raise RdsCorrupt(f"{self.label}: names in a persistent string vector")
        n = self.length("a name vector")
        names = [self.charsxp(depth + 1, "a namespace name") for _ in range(n)]
        name = names[0] if names else ""
        self.report.namespaces.add(name)
        return name

    def strings(self, n: int) -> int:
        """The CHARSXP elements of a character vector, read inline: they are most of a file's items."""
        data, pos, end = self.data, self.pos, self.end
        if 8 * n > end - pos:
            raise RdsTruncated(
                f"{self.label}: a character vector declares {n} strings but only {end - pos} bytes follow"
            )
        limit, unpack, total, longest = self.limits.max_string_bytes, _II.unpack_from, 0, 0
        for _ in range(n):
            if pos + 8 > end:
                raise RdsTruncated(f"{self.label}: serialization stream ends inside a character vector")
            flags, size = unpack(data, pos)
            if flags & 0xFF != CHARSXP or flags & _HAS_ATTR:
                raise RdsCorrupt(f"{self.label}: a character vector holds an element that is not a string")
            pos += 8
            if size > 0:
                if size > limit:
                    raise RdsValueTooLarge(f"{self.label}: a string of {size} bytes, over the limit of {limit}")
                pos += size
                total += size
                if size > longest:
                    longest = size
            elif size < -1:
                raise RdsCorrupt(f"{self.label}: a string has a negative length ({size})")
        if pos > end:
            raise RdsTruncated(f"{self.label}: serialization stream ends inside a character vector")
        self.pos = pos
        report = self.report
        report.memory_bytes += NODE_BYTES + 8 * n + total + 16 * n
        report.max_string_bytes = max(report.max_string_bytes, longest)
        return n
