"""Hostile runs and messages inside a backfill: each is dead-lettered with its reason, no code runs, nothing
else is written, and the good runs of the same backfill are summarised."""

from __future__ import annotations

import dataclasses
import json
import time
import zlib
from collections import Counter
from pathlib import Path

import pytest
import xdr_writer as x
from backfill_kit import Figure, bucket_snapshot, drain, publish_requests, read_summaries, request_for, upload_runs

from mmm_backfill.runpath import BEST_MODEL_ID, INPUT_COLLECT, OUTPUT_COLLECT, RunPath

pytestmark = [pytest.mark.reliability, pytest.mark.integration]

#: R expression every code-carrying object runs if anything ever evaluates it.
TRAP = 'file.create("{canary}")'
#: Decompressed-size bound of the workers in this test, and the size of the bomb (zeros) above it.
MAX_SERIALIZED = 8 << 20
BOMB_BYTES = 64 << 20
GOOD = [RunPath("r4", country, f"1106_good{i}") for i, country in enumerate(("de", "fr", "de", "us"))]
#: A good run in the bucket that only a request naming another bucket points at: it must stay unsummarised.
VICTIM = RunPath("r4", "de", "1106_victim")

#: OutputCollect (or InputCollect) objects built with R, the reason each must be dead-lettered with.
R_OBJECTS = {
    "wrong-object": ('c("not", "a", "robyn", "output")', "wrong_object"),
    "missing-column": ("list(resultHypParam=data.frame(nrmse=c(0.1, 0.2)))", "missing_column"),
    "wrong-type": (
        'list(resultHypParam=data.frame(solID="a", nrmse="low", stringsAsFactors=FALSE))',
        "wrong_column_type",
    ),
    "zero-models": ("list(resultHypParam=data.frame(solID=character(0), nrmse=numeric(0)))", "empty_models"),
    "active-binding-env": (
        '{{e <- new.env(); makeActiveBinding("resultHypParam", function() {trap}, e); e}}',
        "unsafe_object",
    ),
    "promise-env": (
        'list(resultHypParam={{e <- new.env(); delayedAssign("solID", {trap}, assign.env=e); e}})',
        "unsafe_object",
    ),
    "closure": ("list(resultHypParam=function() {trap})", "unsafe_object"),
    "closure-column": (
        'list(resultHypParam=structure(list(solID="a", nrmse=function() {trap}), class="data.frame", row.names=1L))',
        "unsafe_object",
    ),
    "input-active-binding": (
        '{{e <- new.env(); makeActiveBinding("paid_media_vars", function() {trap}, e); e}}',
        "unsafe_object",
    ),
}


def gzip_bytes(*chunks: bytes) -> bytes:
    packer = zlib.compressobj(9, zlib.DEFLATED, 16 + zlib.MAX_WBITS)
    return b"".join(packer.compress(c) for c in chunks) + packer.flush()


def _stream(item: bytes) -> bytes:
    return gzip_bytes(x.stream(item))


