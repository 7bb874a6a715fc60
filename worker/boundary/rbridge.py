"""The process's embedded R: the only module that imports rpy2.

R is embedded once per process and driven from one dedicated thread, because R is not
thread-safe and the Pub/Sub subscriber calls back on a pool of threads.

Everything read from an RDS file is untrusted, so R is only asked to *unserialize* bytes that
Python has already bounded (see ``rds_file``). After that, objects are inspected through rpy2's
low-level interface (type tags, attributes read with ``getAttrib``, elements with
``VECTOR_ELT``): no R function is called on them, so no promise is forced, no active binding
fires, no closure runs and no S3/S4 method is dispatched.
"""

from __future__ import annotations

import atexit
import contextlib
import datetime as dt
import functools
import logging
import math
import os
import shutil
import tempfile
import threading
import warnings
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any, TypeVar

from mmm_backfill.config import RdsLimits
from mmm_backfill.errors import BackfillError, InvalidText, RdsCorrupt, RdsTruncated, UnsafeObject, WrongObject
from worker.boundary.rds_file import read_serialized
from worker.boundary.rds_stream import check_stream

T = TypeVar("T")
log = logging.getLogger(__name__)

#: R types that carry or run code; never acceptable where data belongs.
_CODE_KINDS = frozenset(
    {
        "closure",
        "environment",
        "promise",
        "builtin",
        "special",
        "language",
        "bytecode",
        "externalptr",
        "weakref",
        "symbol",
        "pairlist",
        "dots",
        "S4",
    }
)
#: Prefix of the folder holding R's session temp folder; the owning pid follows (see ``_start_r``).
R_TEMP_PREFIX = "mmm-rsession-"
_EPOCH = dt.date(1970, 1, 1)
_NA_INTEGER = -(2**31)


class RObject:
    """Read-only, dispatch-free view of one R object. Use only on the R thread."""

    def __init__(self, sexp: Any, label: str) -> None:
        self._sexp = sexp
        self.label = label

    @property
    def kind(self) -> str:
        """R's type name (``double``, ``list``, ``closure``...), or ``data.frame``."""
        name = _type_name(self._sexp)
        if name == "list" and "data.frame" in self.classes():
            return "data.frame"
        return name

    def _attr(self, name: str) -> Any | None:
        try:
            return self._sexp.do_slot(name)
        except LookupError:
            return None

    def classes(self) -> list[str]:
        value = self._attr("class")
        return _plain_strings(value, self.label) if value is not None and _type_name(value) == "character" else []

    def names(self) -> list[str]:
        value = self._attr("names")
        if value is None or _type_name(value) != "character":
            return []
        return [n or "" for n in _plain_strings(value, self.label)]

    def __len__(self) -> int:
        return len(self._sexp)

    def require(self, *kinds: str) -> RObject:
        """Return self if its kind is one of ``kinds``; else raise UnsafeObject or WrongObject."""
        kind = self.kind
        if kind in kinds:
            return self
        error = UnsafeObject if kind in _CODE_KINDS else WrongObject
        raise error(f"{self.label}: expected {' or '.join(kinds)}, found R {kind}")

    def get(self, name: str) -> RObject | None:
        """Element ``name`` of a list, or None when absent."""
        self.require("list", "data.frame")
        names = self.names()
        if name not in names:
            return None
        if len(names) != len(self):
            raise WrongObject(f"{self.label}: {len(names)} names for {len(self)} elements")
        return RObject(self._sexp[names.index(name)], f"{self.label}${name}")

    def values(self) -> list[Any]:
        """Plain Python values of an atomic vector: float, int, bool, str, date or None for NA.

        Non-finite doubles become None. Factors become their labels, ``Date`` becomes dt.date,
        ``POSIXct`` becomes an aware UTC datetime.
        """
        kind = self.require("double", "integer", "logical", "character").kind
        classes = self.classes()
        if kind == "character":
            return _plain_strings(self._sexp, self.label)
        if kind == "logical":
            return [None if v is _NA_LOGICAL() else bool(v) for v in self._sexp]
        if kind == "integer":
            ints = [None if v == _NA_INTEGER else int(v) for v in self._sexp]
            if "factor" in classes:
                return self._factor_labels(ints)
            return [self._as_time(float(v), classes) if v is not None and classes else v for v in ints]
        doubles = [float(v) if math.isfinite(v) else None for v in self._sexp]
        return [self._as_time(v, classes) if v is not None else None for v in doubles]

    def _factor_labels(self, codes: list[int | None]) -> list[str | None]:
        levels_sexp = self._attr("levels")
        if levels_sexp is None or _type_name(levels_sexp) != "character":
            raise WrongObject(f"{self.label}: factor without character levels")
        levels = _plain_strings(levels_sexp, self.label)
        if any(c is not None and not 1 <= c <= len(levels) for c in codes):
            raise WrongObject(f"{self.label}: factor code out of range")
        return [None if c is None else levels[c - 1] for c in codes]

    def _as_time(self, value: float, classes: list[str]) -> Any:
        try:
            if "Date" in classes:
                return _EPOCH + dt.timedelta(days=math.floor(value))
            if "POSIXct" in classes:
                return dt.datetime.fromtimestamp(value, tz=dt.UTC)
        except (OverflowError, ValueError, OSError):
            raise WrongObject(f"{self.label}: date value {value!r} out of range") from None
        return value


