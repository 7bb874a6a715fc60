"""Workers killed with SIGKILL mid-run, again and again: every run summarised once, nothing half-written or leaked."""

from __future__ import annotations

import os
import signal
import time

import pytest
from backfill_kit import (
    BucketWatcher,
    Role,
    Roles,
    backfill_figure,
    publish_requests,
    read_summaries,
    temp_run_dirs,
    upload_runs,
    wait_for,
)

from mmm_backfill.runpath import RunPath
from worker.claims import AHEAD, FOLDER, Claim, Claims

pytestmark = [pytest.mark.reliability, pytest.mark.integration]

RUNS = [RunPath("r1", ("de", "fr")[i % 2], f"1102_{i:06d}") for i in range(8)]
#: Workers killed during the test (each one mid-run), and the time allowed for them.
KILLS = 3
KILL_SECONDS = 60.0


def owner_pid(folder: str) -> int | None:
    """The pid in ``mmm-run-PID-...`` or ``mmm-rsession-PID-...``; None for any other name."""
    parts = folder.split("-")
    return int(parts[2]) if folder.startswith("mmm-") and len(parts) > 2 and parts[2].isdigit() else None


def in_run(roles: Roles, run_tmp) -> list:
    """Live workers holding a run folder right now: killing one of them interrupts a run."""
    busy = {owner_pid(name) for name in temp_run_dirs(run_tmp)}
    return [r for r in roles.live("worker") if r.pid in busy]


def test_sigkilled_workers_leave_each_run_summarised_once_and_no_temp_space(
    rel_settings, storage, bus, rel_topology, templates, proxy, roles, run_tmp, tap, figures
):
    upload_runs(storage, templates["slow"], RUNS)
    started = time.monotonic()
    with BucketWatcher(rel_settings) as watcher:
        # These kills stand for lost machines, not for runs that crash workers: none is ever given up here.
        roles.wait_ready(*(roles.start("worker", MMM_BACKFILL_MAX_WORKER_CRASHES="100") for _ in range(2)))
        publish_requests(bus, rel_settings, RUNS)
        killed, deadline = [], time.monotonic() + KILL_SECONDS
        while len(killed) < KILLS and time.monotonic() < deadline:
            victims = in_run(roles, run_tmp)
            if victims:
                roles.kill(victims[0])
                killed.append(victims[0].pid)
                # as a supervisor would; it clears the dead one's folders and returns its request
                roles.start("worker", MMM_BACKFILL_MAX_WORKER_CRASHES="100")
            time.sleep(0.05)
        try:
            wait_for(lambda: all(read_summaries(storage, RUNS).values()), 120, "every run summarised after the kills")
        except AssertionError as exc:
            raise AssertionError(f"{exc}\n{roles.tail()}") from None
        dead_pids_folders = [p.name for p in run_tmp.iterdir() if owner_pid(p.name) in killed]
        codes = roles.stop_all()
    seconds = time.monotonic() - started
    tap.drain()
    left = sorted(p.name for p in run_tmp.iterdir() if p.name != FOLDER)
    claims_left = sorted(p.name for p in (run_tmp / FOLDER).glob("claim-*"))
    summaries = read_summaries(storage, RUNS)
    writes = {run: proxy.writes_of(run.summary_name) for run in RUNS}
    note = f"{len(killed)} kills mid-run; temp folders left: {len(left)}"
    figures.add(backfill_figure("worker SIGKILL mid-run", summaries, writes, watcher, roles, seconds, note))

    assert len(killed) == KILLS, f"only {len(killed)} workers caught mid-run"
    assert not watcher.problems, watcher.problems
    assert not watcher.replaced()
    for run in RUNS:
        generation = summaries[run][1]
        assert writes[run] == [generation], f"{run}: written {len(writes[run])} times"
        assert tap.outcomes(run)["created"] <= 1 and tap.generations(run) == {generation}
        assert watcher.generations[run.summary_name] == {generation}
    assert dead_pids_folders == [], "the restarted workers must remove the dead ones' run and R folders"
    assert left == [], f"temp space leaked: {left}"
    assert claims_left == [], f"claims of dead workers left unsettled: {claims_left}"
    assert set(codes.values()) == {0}, roles.tail()


