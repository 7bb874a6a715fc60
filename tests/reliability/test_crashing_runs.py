"""Runs that kill their worker or hold it too long: traced to the run, dead-lettered with their reason, never lost,
and the pool keeps serving the other runs."""

from __future__ import annotations

import json
import os
import signal
import threading
import time

import pytest
from backfill_kit import Figure, drain, publish_requests, read_summaries, upload_runs, wait_for

from mmm_backfill.runpath import RunPath
from worker.claims import FOLDER, Claim

pytestmark = [pytest.mark.reliability, pytest.mark.integration]

POISON = RunPath("r9", "de", "1107_poison")
GOOD = [RunPath("r9", "fr", f"1107_good{i}") for i in range(3)]
#: Worker processes a poison run may kill before it is dead-lettered (the setting's default).
MAX_CRASHES = 2


def claims_of(run_tmp, run: RunPath) -> list[int]:
    """Pids of the worker processes holding ``run`` right now, read from their claims."""
    folder = run_tmp / FOLDER
    pids = []
    for path in folder.glob("claim-*.json") if folder.exists() else []:
        try:
            claim = Claim.from_json(path.read_text())
        except (OSError, ValueError):
            continue  # removed or replaced while read
        if claim.run_path == run.prefix:
            pids.append(claim.pid)
    return pids


def poison_figure(scenario: str, letters: list, started: float, note: str) -> Figure:
    """The scenario's row: the poison run and the good ones, lost unless the poison was dead-lettered."""
    reasons = {letters[0].attributes["error_reason"]: 1} if letters else {}
    lost = 0 if letters else 1
    return Figure(scenario, 1 + len(GOOD), lost, dead_lettered=reasons, seconds=time.monotonic() - started, note=note)


def log_lines(roles) -> list[dict]:
    lines = (line for role in roles.started for line in role.log_path.read_text().splitlines())
    return [json.loads(line) for line in lines if line.startswith("{")]


def test_a_run_that_kills_its_worker_is_dead_lettered_as_worker_crashed(
    rel_settings, storage, bus, rel_topology, templates, proxy, roles, run_tmp, figures
):
    """The kill stands in for what a hostile file does to R past every check: SIGSEGV, or the OOM killer's SIGKILL."""
    upload_runs(storage, templates["slow"], [POISON])
    upload_runs(storage, templates["small"], GOOD)
    started = time.monotonic()
    pool = roles.start("worker", "--processes", "2", MMM_BACKFILL_RETRY_MIN_BACKOFF_SECONDS="1")
    roles.wait_ready(pool)
    kills: list[int] = []
    done = threading.Event()

    def kill_whoever_holds_the_poison() -> None:
        while not done.wait(0.01):
            for pid in set(claims_of(run_tmp, POISON)) - set(kills):
                os.kill(pid, signal.SIGKILL)
                kills.append(pid)

    killer = threading.Thread(target=kill_whoever_holds_the_poison, daemon=True)
    killer.start()
    publish_requests(bus, rel_settings, [POISON])
    letters = drain(bus, rel_settings.dead_letter_subscription, expect=1, timeout=120)
    done.set()
    killer.join()
    publish_requests(bus, rel_settings, GOOD)
    wait_for(lambda: all(read_summaries(storage, GOOD).values()), 60, "the good runs summarised after the crashes")
    more = drain(bus, rel_settings.dead_letter_subscription, timeout=3)
    codes = roles.stop_all()
    figures.add(
        poison_figure(
            "run killing its worker", letters, started, f"{len(kills)} worker processes killed by the same run"
        )
    )

    assert len(letters) == 1 and more == [], "the poison run is dead-lettered exactly once"
    assert letters[0].attributes["error_reason"] == "worker_crashed"
    assert letters[0].attributes["run_path"] == POISON.prefix
    assert len(kills) == MAX_CRASHES, f"{len(kills)} processes died before it was given up"
    assert read_summaries(storage, [POISON])[POISON] is None
    died = [r for r in log_lines(roles) if r.get("run_path") == POISON.prefix and r.get("reason") == "worker_crashed"]
    assert len(died) == MAX_CRASHES, "each crash is logged with the run that caused it"
    assert list((run_tmp / FOLDER).glob("claim-*")) == [], "no claim is left behind"
    assert set(codes.values()) == {0}, roles.tail()


def replaced_by_pool(roles) -> bool:
    """The pool logged that a process ended by the run-timeout exit code (and started another)."""
    return any("ended by code 75" in str(r.get("message")) for r in log_lines(roles))


#: A legitimate but long run: a million models (allowed here) take several seconds to read.
LONG_RUN = (
    "n <- 1e6; saveRDS(list(resultHypParam = data.frame(solID = sprintf('1_%d_1', 1:n), nrmse = runif(n), "
    "decomp.rssd = runif(n), robynPareto = sample(c(1:3, NA), n, TRUE))), '{path}')"
)


def test_a_run_past_the_time_limit_is_given_up_and_the_worker_replaced(
    rel_settings, storage, bus, rel_topology, templates, proxy, roles, run_tmp, run_r, tmp_path, figures
):
    long_run = tmp_path / "OutputCollect.RDS"
    run_r(LONG_RUN.format(path=long_run))
    storage.upload_file(POISON.object_name("OutputCollect.RDS"), str(long_run))
    upload_runs(storage, templates["small"], GOOD)
    started = time.monotonic()
    limits = {"MMM_BACKFILL_MAX_RUN_SECONDS": "3", "MMM_BACKFILL_MAX_MODELS": "2000000"}
    pool = roles.start("worker", "--processes", "2", **limits)
    roles.wait_ready(pool)
    publish_requests(bus, rel_settings, [POISON])
    letters = drain(bus, rel_settings.dead_letter_subscription, expect=1, timeout=60)
    publish_requests(bus, rel_settings, GOOD)
    wait_for(lambda: all(read_summaries(storage, GOOD).values()), 60, "the good runs summarised by a fresh process")
    # the pool notices the exit within half a second; the good runs can be done sooner than that
    wait_for(lambda: replaced_by_pool(roles), 30, "the pool replacing the process that ran out of time")
    codes = roles.stop_all()
    figures.add(
        poison_figure(
            "run past the time limit", letters, started, "limit 3 s against a run of a million models (good: 0.3 s)"
        )
    )

    assert len(letters) == 1, roles.tail()
    assert letters[0].attributes["error_reason"] == "run_timeout"
    assert letters[0].attributes["run_path"] == POISON.prefix
    assert replaced_by_pool(roles), roles.tail()
    assert list((run_tmp / FOLDER).glob("claim-*")) == []
    assert set(codes.values()) == {0}, roles.tail()
