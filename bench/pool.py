"""The pool: ``mmm-backfill worker --processes W`` as a subprocess, fed by ``enqueue``; timed by its events."""

from __future__ import annotations

import datetime as dt
import os
import signal
import statistics
import subprocess
import sys
import time
from pathlib import Path

from google.api_core import exceptions as gexc

from mmm_backfill.bus import Bus
from mmm_backfill.config import Settings
from mmm_backfill.errors import InvalidMessage
from mmm_backfill.messages import CompletionEvent
from mmm_backfill.runpath import RUN_SUMMARY_NAME
from mmm_backfill.storage import Storage
from mmm_backfill.topology import setup_topology

#: Seconds to wait for the worker processes to start consuming.
READY_TIMEOUT = 180.0
#: Seconds without a new completion event before a measurement is given up.
STALL_TIMEOUT = 180.0
#: Seconds a stopping pool gets before it is killed.
STOP_TIMEOUT = 120.0


def worker_env(settings: Settings) -> dict[str, str]:
    return {
        **os.environ,
        "MMM_BACKFILL_PROJECT": settings.project,
        "MMM_BACKFILL_BUCKET": settings.bucket,
        "MMM_BACKFILL_LOG_FORMAT": "json",
        "MMM_BACKFILL_ACK_DEADLINE_SECONDS": str(settings.ack_deadline_seconds),
        "MMM_BACKFILL_RETRY_MIN_BACKOFF_SECONDS": str(settings.retry_min_backoff_seconds),
        "MMM_BACKFILL_RETRY_MAX_BACKOFF_SECONDS": str(settings.retry_max_backoff_seconds),
    }


def _children(pid: int) -> list[int]:
    found = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat") as fh:
                ppid = int(fh.read().rsplit(")", 1)[1].split()[1])
        except (OSError, IndexError, ValueError):
            continue
        if ppid == pid:
            found.append(int(entry))
    return found


def _cmdline(pid: int) -> str:
    try:
        with open(f"/proc/{pid}/cmdline", "rb") as fh:
            return fh.read().replace(b"\0", b" ").decode(errors="replace")
    except OSError:
        return ""


def _memory_mib(pid: int) -> dict[str, float]:
    """VmHWM (peak RSS) and VmRSS of ``pid``, in MiB."""
    out = {}
    try:
        with open(f"/proc/{pid}/status") as fh:
            for line in fh:
                key = line.split(":", 1)[0]
                if key in ("VmHWM", "VmRSS"):
                    out[key] = round(int(line.split()[1]) / 1024, 1)
    except OSError:
        pass
    return out


def worker_processes(pool_pid: int, workers: int) -> list[int]:
    """The processes holding an embedded R: the CLI itself for one worker, else its spawned children."""
    if workers == 1:
        return [pool_pid]
    return [p for p in _children(pool_pid) if "spawn_main" in _cmdline(p) and "resource_tracker" not in _cmdline(p)]


def _ready_count(log_path: Path) -> int:
    try:
        return log_path.read_text(errors="replace").count("worker consuming")
    except OSError:
        return 0


def _stop(proc: subprocess.Popen) -> int | None:
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
    try:
        return proc.wait(timeout=STOP_TIMEOUT)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()
        return None


def _parse_utc(text: str) -> float:
    return dt.datetime.fromisoformat(text.replace("Z", "+00:00")).timestamp()


#: The product's pool; one worker runs inside the CLI process itself.
PRODUCT = [sys.executable, "-m", "mmm_backfill", "worker", "--processes"]
REPO = Path(__file__).resolve().parent.parent


