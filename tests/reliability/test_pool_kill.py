"""A whole worker pool SIGKILLed three times during a backfill, on the subscription lifetimes `setup` ships:
every run back and summarised within a bound of the last kill, none twice."""

from __future__ import annotations

import time

import pytest
from backfill_kit import BucketWatcher, backfill_figure, publish_requests, read_summaries, upload_runs, wait_for

from mmm_backfill.config import Settings
from mmm_backfill.runpath import RunPath

pytestmark = [pytest.mark.reliability, pytest.mark.integration]

RUNS = [RunPath("r3", ("de", "fr", "it")[i % 3], f"1203_{i:06d}") for i in range(100)]
#: Fractions of the backfill summarised when the pool is killed.
KILL_AT = (0.25, 0.5, 0.75)
#: Every run must be summarised this long after the last kill: a request the dead pool held comes
#: back after the subscription's ack deadline at most, plus a retry backoff and a new pool's start.
AFTER_LAST_KILL_SECONDS = 90.0
POOL = ("--processes", "2")
#: These kills stand for lost machines, not for runs that crash workers: none is ever given up here.
POOL_ENV = {"MMM_BACKFILL_MAX_WORKER_CRASHES": "100"}


@pytest.fixture
def rel_settings(settings):
    """The shipped ack deadline and retry backoff (not the suite's short ones): the wait under test is theirs."""
    shipped = Settings()
    return settings.replace(
        ack_deadline_seconds=shipped.ack_deadline_seconds,
        retry_min_backoff_seconds=shipped.retry_min_backoff_seconds,
        retry_max_backoff_seconds=shipped.retry_max_backoff_seconds,
        coalesce_seconds=0.3,
    )


def longest_pause(times: list[float]) -> float:
    """The longest time between two summaries appearing, one after the other."""
    ordered = sorted(times)
    return max((b - a for a, b in zip(ordered, ordered[1:], strict=False)), default=0.0)


def test_a_pool_killed_three_times_leaves_every_run_summarised_once_soon_after_the_last_kill(
    rel_settings, storage, bus, rel_topology, templates, proxy, roles, tap, figures
):
    upload_runs(storage, templates["small"], RUNS)
    started = time.monotonic()
    kills: list[float] = []
    with BucketWatcher(rel_settings) as watcher:
        pool = roles.start("worker", *POOL, own_group=True, **POOL_ENV)
        roles.wait_ready(pool)
        publish_requests(bus, rel_settings, RUNS)
        for fraction in KILL_AT:
            wait_for(lambda f=fraction: len(watcher.first_seen) >= f * len(RUNS), 120, f"{fraction:.0%} summarised")
            roles.kill_group(pool)  # a pod lost with every process in it
            kills.append(time.monotonic())
            # as the container's restart would: same /tmp (its emptyDir), so the claims are found
            pool = roles.start("worker", *POOL, own_group=True, **POOL_ENV)
        try:
            wait_for(
                lambda: len(watcher.first_seen) == len(RUNS),
                AFTER_LAST_KILL_SECONDS - (time.monotonic() - kills[-1]),
                f"every run summarised within {AFTER_LAST_KILL_SECONDS:.0f} s of the last kill",
            )
        except AssertionError as exc:
            raise AssertionError(f"{exc}; {len(watcher.first_seen)} of {len(RUNS)}\n{roles.tail()}") from None
        codes = roles.stop_all()
    tap.drain()
    summaries = read_summaries(storage, RUNS)
    writes = {run: proxy.writes_of(run.summary_name) for run in RUNS}
    tail = max(watcher.first_seen.values()) - kills[-1]
    pause = longest_pause(list(watcher.first_seen.values()))
    note = f"last run summarised {tail:.1f} s after the last kill; longest pause between two summaries {pause:.1f} s"
    seconds = time.monotonic() - started
    figures.add(backfill_figure("pool SIGKILLed at 1/4, 1/2, 3/4", summaries, writes, watcher, roles, seconds, note))

    assert not watcher.problems, watcher.problems
    assert not watcher.replaced()
    for run in RUNS:
        generation = summaries[run][1]
        assert writes[run] == [generation], f"{run}: written {len(writes[run])} times"
        # a kill between the write and its event leaves the redelivery to report already_existed
        assert tap.outcomes(run)["created"] <= 1 and tap.generations(run) == {generation}, run
    assert set(codes.values()) == {0}, roles.tail()
