"""Refresh under storage faults, duplicated requests and a concurrent writer: no write lost, none newer replaced."""

from __future__ import annotations

import json
import threading
import time

import pytest
from atomic_gcs import AtomicGcs
from backfill_kit import (
    Figure,
    mismatched_countries,
    read_summaries,
    stored_and_fresh,
    summary_problems,
    upload_runs,
    wait_for,
)
from faulty_proxy import FaultyProxy

from local_stack import testing
from mmm_backfill.messages import SummaryRequest
from mmm_backfill.runpath import RunPath
from mmm_backfill.storage import PreconditionFailed, Storage, make_client
from mmm_backfill.summary_state import SummaryState, summary_metadata, summary_state
from worker.replace import previous_name

pytestmark = [pytest.mark.reliability, pytest.mark.integration]

FAULT_RATE = 0.2
SEED = 20261201
COUNTRIES = ("de", "fr")
RUNS = [RunPath("r1", COUNTRIES[i % 2], f"1101_{i:06d}") for i in range(8)]
#: Runs whose summary the test itself replaces with a current one while the workers refresh them.
RACED = RUNS[:3]
COPIES = 3
THEIRS = b'{"written": "by a concurrent writer"}'


def legacy(run: RunPath) -> bytes:
    return json.dumps({"country": run.country, "revision": run.revision, "has_pareto_models": False}).encode()


@pytest.fixture
def atomic(gcs_emulator):
    """The emulator with Cloud Storage's semantics for the copy aside (see ``atomic_gcs``)."""
    with AtomicGcs(gcs_emulator.url) as relay:
        yield relay


@pytest.fixture
def proxy(atomic):
    """Overrides the plain relay: the role processes reach storage through a faulty one."""
    with FaultyProxy(atomic.url, fault_rate=FAULT_RATE, seed=SEED) as relay:
        yield relay


def concurrent_writer(storage, generations: dict[RunPath, int], won: dict[RunPath, bool]) -> threading.Thread:
    """Writes a current summary over each raced run's legacy one, by compare-and-swap like any writer.

    The first race starts at once (before any worker got there); the others start when a worker has
    copied the legacy summary aside, that is, in the middle of its swap or just after it.
    """

    def write() -> None:
        for i, run in enumerate(RACED):
            if i:
                testing.wait_for(lambda run=run: storage.stat(previous_name(run)), 60, 0.01)
            try:
                storage.write(run.summary_name, THEIRS, generations[run], metadata=summary_metadata())
                won[run] = True
            except PreconditionFailed:
                won[run] = False

    return threading.Thread(target=write)


def test_refresh_under_faults_and_a_concurrent_writer_loses_nothing(
    rel_settings, storage, bus, rel_topology, templates, atomic, proxy, roles, tap, figures
):
    upload_runs(storage, templates["small"], RUNS)
    generations = {run: storage.write(run.summary_name, legacy(run), 0) for run in RUNS}
    started = time.monotonic()
    roles.wait_ready(roles.start("worker"), roles.start("worker"), roles.start("aggregator"))
    requests = [
        SummaryRequest.for_run(rel_settings.bucket, run, "bf-refresh", replace_generation=generations[run])
        for run in RUNS
        for _ in range(COPIES)
    ]
    won: dict[RunPath, bool] = {}
    relayed = Storage(rel_settings.project, rel_settings.bucket, make_client(rel_settings.project, atomic.url))
    writer = concurrent_writer(relayed, generations, won)
    bus.publish_many(rel_settings.request_topic, [(r.encode(), r.attributes()) for r in requests])
    writer.start()

    def all_current() -> bool:
        return all(
            (info := storage.stat(run.summary_name)) is not None
            and summary_state(info.metadata) is SummaryState.CURRENT
            for run in RUNS
        )

    try:
        wait_for(all_current, 120, "every summary current")
        wait_for(lambda: len(tap.drain(timeout=2)) >= 0 and _all_answered(tap), 60, "every request answered")
        wait_for(lambda: not mismatched_countries(*stored_and_fresh(storage, COUNTRIES)), 60, "country files fresh")
    except AssertionError as exc:
        raise AssertionError(f"{exc}\nproxy faults {dict(proxy.faults)}\n{roles.tail()}") from None
    writer.join(30)
    codes = roles.stop_all()

    summaries = read_summaries(storage, RUNS)
    worker_writes = {run: proxy.writes_of(run.summary_name) for run in RUNS}
    replaced = {run: tap.outcomes(run)["replaced"] for run in RUNS}
    problems = [
        p for run, (data, _) in summaries.items() if data != THEIRS for p in summary_problems(run.summary_name, data)
    ]
    for run in RUNS:
        theirs_won = won.get(run, False)
        # One write replaced each legacy summary: the writer's, or exactly one worker's; nobody replaced a current one.
        assert len(worker_writes[run]) + theirs_won == 1, (
            f"{run}: workers {worker_writes[run]}, writer won {theirs_won}"
        )
        assert replaced[run] == (0 if theirs_won else 1), f"{run}: {tap.outcomes(run)}"
        assert (summaries[run][0] == THEIRS) is theirs_won
        if not theirs_won:  # the worker kept the version it replaced
            assert storage.read(previous_name(run))[0] == legacy(run)
            assert worker_writes[run] == [summaries[run][1]]
    assert not problems
    figures.add(
        Figure(
            "refresh under faults + concurrent writer",
            len(RUNS),
            lost=sum(1 for found in summaries.values() if found is None),
            duplicated=sum(1 for run in RUNS if len(worker_writes[run]) + won.get(run, False) > 1),
            corrupt=len(problems),
            retries=roles.retries(),
            seconds=time.monotonic() - started,
            note=f"{len(RUNS) * COPIES} refresh requests for {len(RUNS)} legacy summaries; "
            f"concurrent writer won {sum(won.values())} of {len(RACED)} races; "
            f"{sum(proxy.faults.values())} faults in {proxy.requests} requests",
        )
    )
    assert set(codes.values()) == {0}, roles.tail()


def _all_answered(tap) -> bool:
    """Every copy of every request produced a completion event (replaced or already_existed)."""
    return all(sum(tap.outcomes(run).values()) >= COPIES for run in RUNS)
