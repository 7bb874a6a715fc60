"""The two records of an R serialization stream with a grammar of their own: ALTREP and bytecode.

Both are read by R with little checking of their inner shape (an ALTREP state shorter than its class
expects is read past its end; a bytecode constant pool indexes a table by a number from the stream),
so here every field is checked against what R's own writer produces (``altclasses.c``,
``serialize.c``), and anything else is refused before R reads it.
"""

from __future__ import annotations

import math
import struct
from typing import TYPE_CHECKING

from mmm_backfill.errors import AltrepRefused, AltrepTooLong, RdsCorrupt, RdsTooDeep
from worker.boundary.rds_stream import (
    _ELEMENT_BYTES,
    _HAS_ATTR,
    _HAS_TAG,
    ALLOWED_ALTREP,
    ATTRLANGSXP,
    ATTRLISTSXP,
    BCODESXP,
    BCREPDEF,
    BCREPREF,
    INTSXP,
    LANGSXP,
    LISTSXP,
    NILVALUE_SXP,
    NODE_BYTES,
    REALSXP,
    SYMSXP,
)

if TYPE_CHECKING:
    from worker.boundary.rds_stream import _Walker

_DOUBLES = struct.Struct(">3d")
#: Largest and smallest values of an R integer (NA is -2**31).
_INT_MAX, _INT_MIN = 2**31 - 1, -(2**31) + 1


def read_altrep(walker: _Walker, depth: int) -> tuple[int, object]:
    """An ALTREP record: class (checked against the allowlist first), state, attributes."""
    name, package, kind = _class_info(walker, depth + 1)
    if package != "base" or name not in ALLOWED_ALTREP:
        raise AltrepRefused(
            f"{walker.label}: ALTREP class {name!r} of package {package!r} is refused "
            f"(only R's own {', '.join(sorted(ALLOWED_ALTREP))} are read)"
        )
    if kind != ALLOWED_ALTREP[name]:
        raise RdsCorrupt(f"{walker.label}: ALTREP class {name!r} declared with vector type {kind}")
    compact = name.startswith("compact_")
    length = _compact_sequence(walker, name) if compact else _wrapped_state(walker, name, depth + 1)
    limit = walker.limits.max_altrep_length
    if length > limit:
        raise AltrepTooLong(f"{walker.label}: {name} of {length} elements, over the limit of {limit}")
    walker.report.altrep[name] = walker.report.altrep.get(name, 0) + 1
    walker.report.memory_bytes += NODE_BYTES + length * _ELEMENT_BYTES[kind]  # what touching it would cost
    walker.item(depth + 1)  # attributes
    return kind, length


def _expect(walker: _Walker, kind: int, what: str) -> None:
    flags = walker.int()
    if flags & 0xFF != kind or flags & (_HAS_ATTR | _HAS_TAG):
        raise RdsCorrupt(f"{walker.label}: malformed ALTREP {what}")


def _symbol(walker: _Walker, depth: int) -> str:
    kind, name = walker.item(depth)
    if kind != SYMSXP or not isinstance(name, str):
        raise RdsCorrupt(f"{walker.label}: malformed ALTREP class record")
    return name


def _class_info(walker: _Walker, depth: int) -> tuple[str, str, int]:
    """``list3(class symbol, package symbol, type)``, a pairlist written without attributes or tags."""
    _expect(walker, LISTSXP, "class record")
    name = _symbol(walker, depth + 1)
    _expect(walker, LISTSXP, "class record")
    package = _symbol(walker, depth + 2)
    _expect(walker, LISTSXP, "class record")
    _expect(walker, INTSXP, "class record")
    if walker.length("an ALTREP type") != 1:
        raise RdsCorrupt(f"{walker.label}: malformed ALTREP class record")
    kind = walker.int()
    _expect(walker, NILVALUE_SXP, "class record")
    return name, package, kind