#: The killed worker's lease of each request it holds (its subscription's deadline, capped there): a request
#: that came back sooner was returned by the next worker, not left to lapse.
AHEAD_LEASE_SECONDS = 60


def claims_now(run_tmp, prefix: str) -> list[Claim]:
    found = []
    for path in (run_tmp / FOLDER).glob(f"{prefix}*.json") if (run_tmp / FOLDER).exists() else []:
        try:
            found.append(Claim.from_json(path.read_text()))
        except (OSError, ValueError):
            continue  # replaced or removed while read
    return found


def frozen_with_one_ahead(role: Role, run_tmp) -> bool:
    """Stop ``role`` (SIGSTOP) if it holds one run in R and another ahead; else let it go on, False.

    Frozen, its claims cannot move between the look and the kill that follows.
    """
    os.kill(role.pid, signal.SIGSTOP)
    in_r, ahead = claims_now(run_tmp, "claim-"), claims_now(run_tmp, "ahead-")
    if len(in_r) == 1 and len(ahead) == 1 and in_r[0].run_path != ahead[0].run_path:
        return True
    os.kill(role.pid, signal.SIGCONT)
    return False


def test_sigkill_while_a_request_is_fetched_ahead_returns_it_at_once_with_no_crash_counted(
    rel_settings, storage, bus, rel_topology, templates, proxy, roles, run_tmp, tap
):
    runs = [RunPath("r1", "us", f"1104_{i:06d}") for i in range(4)]
    upload_runs(storage, templates["slow"], runs)
    publish_requests(bus, rel_settings, runs)  # a backlog before the start: the worker fetches ahead
    lease = {"MMM_BACKFILL_ACK_DEADLINE_SECONDS": str(AHEAD_LEASE_SECONDS)}
    first = roles.start("worker", **lease)
    wait_for(lambda: frozen_with_one_ahead(first, run_tmp), 90, "the worker caught with a run in R and one ahead")
    roles.kill(first)
    killed_at = time.monotonic()
    (in_r,), (ahead,) = claims_now(run_tmp, "claim-"), claims_now(run_tmp, "ahead-")
    assert in_r.run_path != ahead.run_path and ahead.stage == AHEAD
    roles.wait_ready(roles.start("worker", **lease))  # as a supervisor would: it settles the dead one's requests
    ahead_run = RunPath.parse(ahead.run_path)
    wait_for(lambda: read_summaries(storage, [ahead_run])[ahead_run], 90, "the run fetched ahead summarised")
    ahead_seconds = time.monotonic() - killed_at
    wait_for(lambda: all(read_summaries(storage, runs).values()), 90, "every run summarised")
    codes = roles.stop_all()
    tap.drain()
    summaries = read_summaries(storage, runs)
    crashes = Claims(str(run_tmp / FOLDER))

    assert ahead_seconds < AHEAD_LEASE_SECONDS, f"came back after {ahead_seconds:.0f}s: its lease lapsed"
    assert crashes.crashes(ahead.key) == 0, "a run R never touched is not a crash"
    assert crashes.crashes(in_r.key) == 1
    for run in runs:
        generation = summaries[run][1]
        assert proxy.writes_of(run.summary_name) == [generation], f"{run}: written more than once"
        assert tap.outcomes(run)["created"] <= 1 and tap.generations(run) == {generation}
    assert tap.outcomes(ahead_run)["created"] == 1, "the run fetched ahead is handled once, by the next worker"
    returned = [r for r in roles.log_records() if r.get("message") == "a request held outside R goes back to the queue"]
    assert ahead.run_path in [r.get("run_path") for r in returned]
    assert claims_now(run_tmp, "claim-") == [] and claims_now(run_tmp, "ahead-") == []
    assert set(codes.values()) == {0}, roles.tail()
