"""The same request many times, and a request redelivered after it succeeded: one summary, one generation."""

from __future__ import annotations

import time

import pytest
from backfill_kit import Figure, publish_requests, read_summaries, storage_through, upload_runs

from mmm_backfill.runpath import RunPath
from worker.boundary.rbridge import RSession
from worker.handler import Handler

pytestmark = [pytest.mark.reliability, pytest.mark.integration]

RUNS = [RunPath("r3", "de", f"1105_{i:06d}") for i in range(3)]
COPIES = 10


def test_duplicate_requests_and_a_redelivery_after_success_write_one_summary(
    rel_settings, storage, bus, rel_topology, templates, proxy, roles, tap, figures
):
    upload_runs(storage, templates["small"], RUNS[:1])
    upload_runs(storage, templates["slow"], RUNS[1:])  # slow, so copies handled at once overlap
    started = time.monotonic()
    # This test is the first worker: it summarises RUNS[0], then its ack is lost (a nack stands for it).
    publish_requests(bus, rel_settings, RUNS[:1])
    (first,) = bus.pull(rel_settings.request_subscription, 1, timeout=10)
    handler = Handler(rel_settings, storage_through(proxy.url, rel_settings), bus, RSession.shared(), "test-worker")
    assert handler.handle(first.data, first.attributes).outcome == "created"
    bus.nack(rel_settings.request_subscription, [first.ack_id])

    roles.wait_ready(roles.start("worker"), roles.start("worker"))
    publish_requests(bus, rel_settings, RUNS, copies=COPIES)
    expected_events = 1 + 1 + COPIES * len(RUNS)  # the test's own, the redelivery, every copy
    events = tap.drain(expect=expected_events, timeout=90)
    codes = roles.stop_all()
    seconds = time.monotonic() - started

    summaries = read_summaries(storage, RUNS)
    writes = {run: proxy.writes_of(run.summary_name) for run in RUNS}
    lost_races = sum(1 for w in proxy.journal if w.status == 412)
    figures.add(
        Figure(
            "duplicate requests",
            len(RUNS),
            lost=sum(1 for found in summaries.values() if found is None),
            duplicated=sum(1 for run in RUNS if len(writes[run]) > 1 or tap.outcomes(run)["created"] > 1),
            retries=roles.retries(),
            seconds=seconds,
            note=f"{len(events)} requests handled for {len(RUNS)} runs ({COPIES} copies each, 1 redelivered "
            f"after success); {lost_races} create-only writes refused (412)",
        )
    )

    assert len(events) == expected_events, roles.tail()
    repeats = {run: COPIES - 1 for run in RUNS} | {RUNS[0]: COPIES + 1}  # RUNS[0]: its copies and the redelivery
    for run in RUNS:
        generation = summaries[run][1]
        assert writes[run] == [generation], f"{run}: written {len(writes[run])} times"
        assert tap.outcomes(run) == {"created": 1, "already_existed": repeats[run]}
        assert tap.generations(run) == {generation}
    assert set(codes.values()) == {0}