def measure_pool(
    settings: Settings,
    workers: int,
    runs: int,
    workdir: Path,
    log_name: str | None = None,
    extra_env: dict[str, str] | None = None,
) -> dict:
    """Start the pool, enqueue every run, wait for every completion event; return timings."""
    bus = Bus(settings.project)
    storage = Storage(settings.project, settings.bucket)
    setup_topology(settings, bus, storage)
    log_path = workdir / f"{log_name or f'pool-w{workers}'}.log"
    started = time.monotonic()
    with open(log_path, "wb") as log:
        proc = subprocess.Popen(
            [*PRODUCT, str(workers)],
            env={**worker_env(settings), **(extra_env or {})},
            cwd=REPO,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    result: dict = {"workers": workers, "runs": runs, "complete": False}
    try:
        while _ready_count(log_path) < workers:
            if proc.poll() is not None or time.monotonic() - started > READY_TIMEOUT:
                raise RuntimeError(f"worker pool did not start; see {log_path}")
            time.sleep(0.1)
        result["startup_seconds"] = round(time.monotonic() - started, 3)
        t0_wall, t0 = time.time(), time.perf_counter()
        report = enqueue_all(settings, storage, bus)
        result["enqueue_seconds"] = round(time.perf_counter() - t0, 3)
        result["enqueued"] = report.enqueued
        events = collect_events(bus, settings.event_subscription, report.enqueued)
        processes = worker_processes(proc.pid, workers)
        result["worker_memory_mib"] = [_memory_mib(p) for p in processes]
        result["pool_process_memory_mib"] = _memory_mib(proc.pid) if processes != [proc.pid] else None
    finally:
        result["exit_code"] = _stop(proc)
        bus.close()
    done = {e.run_path: e for e in events}
    result["complete"] = len(done) == runs
    result["events"] = len(events)
    if not done:
        return result
    finished = max(_parse_utc(e.completed_at) for e in done.values())
    seconds = finished - t0_wall
    durations = [e.duration_seconds for e in done.values()]
    by_worker: dict[str, int] = {}
    last_by_worker: dict[str, float] = {}
    for e in done.values():
        by_worker[e.worker] = by_worker.get(e.worker, 0) + 1
        last_by_worker[e.worker] = max(last_by_worker.get(e.worker, 0.0), _parse_utc(e.completed_at))
    summaries = sum(1 for o in storage.list("robyn/") if o.name.endswith("/" + RUN_SUMMARY_NAME))
    peaks = [m.get("VmHWM", 0.0) for m in result.get("worker_memory_mib", [])]
    result.update(
        {
            "seconds": round(seconds, 3),
            "runs_per_second": round(len(done) / seconds, 4),
            "wall_seconds_per_run": round(seconds / len(done), 4),
            "handler_seconds_mean": round(statistics.fmean(durations), 4),
            "handler_seconds_median": round(statistics.median(durations), 4),
            "handler_seconds_max": round(max(durations), 4),
            "outcomes": {o: sum(1 for e in done.values() if e.outcome == o) for o in {e.outcome for e in events}},
            "runs_by_worker": sorted(by_worker.values(), reverse=True),
            # how long the first process to finish sat idle before the last one did (0 with one process)
            "idle_tail_seconds": round(finished - min(last_by_worker.values()), 3),
            "summaries_in_bucket": summaries,
            "peak_rss_mib_per_worker": max(peaks) if peaks else None,
        }
    )
    return result


def enqueue_all(settings: Settings, storage: Storage, bus: Bus):  # noqa: ANN201 - producer's report
    from producer.enqueue import enqueue

    return enqueue(settings, storage, bus, revision=None, country=None, limit=None, dry_run=False, show_progress=False)


def pull(bus: Bus, subscription: str, max_messages: int, timeout: float) -> list:
    """One synchronous pull; an empty list when nothing arrived in time (no retry loop)."""
    try:
        response = bus.subscriber.pull(
            request={"subscription": bus.subscription_path(subscription), "max_messages": max_messages},
            timeout=timeout,
        )
    except gexc.DeadlineExceeded:
        return []
    return list(response.received_messages)


def collect_events(bus: Bus, subscription: str, expected: int) -> list[CompletionEvent]:
    """Pull completion events until ``expected`` distinct runs reported, or progress stalls."""
    events: list[CompletionEvent] = []
    seen: set[str] = set()
    last_progress = time.monotonic()
    while len(seen) < expected and time.monotonic() - last_progress < STALL_TIMEOUT:
        received = pull(bus, subscription, 100, timeout=5.0)
        for message in received:
            try:
                event = CompletionEvent.decode(bytes(message.message.data))
            except InvalidMessage:
                continue
            events.append(event)
            if event.run_path not in seen:
                seen.add(event.run_path)
                last_progress = time.monotonic()
        bus.ack(subscription, [m.ack_id for m in received])
        if not received:
            time.sleep(0.05)
    return events