def byte_cases(good: Path) -> dict[str, tuple[dict[str, bytes], str]]:
    """Runs whose files are broken at the byte level: files by name, and the expected reason."""
    output = (good / OUTPUT_COLLECT).read_bytes()
    zeros = b"\0" * (1 << 20)
    return {
        "truncated": ({OUTPUT_COLLECT: output[: len(output) // 2]}, "rds_truncated"),
        "not-rds": ({OUTPUT_COLLECT: b"PK\x03\x04 a zip file, not an RDS"}, "not_rds"),
        "corrupt-gzip": ({OUTPUT_COLLECT: output[:10] + bytes(range(256)) * 4}, "rds_corrupt"),
        "gzip-bomb": ({OUTPUT_COLLECT: gzip_bytes(b"X\n", *[zeros] * (BOMB_BYTES >> 20))}, "rds_too_large"),
        "no-output-collect": ({INPUT_COLLECT: (good / INPUT_COLLECT).read_bytes()}, "missing_run_file"),
        "mmap-altrep": (
            {OUTPUT_COLLECT: _stream(x.robyn_like(nrmse=x.mmap_integer(b"/proc/self/environ")))},
            "altrep_refused",
        ),
        "compact-sequence-of-2e9": (
            {OUTPUT_COLLECT: _stream(x.robyn_like(nrmse=x.compact_intseq(2 * 10**9)))},
            "altrep_too_long",
        ),
        "nested-100000-deep": ({OUTPUT_COLLECT: _stream(x.robyn_like(deep=x.nested_lists(100_000)))}, "rds_too_deep"),
        "binary-best-model-file": (
            {OUTPUT_COLLECT: output, BEST_MODEL_ID: b"\xff\xfe\x00 not text"},
            "invalid_run_file",
        ),
    }


def message_cases(settings) -> dict[str, tuple[bytes, str, str]]:
    """Request bodies that must never reach storage, their reason, and the part of the refusal that names why."""
    base = dataclasses.asdict(request_for(settings, GOOD[0]))

    def body(**changes: object) -> bytes:
        return json.dumps({**base, **changes}).encode()

    escape = {"revision": "..", "run_path": "robyn/../de/1106_good0"}
    return {
        "dot-dot-segment": (body(**escape), "path_outside_layout", "invalid revision '..'"),
        "absolute-path": (body(run_path="/robyn/r4/de/1106_good0"), "path_outside_layout", "invalid run path"),
        "outside-robyn": (body(run_path="model_summary/r4/de/1106_good0"), "path_outside_layout", "invalid run path"),
        "extra-segments": (body(run_path="robyn/r4/de/1106_good0/x"), "path_outside_layout", "invalid run path"),
        "other-bucket": (
            body(bucket="someone-elses-bucket", run_path=VICTIM.prefix, timestamp=VICTIM.timestamp),
            "other_bucket",
            "request for bucket",
        ),
        "malformed-json": (b'{"v": 1, "bucket": ', "message_not_json", "not JSON"),
        "wrong-field-type": (body(replay_count="0"), "message_bad_fields", "must be int"),
        "non-utf8": (b"\xff\xfe" + body(), "message_not_utf8", "not UTF-8"),
        "oversized": (body(backfill_id="x" * 20_000), "message_too_large", "over 16384"),
    }


@pytest.fixture
def hostile_rds(tmp_path, run_r) -> tuple[dict[str, Path], Path]:
    """The R_OBJECTS saved as RDS files (one Rscript), and the canary their code would create."""
    canary = tmp_path / "CODE_RAN"
    trap = TRAP.format(canary=canary)
    paths = {name: tmp_path / f"{name}.RDS" for name in R_OBJECTS}
    run_r("\n".join(f'saveRDS({expr.format(trap=trap)}, "{paths[n]}")' for n, (expr, _) in R_OBJECTS.items()))
    # The control: plain R touching one of them does run the trap, so an absent canary means something.
    run_r(f'e <- readRDS("{paths["active-binding-env"]}"); invisible(get("resultHypParam", envir = e))')
    assert canary.exists(), "the trap does not fire even when evaluated: the canary would prove nothing"
    canary.unlink()
    return paths, canary


def test_hostile_runs_and_messages_are_dead_lettered_and_the_good_runs_summarised(
    rel_settings, storage, bus, rel_topology, templates, proxy, roles, hostile_rds, figures
):
    rds_paths, canary = hostile_rds
    small = templates["small"]
    upload_runs(storage, small, [*GOOD, VICTIM])
    cases: dict[bytes, tuple[str, str]] = {}  # request body -> (case, expected reason)
    runs: dict[str, RunPath] = {}
    for name, (_, reason) in R_OBJECTS.items():
        runs[name] = RunPath("r4", "xx", f"1106_{name}")
        if name.startswith("input-"):
            upload_runs(storage, small, [runs[name]], [OUTPUT_COLLECT])
            storage.upload_file(runs[name].object_name(INPUT_COLLECT), str(rds_paths[name]))
        else:
            storage.upload_file(runs[name].object_name(OUTPUT_COLLECT), str(rds_paths[name]))
        cases[request_for(rel_settings, runs[name]).encode()] = (name, reason)
    for name, (files, reason) in byte_cases(small).items():
        runs[name] = RunPath("r4", "xx", f"1106_{name}")
        for filename, data in files.items():
            storage.write(runs[name].object_name(filename), data, 0, "application/octet-stream")
        cases[request_for(rel_settings, runs[name]).encode()] = (name, reason)
    messages = message_cases(rel_settings)
    cases.update({data: (name, reason) for name, (data, reason, _) in messages.items()})
    before = bucket_snapshot(storage)

    started = time.monotonic()
    limits = {"MMM_BACKFILL_MAX_RDS_SERIALIZED_BYTES": str(MAX_SERIALIZED)}
    roles.wait_ready(roles.start("worker", **limits), roles.start("worker", **limits))
    publish_requests(bus, rel_settings, GOOD[:2])
    publish_requests(bus, rel_settings, runs.values())
    for data, _, _ in messages.values():
        bus.publish_and_wait(rel_settings.request_topic, data, {"run_path": "hostile message"})
    publish_requests(bus, rel_settings, GOOD[2:])
    letters = drain(bus, rel_settings.dead_letter_subscription, expect=len(cases), timeout=90)
    extra = drain(bus, rel_settings.dead_letter_subscription, timeout=3)  # nothing more may come
    good = read_summaries(storage, GOOD)
    codes = roles.stop_all()
    seconds = time.monotonic() - started
    after = bucket_snapshot(storage)

    by_case = {cases[bytes(m.data)][0]: m.attributes for m in letters if bytes(m.data) in cases}
    reasons = Counter(m.attributes.get("error_reason", "(none)") for m in letters + extra)
    changed = sorted(name for name, generation in after.items() if before.get(name) != generation)
    figures.add(
        Figure(
            "hostile input in a backfill",
            len(GOOD) + len(cases),
            lost=sum(1 for found in good.values() if found is None)
            + len({n for n, _ in cases.values()} - set(by_case)),
            corrupt=len(set(changed) - {r.summary_name for r in GOOD}),
            dead_lettered=reasons,
            seconds=seconds,
            note=f"{len(cases)} hostile cases ({len(runs)} runs, {len(messages)} messages), {len(GOOD)} good runs; "
            f"R code ran: {'YES' if canary.exists() else 'no'}",
        )
    )

    assert not canary.exists(), "R code from an RDS file ran"
    assert {case: a.get("error_reason") for case, a in by_case.items()} == {
        name: reason for name, reason in cases.values()
    }
    assert len(letters) == len(cases) and extra == [], "one dead letter per hostile case, no more"
    for case, attributes in by_case.items():
        assert {"error_class", "error_message", "worker"} <= set(attributes), case
        if case in runs:
            assert attributes["run_path"] == runs[case].prefix
        else:
            assert messages[case][2] in attributes["error_message"], (case, attributes["error_message"])
    assert all(found is not None for found in good.values()), "a good run of the backfill was not summarised"
    assert changed == sorted(r.summary_name for r in GOOD), "something was written besides the good summaries"
    assert set(before) <= set(after)
    assert set(codes.values()) == {0}
