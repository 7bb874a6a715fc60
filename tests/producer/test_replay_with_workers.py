"""Replay while workers run and a replayed run fails again: each replay ends, and the run ends exhausted."""

import signal
import subprocess
import sys
import time

import pytest

from local_stack.testing import wait_for
from mmm_backfill.bus import Bus
from mmm_backfill.messages import SummaryRequest
from mmm_backfill.runpath import RunPath
from producer.replay import replay

pytestmark = pytest.mark.integration

RUN = RunPath("r1", "de", "1101_000001")
#: The issue's bound on one replay while workers run.
REPLAY_SECONDS = 30


@pytest.fixture
def worker(settings, cli_env, tmp_path):
    """A worker process on the test's topics and bucket, stopped at the end."""
    env = {
        **cli_env,
        "MMM_BACKFILL_ACK_DEADLINE_SECONDS": str(settings.ack_deadline_seconds),
        "MMM_BACKFILL_RETRY_MIN_BACKOFF_SECONDS": str(settings.retry_min_backoff_seconds),
        "MMM_BACKFILL_RETRY_MAX_BACKOFF_SECONDS": str(settings.retry_max_backoff_seconds),
    }
    with open(tmp_path / "worker.log", "w") as log:
        proc = subprocess.Popen([sys.executable, "-m", "mmm_backfill", "worker"], env=env, stderr=log)
    yield proc
    proc.send_signal(signal.SIGTERM)
    try:
        proc.wait(timeout=60)
    except subprocess.TimeoutExpired:
        proc.kill()


def timed_replay(settings):
    """One replay as a fresh command would run it; asserts it returned within REPLAY_SECONDS."""
    bus = Bus(settings.project)
    try:
        started = time.monotonic()
        report = replay(settings, bus, limit=None, country=None, revision=None, dry_run=False)
        assert time.monotonic() - started < REPLAY_SECONDS
        return report
    finally:
        bus.close()


def test_a_run_that_keeps_failing_is_replayed_max_replays_times_then_left_exhausted(
    settings, bus, storage, topology, worker, drain
):
    storage.write(RUN.object_name("OutputCollect.RDS"), b"not an RDS file at all", 0)
    request = SummaryRequest.for_run(settings.bucket, RUN, "bf-failing")
    bus.publish_and_wait(settings.request_topic, request.encode(), request.attributes())
    for attempt in range(settings.max_replays):
        report = wait_for(lambda: (r := timed_replay(settings)).count("replayed") and r, timeout=120)
        assert report, f"replay {attempt + 1}: the dead letter never came"
        [letter] = report.letters
        assert (letter.reason, letter.replay_count) == ("not_rds", str(attempt))
    report = wait_for(lambda: (r := timed_replay(settings)).to_dict()["exhausted"] and r, timeout=120)
    assert report and report.count("replayed") == 0
    [exhausted] = report.to_dict()["exhausted"]
    assert (exhausted["run_path"], exhausted["reason"], exhausted["replay_count"]) == (RUN.prefix, "not_rds", "3")
    [left] = drain(settings.dead_letter_subscription, expect=1)
    assert left.attributes["replay_count"] == "3"
