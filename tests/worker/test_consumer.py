"""The worker process loop on the real emulators: consumes, stops gracefully, loses nothing."""

import os
import signal
import subprocess
import sys
import threading

import pytest

from local_stack.testing import wait_for
from mmm_backfill.messages import SummaryRequest
from mmm_backfill.runpath import RunPath
from worker.consumer import consume

pytestmark = pytest.mark.integration


def upload_run(storage, run_dir, run):
    for path in run_dir.iterdir():
        storage.upload_file(run.object_name(path.name), str(path))


def enqueue(bus, settings, runs):
    for run in runs:
        msg = SummaryRequest.for_run(settings.bucket, run, "bf")
        bus.publish_and_wait(settings.request_topic, msg.encode(), msg.attributes())


def consume_until(settings, done) -> int:
    """Run the consumer in a thread until ``done()``, then stop it; its exit code."""
    stop, result = threading.Event(), {}
    thread = threading.Thread(target=lambda: result.update(code=consume(settings, stop, install_signals=False)))
    thread.start()
    try:
        assert wait_for(done)
    finally:
        stop.set()
        thread.join(timeout=60)
    return result["code"]


def test_consumer_summarises_every_request_then_stops_cleanly(settings, storage, bus, topology, generated_runs):
    runs = [RunPath("r1", "de", f"t{i}") for i in range(3)]
    for run in runs:
        upload_run(storage, generated_runs["standard"], run)
    enqueue(bus, settings, runs)
    assert consume_until(settings, lambda: all(storage.generation(r.summary_name) for r in runs)) == 0


def test_consumer_fetching_ahead_from_a_backlog_summarises_every_request_and_holds_nothing_after_a_stop(
    settings, storage, bus, topology, generated_runs
):
    from worker.claims import FOLDER

    runs = [RunPath("r1", "fr", f"t{i}") for i in range(4)]
    for run in runs:
        upload_run(storage, generated_runs["standard"], run)
    enqueue(bus, settings, runs)  # a backlog before the start: requests are fetched ahead
    assert consume_until(settings, lambda: all(storage.generation(r.summary_name) for r in runs)) == 0
    mine = f"-{os.getpid()}-"
    claims_dir = os.path.join(_tmp_root(), FOLDER)
    held = [
        n
        for n in (os.listdir(claims_dir) if os.path.isdir(claims_dir) else [])
        if n.split("-")[1:2] == [str(os.getpid())]
    ]
    assert held == [] and not [e.name for e in _tmp_entries() if e.name.startswith("mmm-run" + mine)]


def test_sigterm_mid_run_finishes_or_returns_the_run(settings, storage, bus, topology, emulator_env, tmp_path):
    from local_stack.fixtures import RunSpec, generate_runs

    run_dir = tmp_path / "big"
    generate_runs([RunSpec(dir=str(run_dir), pad_mb=60, models=50)])
    run = RunPath("r1", "de", "big")
    upload_run(storage, run_dir, run)
    enqueue(bus, settings, [run])
    env = {**emulator_env, "MMM_BACKFILL_PROJECT": settings.project, "MMM_BACKFILL_BUCKET": settings.bucket}
    proc = subprocess.Popen([sys.executable, "-m", "mmm_backfill", "worker"], env=env)
    try:
        in_work = lambda: any(p.name.startswith("mmm-run-") for p in _tmp_entries())  # noqa: E731
        assert wait_for(lambda: in_work() or storage.generation(run.summary_name), timeout=90)
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=120) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
    if storage.generation(run.summary_name) is None:  # returned, not finished: it must come back
        assert wait_for(lambda: bool(_pull_one(bus, settings)), timeout=30)


def _tmp_root() -> str:
    import tempfile

    return tempfile.gettempdir()


def _tmp_entries():
    return list(os.scandir(_tmp_root()))


def _pull_one(bus, settings):
    return bus.pull(settings.request_subscription, 1, timeout=2)
