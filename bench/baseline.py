"""The sequential method, reproduced: list, check, download, one Rscript per run, upload. One run at a time."""

from __future__ import annotations

import os
import subprocess
import tempfile
import time
from pathlib import Path

from mmm_backfill.runpath import BEST_MODEL_ID, INPUT_COLLECT, OUTPUT_COLLECT, RUN_SUMMARY_NAME, RunPath
from mmm_backfill.storage import Storage

SCRIPT = Path(__file__).with_name("baseline.R")
#: Files the old extractor read.
FILES = (OUTPUT_COLLECT, INPUT_COLLECT, BEST_MODEL_ID)
#: Seconds one Rscript may take before the baseline is abandoned.
RSCRIPT_TIMEOUT = 600


def _rscript(args: list[str], log_path: str) -> tuple[int, int]:
    """Run Rscript; return (exit code, peak RSS in KiB) from wait4 on that one child."""
    with open(log_path, "ab") as log:
        proc = subprocess.Popen(args, stdout=log, stderr=log)
    deadline = time.monotonic() + RSCRIPT_TIMEOUT
    while True:
        pid, status, usage = os.wait4(proc.pid, os.WNOHANG)
        if pid:
            proc.returncode = os.waitstatus_to_exitcode(status)
            return proc.returncode, usage.ru_maxrss
        if time.monotonic() > deadline:
            proc.kill()
            proc.wait()
            raise TimeoutError(f"Rscript ran over {RSCRIPT_TIMEOUT}s")
        time.sleep(0.01)


def run_baseline(storage: Storage, rscript: str, workdir: Path) -> dict:
    """Summarise every run of the bucket lacking a summary, sequentially; return timings."""
    log_path = str(workdir / "baseline-rscript.log")
    phases = {"list": 0.0, "check": 0.0, "download": 0.0, "rscript": 0.0, "upload": 0.0}
    peak_kib, failures, done = 0, 0, 0
    started = time.perf_counter()
    listed = [o.name for o in storage.list("robyn/")]
    runs = sorted({n.rsplit("/", 1)[0] for n in listed if n.endswith("/" + OUTPUT_COLLECT)})
    present = set(listed)
    phases["list"] = time.perf_counter() - started
    for prefix in runs:
        run = RunPath.parse(prefix)
        t = time.perf_counter()
        exists = storage.generation(run.summary_name) is not None
        phases["check"] += time.perf_counter() - t
        if exists:
            continue
        with tempfile.TemporaryDirectory(prefix="mmm-bench-baseline-") as tmp:
            t = time.perf_counter()
            for name in FILES:
                if run.object_name(name) in present:
                    storage.download(run.object_name(name), os.path.join(tmp, name))
            phases["download"] += time.perf_counter() - t
            out = os.path.join(tmp, RUN_SUMMARY_NAME)
            t = time.perf_counter()
            code, kib = _rscript(
                [rscript, "--vanilla", str(SCRIPT), tmp, out, run.revision, run.country, run.timestamp], log_path
            )
            phases["rscript"] += time.perf_counter() - t
            peak_kib = max(peak_kib, kib)
            if code != 0 or not os.path.isfile(out):
                failures += 1
                continue
            t = time.perf_counter()
            storage.upload_file(run.summary_name, out, content_type="application/json")
            phases["upload"] += time.perf_counter() - t
            done += 1
    seconds = time.perf_counter() - started
    return {
        "runs": len(runs),
        "summarised": done,
        "failures": failures,
        "seconds": round(seconds, 3),
        "runs_per_second": round(done / seconds, 4) if seconds > 0 else None,
        "seconds_per_run": round(seconds / done, 4) if done else None,
        "phase_seconds_per_run": {k: round(v / max(done, 1), 4) for k, v in phases.items()},
        "storage_calls": dict(storage.calls),
        "rscript_peak_rss_mib": round(peak_kib / 1024, 1),
    }
