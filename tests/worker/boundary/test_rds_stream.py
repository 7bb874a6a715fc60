"""The stream check: what it refuses, with which error, and that the C walk and the Python reference agree."""

from __future__ import annotations

import pytest
import xdr_writer as x

from local_stack.samples import sample_run_dirs
from mmm_backfill import errors
from mmm_backfill.config import RdsLimits
from worker.boundary.rds_file import read_serialized
from worker.boundary.rds_stream import check_stream, check_stream_python

CHECKS = pytest.mark.parametrize("check", [check_stream, check_stream_python], ids=["c", "python"])
#: The reference's recursion is Python's: keep its deep cases within what a test thread can hold.
DEEP = 100_000


#: name -> (item written after the header, error the check must raise)
REFUSED = {
    "mmap_integer column": (x.robyn_like(nrmse=x.mmap_integer(b"/proc/self/environ")), errors.AltrepRefused),
    "another package's ALTREP class": (x.altrep(b"vroom_dbl", b"vroom", 14, x.doubles(1.0)), errors.AltrepRefused),
    "ALTREP class named in bytes that are not UTF-8": (
        x.altrep(b"\xa9\xff", b"\xfe", 14, x.doubles(1.0)),
        errors.AltrepRefused,
    ),
    "compact integer sequence 1:2e9": (x.robyn_like(nrmse=x.compact_intseq(2_000_000_000)), errors.AltrepTooLong),
    "compact real sequence 1:1e15": (x.robyn_like(nrmse=x.compact_realseq(10**15)), errors.AltrepTooLong),
    "deferred string over 1:2e9": (x.deferred_string(2_000_000_000), errors.AltrepTooLong),
    "names attribute over 1:1e15": (
        x.with_attributes(x.i32(19, 1) + x.NIL, (b"names", x.deferred_string(10**15))),
        errors.AltrepTooLong,
    ),
    "compact sequence state of two numbers": (
        x.altrep(b"compact_intseq", b"base", 13, x.doubles(3.0, 1.0)),
        errors.RdsCorrupt,
    ),
    "deferred string over a list": (
        x.altrep(b"deferred_string", b"base", 16, x.i32(2) + x.i32(19, 0) + x.ints(0)),
        errors.RdsCorrupt,
    ),
    "list nested 100,000 deep": (x.robyn_like(deep=x.nested_lists(DEEP)), errors.RdsTooDeep),
    "list of 1e9 elements in 48 bytes": (x.i32(19, 1_000_000_000) + x.NIL * 5, errors.RdsTruncated),
    "character vector of 2e9 strings": (x.i32(16, 2_000_000_000) + x.charsxp(b"a"), errors.RdsTruncated),
    "long vector of 2**40 doubles": (x.i32(14, -1, 256, 0), errors.RdsTruncated),
    "string length -2,000,000": (x.i32(16, 1, 9 | (8 << 12), -2_000_000), errors.RdsCorrupt),
    "string over the limit": (x.strings(b"a" * (2 << 20)), errors.RdsValueTooLarge),
    "string vector holding a list": (x.i32(16, 1) + x.i32(19, 0), errors.RdsCorrupt),
    "external pointer": (x.robyn_like(p=x.i32(22) + x.NIL + x.NIL), errors.ForbiddenRdsType),
    "weak reference": (x.i32(23) + x.NIL, errors.ForbiddenRdsType),
    "persistent reference": (x.i32(247) + x.i32(0, 1) + x.charsxp(b"key"), errors.ForbiddenRdsType),
    "reference to an object not read yet": (x.i32(19, 1) + x.i32(255 | (7 << 8)), errors.RdsCorrupt),
    "unknown item type": (x.i32(99), errors.RdsCorrupt),
    "bytecode naming a shared expression past its table": (
        x.i32(21, 1) + x.ints(12) + x.i32(1) + x.i32(243, 5),
        errors.RdsCorrupt,
    ),
}


@CHECKS
@pytest.mark.parametrize("name", list(REFUSED))
def test_hostile_stream_is_refused_with_its_own_error(check, name):
    item, error = REFUSED[name]
    with pytest.raises(error) as info:
        check(x.stream(item), RdsLimits(), "OutputCollect.RDS")
    assert type(info.value) is error
    assert str(info.value).startswith("OutputCollect.RDS: ")


@CHECKS
def test_a_minimal_robyn_output_passes(check):
    report = check(x.stream(x.robyn_like()))
    assert report.items > 10 and report.max_depth < 10


@CHECKS
def test_allowed_altrep_within_the_limit_passes_and_is_counted(check):
    report = check(x.stream(x.robyn_like(rows=x.compact_intseq(1000), labels=x.deferred_string(1000))))
    assert report.altrep == {"compact_intseq": 2, "deferred_string": 1}
    assert report.memory_bytes > 1000 * 4 + 1000 * 8


@CHECKS
def test_objects_over_the_memory_budget_are_refused(check):
    with pytest.raises(errors.RdsOverBudget):
        check(x.stream(x.doubles(*[0.5] * 200_000)), RdsLimits(max_memory_bytes=1 << 20))


@CHECKS
def test_bytes_after_the_object_are_refused(check):
    with pytest.raises(errors.RdsCorrupt, match="after the end"):
        check(x.stream(x.NIL) + b"\0\0\0\0")


@CHECKS
def test_ascii_serialization_is_refused(check):
    with pytest.raises(errors.RdsCorrupt, match="only XDR"):
        check(b"A\n3\n262657\n197888\n5\nUTF-8\n254\n")


@CHECKS
@pytest.mark.parametrize("cut", [3, 20, 31, 40])
def test_every_truncation_of_a_valid_stream_is_refused_as_truncated(check, cut):
    data = x.stream(x.robyn_like())
    with pytest.raises(errors.RdsTruncated):
        check(data[: len(data) - cut])


def test_depth_limit_comes_from_the_limits():
    data = x.stream(x.nested_lists(50))
    check_stream(data, RdsLimits(max_depth=51))
    with pytest.raises(errors.RdsTooDeep):
        check_stream(data, RdsLimits(max_depth=50))


@pytest.mark.skipif(not sample_run_dirs(), reason="real Robyn samples not present")
def test_real_robyn_files_pass_and_both_walks_agree():
    for path in (p for run in sample_run_dirs() for p in sorted(run.glob("*.RDS"))):
        name, data = "/".join(path.parts[-4:]), read_serialized(str(path))
        fast, reference = check_stream(data, label=name), check_stream_python(data, label=name)
        assert (fast.items, fast.max_depth, fast.memory_bytes, fast.namespaces, fast.altrep) == (
            reference.items,
            reference.max_depth,
            reference.memory_bytes,
            reference.namespaces,
            reference.altrep,
        ), name
        assert fast.max_depth < RdsLimits().max_depth // 5, name
