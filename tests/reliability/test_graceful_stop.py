"""SIGTERM during a run: the worker finishes or returns it, exits 0, and nothing is lost."""

from __future__ import annotations

import time

import pytest
from backfill_kit import Figure, publish_requests, read_summaries, temp_run_dirs, upload_runs, wait_for

from mmm_backfill.runpath import RunPath

pytestmark = [pytest.mark.reliability, pytest.mark.integration]

RUNS = [RunPath("r2", ("de", "us")[i % 2], f"1103_{i:06d}") for i in range(6)]


def test_sigterm_mid_run_exits_zero_and_every_run_is_summarised_once(
    rel_settings, storage, bus, rel_topology, templates, proxy, roles, run_tmp, tap, figures
):
    upload_runs(storage, templates["slow"], RUNS)
    started = time.monotonic()
    stops = []
    single = roles.start("worker")
    roles.wait_ready(single)
    publish_requests(bus, rel_settings, RUNS)
    for start in (lambda: single, lambda: roles.start("worker", "--processes", "2")):
        target = start()  # only one of them at a time: a folder left after its stop is its own
        wait_for(lambda: temp_run_dirs(run_tmp), 60, "a run in hand", interval=0.02)
        done_before = sum(1 for found in read_summaries(storage, RUNS).values() if found)
        code = roles.terminate(target)
        done_after = sum(1 for found in read_summaries(storage, RUNS).values() if found)
        stops.append((code, done_after - done_before, temp_run_dirs(run_tmp)))
    roles.wait_ready(roles.start("worker"))
    try:
        wait_for(lambda: all(read_summaries(storage, RUNS).values()), 90, "every run summarised after the stops")
    except AssertionError as exc:
        raise AssertionError(f"{exc}\n{roles.tail()}") from None
    codes = roles.stop_all()
    seconds = time.monotonic() - started
    tap.drain()
    summaries = read_summaries(storage, RUNS)
    writes = {run: proxy.writes_of(run.summary_name) for run in RUNS}
    figures.add(
        Figure(
            "graceful stop (SIGTERM)",
            len(RUNS),
            lost=sum(1 for found in summaries.values() if found is None),
            duplicated=sum(1 for run in RUNS if len(writes[run]) > 1 or tap.outcomes(run)["created"] > 1),
            retries=roles.retries(),
            seconds=seconds,
            note="exit codes on SIGTERM "
            + ", ".join(f"{code} ({finished} run finished during the stop)" for code, finished, _ in stops),
        )
    )

    assert [code for code, _, _ in stops] == [0, 0], roles.tail()
    assert [left for _, _, left in stops] == [[], []], f"a stopped worker left its run folder\n{roles.tail(40)}"
    assert set(codes.values()) == {0}
    for run in RUNS:
        generation = summaries[run][1]
        assert writes[run] == [generation], f"{run}: written {len(writes[run])} times"
        assert tap.outcomes(run)["created"] == 1 and tap.generations(run) == {generation}
    assert list(run_tmp.iterdir()) == []