def _NA_LOGICAL() -> Any:  # noqa: N802 - mirrors R's constant name
    import rpy2.rinterface as ri

    return ri.NA_Logical


def _type_name(sexp: Any) -> str:
    import rpy2.rinterface as ri

    code = int(sexp.typeof)
    return _R_TYPE_NAMES.get(code, f"type{code}") if code != ri.RTYPES.VECSXP else "list"


#: SEXPTYPE codes from R's Rinternals.h.
_R_TYPE_NAMES = {
    0: "NULL",
    1: "symbol",
    2: "pairlist",
    3: "closure",
    4: "environment",
    5: "promise",
    6: "language",
    7: "special",
    8: "builtin",
    9: "char",
    10: "logical",
    13: "integer",
    14: "double",
    15: "complex",
    16: "character",
    17: "dots",
    19: "list",
    20: "expression",
    21: "bytecode",
    22: "externalptr",
    23: "weakref",
    24: "raw",
    25: "S4",
}


def _plain_strings(sexp: Any, label: str) -> list[str | None]:
    import rpy2.rinterface as ri

    try:
        return [None if v is ri.NA_Character else str(v) for v in sexp]
    except UnicodeDecodeError as exc:
        raise InvalidText(f"{label}: text that is not valid UTF-8 ({exc.reason} at byte {exc.start})") from None


class RSession:
    """One embedded R for the process, used from a single dedicated thread.

    Create it once (``RSession.shared()``) and pass it around; every R call goes through
    ``run`` so callers on any thread are serialised onto R's thread.
    """

    _instance: RSession | None = None
    _lock = threading.Lock()

    def __init__(self) -> None:
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="embedded-R")
        self._executor.submit(_start_r).result()

    @classmethod
    def shared(cls) -> RSession:
        with cls._lock:
            if cls._instance is None:
                cls._instance = cls()
            return cls._instance

    def run(self, fn: Callable[..., T], *args: Any) -> T:
        """Run ``fn(*args)`` on R's thread and return its result (exceptions propagate)."""
        return self._executor.submit(fn, *args).result()

    def inspect_file(self, path: str, limits: RdsLimits, label: str, extract: Callable[[RObject], T]) -> T:
        """Read the RDS file at ``path`` under ``limits`` (see ``rds_file``) and return ``extract(root)``.

        Runs on R's thread so that a gzip stream can be decompressed straight into R's memory. The
        R object is dropped before this returns, so one process holds one run at a time.
        """
        return self.run(_read_and_extract, path, limits, label, extract)