def _compact_sequence(walker: _Walker, name: str) -> int:
    """State ``c(length, first, increment)``: a double vector (an integer one for older intseqs)."""
    flags = walker.int()
    kind = flags & 0xFF
    if flags & _HAS_ATTR or kind not in (REALSXP, INTSXP) or (name == "compact_realseq" and kind != REALSXP):
        raise RdsCorrupt(f"{walker.label}: malformed {name} state")
    if walker.length("a compact sequence state") != 3:
        raise RdsCorrupt(f"{walker.label}: malformed {name} state")
    if kind == REALSXP:
        start = walker.pos
        walker.skip(24, "a compact sequence state")
        values = list(_DOUBLES.unpack_from(walker.data, start))
    else:
        values = [float(walker.int()) for _ in range(3)]
    length, first, step = values
    if not all(math.isfinite(v) and v == int(v) for v in values) or length < 0 or step not in (1, -1):
        raise RdsCorrupt(f"{walker.label}: {name} state {values} is not a sequence R can build")
    last = first + (length - 1) * step if length else first
    if name == "compact_intseq" and (min(first, last) < _INT_MIN or max(first, last) > _INT_MAX):
        raise RdsCorrupt(f"{walker.label}: {name} runs outside the integer range")
    return int(length)


def _wrapped_state(walker: _Walker, name: str, depth: int) -> int:
    """``CONS(vector, info)``: deferred strings hold numbers and a scalar; wrappers a vector and 2 flags."""
    _expect(walker, LISTSXP, f"{name} state")
    kind, length = walker.item(depth + 1)
    wanted = (INTSXP, REALSXP) if name == "deferred_string" else (ALLOWED_ALTREP[name],)
    if kind not in wanted or not isinstance(length, int):
        raise RdsCorrupt(f"{walker.label}: {name} wraps an R object of type {kind}")
    info_kind, info_length = walker.item(depth + 1)
    if info_kind != INTSXP or info_length != (1 if name == "deferred_string" else 2):
        raise RdsCorrupt(f"{walker.label}: malformed {name} state")
    return length


def read_bytecode(walker: _Walker, depth: int) -> None:
    """``ReadBC``: the size of the shared-expression table, then one code object."""
    reps = walker.int()
    if not 0 <= reps <= walker.end - walker.pos:
        raise RdsCorrupt(f"{walker.label}: bytecode with {reps} shared expressions")
    _code(walker, depth + 1, reps)


def _code(walker: _Walker, depth: int, reps: int) -> None:
    kind, length = walker.item(depth + 1)
    if kind != INTSXP or not isinstance(length, int) or length < 1:
        raise RdsCorrupt(f"{walker.label}: bytecode whose code is not an integer vector")
    count = walker.int()
    if count < 0 or 4 * count > walker.end - walker.pos:
        raise RdsCorrupt(f"{walker.label}: bytecode with {count} constants")
    for _ in range(count):
        kind = walker.int()
        if kind == BCODESXP:
            _code(walker, depth + 1, reps)
        elif kind in (LANGSXP, LISTSXP, BCREPDEF, BCREPREF, ATTRLANGSXP, ATTRLISTSXP):
            _language(walker, kind, depth + 1, reps)
        else:
            walker.item(depth + 1)


def _language(walker: _Walker, kind: int, depth: int, reps: int) -> None:
    """``ReadBCLang``: a language object of the constant pool, with shared parts by index."""
    if depth > walker.limits.max_depth:
        raise RdsTooDeep(f"{walker.label}: objects nested deeper than {walker.limits.max_depth} levels")
    if kind == BCREPREF:
        _rep_index(walker, reps)
        return
    if kind not in (BCREPDEF, LANGSXP, LISTSXP, ATTRLANGSXP, ATTRLISTSXP):
        walker.item(depth)
        return
    if kind == BCREPDEF:
        _rep_index(walker, reps)
        kind = walker.int()
        if kind not in (LANGSXP, LISTSXP, ATTRLANGSXP, ATTRLISTSXP):
            raise RdsCorrupt(f"{walker.label}: bytecode shared expression of type {kind}")
    if kind in (ATTRLANGSXP, ATTRLISTSXP):
        walker.item(depth + 1)
    walker.item(depth + 1)  # tag
    _language(walker, walker.int(), depth + 1, reps)
    _language(walker, walker.int(), depth + 1, reps)
    walker.report.memory_bytes += NODE_BYTES


def _rep_index(walker: _Walker, reps: int) -> None:
    index = walker.int()
    if not 0 <= index < reps:
        raise RdsCorrupt(f"{walker.label}: bytecode refers to shared expression {index} of {reps}")