def _start_r() -> None:
    import rpy2.rinterface as ri
    import rpy2.rinterface_lib.callbacks as callbacks

    # R's console goes to our log, never to stdout (which may carry JSON output).
    callbacks.consolewrite_print = lambda text: log.debug("R: %s", text.rstrip())
    callbacks.consolewrite_warnerror = lambda text: log.info("R: %s", text.rstrip())
    saved = {k: os.environ.get(k) for k in ("LD_LIBRARY_PATH", "R_HOME", "TMPDIR")}
    # R makes its session folder (Rtmp...) under TMPDIR and removes it only on a clean exit. Inside
    # a folder named by our pid, the folder of a killed process is found and removed by the next one.
    session_parent = tempfile.mkdtemp(prefix=f"{R_TEMP_PREFIX}{os.getpid()}-")
    atexit.register(shutil.rmtree, session_parent, ignore_errors=True)
    os.environ["TMPDIR"] = session_parent
    with warnings.catch_warnings():
        # R runs on its own thread on purpose; its SIGINT handling is not ours to keep.
        warnings.filterwarnings("ignore", message="R is not initialized by the main thread")
        ri.initr_simple()
    # rpy2 prepends R's library folders to LD_LIBRARY_PATH; child processes (spawned workers,
    # emulators) must not inherit that, or they may load the system's libpython instead of ours.
    for key, value in saved.items():
        if value is None:
            os.environ.pop(key, None)
        else:
            os.environ[key] = value


def _read_and_extract(path: str, limits: RdsLimits, label: str, extract: Callable[[RObject], T]) -> T:
    """Decompress the file straight into an R raw vector when its size is announced, then inspect."""
    import rpy2.rinterface as ri
    from rpy2.rinterface_lib import openrlib

    allocated: dict[str, Any] = {}

    def alloc(size: int) -> memoryview:
        vector = ri.baseenv["raw"](size)
        allocated["vector"] = vector
        allocated["view"] = memoryview(openrlib.ffi.buffer(openrlib.rlib.RAW(vector.__sexp__._cdata), size))
        return allocated["view"]

    data = read_serialized(path, limits, alloc)
    check_stream(data, limits, label)
    if data is allocated.get("view"):
        return _unserialize_and_extract(allocated["vector"], label, extract)
    allocated.clear()
    return _unserialize_and_extract(data, label, extract)


def _unserialize_and_extract(serialized: Any, label: str, extract: Callable[[RObject], T]) -> T:
    """``serialized``: bytes-like (copied into R with one memmove) or an R raw vector already."""
    import rpy2.rinterface as ri
    from rpy2.rinterface_lib.embedded import RRuntimeError

    if isinstance(serialized, ri.ByteSexpVector):
        raw = serialized
    else:
        raw = ri.ByteSexpVector.from_memoryview(memoryview(serialized))  # one memmove into R
    try:
        with _namespaces_not_loaded():
            root = ri.baseenv["unserialize"](raw)
    except RRuntimeError as exc:
        message = " ".join(str(exc).split()) or "unreadable"
        if any(hint in message for hint in ("read error", "reading from connection", "end of", "truncated")):
            raise RdsTruncated(f"{label}: serialization stream is incomplete ({message})") from None
        raise RdsCorrupt(f"{label}: R cannot read the serialization ({message})") from None
    finally:
        del raw
    try:
        return extract(RObject(root, label))
    except BackfillError:
        raise
    except Exception as exc:  # noqa: BLE001 - the same bytes fail the same way: never retried
        raise WrongObject(f"{label}: unreadable object ({type(exc).__name__}: {exc})") from None
    finally:
        del root


#: R code of the stand-ins for base's ``getNamespace`` and ``findPackageEnv``.
_STAND_IN = "function(...) new.env(parent = emptyenv())"


@functools.cache
def _stand_in() -> Any:
    """The stand-in closure, made once per process (on R's thread, like every R call here)."""
    import rpy2.rinterface as ri

    return ri.baseenv["eval"](ri.parse(_STAND_IN), ri.baseenv)


@contextlib.contextmanager
def _namespaces_not_loaded():
    """Make the stream's namespace and package references empty environments instead of loading them.

    R's unserialize resolves a namespace reference by evaluating ``..getNamespace(info, where)``
    (``getNamespace`` before R 4.1; a package one by ``findPackageEnv(info)``) in the global
    environment, and that loads the package and runs its load hooks. Real Robyn files reference Robyn,
    ggplot2, ggridges, lares, scales and stats inside their plots; a summary needs none of them.
    Stand-ins in the global environment are found first, so no package is loaded and no code of the
    machine's R library runs; they are removed afterwards.
    """
    import rpy2.rinterface as ri

    names = ("..getNamespace", "getNamespace", "findPackageEnv")
    function = _stand_in()
    for name in names:
        ri.globalenv[name] = function
    try:
        yield
    finally:
        ri.baseenv["rm"](list=ri.StrSexpVector(names), envir=ri.globalenv)
