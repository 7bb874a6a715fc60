"""The floor: bare download + ``readRDS`` of each run's OutputCollect.RDS in one embedded R, sequentially.

Also times the worker's own stages on the same files (Python decompression, handing the bytes to
R, ``unserialize``, reading the models, the whole summary), so a gap to the floor can be placed.
Run in its own process (``python -m bench.floor``) so its embedded R and memory stay out of the
benchmark's process; prints one JSON object on stdout.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import tempfile
import time

from mmm_backfill.runpath import OUTPUT_COLLECT, RUN_FILES, RunPath
from mmm_backfill.storage import Storage


def _peak_rss_mib() -> float:
    with open("/proc/self/status") as fh:
        for line in fh:
            if line.startswith("VmHWM:"):
                return round(int(line.split()[1]) / 1024, 1)
    return 0.0


def _timed(fn, *args):  # noqa: ANN001, ANN202
    t = time.perf_counter()
    result = fn(*args)
    return result, time.perf_counter() - t


def _read_rds(path: str) -> None:
    """``readRDS`` in the embedded R; the object is dropped at once."""
    import rpy2.rinterface as ri

    ri.baseenv["readRDS"](path)


def measure(storage: Storage, breakdown_runs: int) -> dict:
    import rpy2.rinterface as ri

    from worker.boundary.rbridge import RObject, RSession
    from worker.boundary.rds_file import read_serialized
    from worker.summarize import robyn
    from worker.summarize.extract import summarize_files

    _, r_start = _timed(RSession.shared)
    session = RSession.shared()
    listed = {o.name: o for o in storage.list("robyn/")}
    runs = sorted(n.rsplit("/", 1)[0] for n in listed if n.endswith("/" + OUTPUT_COLLECT))
    download, read_rds = [], []
    stages: dict[str, list[float]] = {
        "download_all_files": [],
        "python_decompress": [],
        "to_r_bytes": [],
        "unserialize": [],
        "read_models": [],
        "summarize_files": [],
    }
    started = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="mmm-bench-floor-") as tmp:
        for prefix in runs:
            path = os.path.join(tmp, OUTPUT_COLLECT)
            _, t_dl = _timed(storage.download, f"{prefix}/{OUTPUT_COLLECT}", path)
            _, t_read = _timed(session.run, _read_rds, path)
            download.append(t_dl)
            read_rds.append(t_read)
            os.remove(path)
        floor_seconds = time.perf_counter() - started
        for prefix in runs[:breakdown_runs]:
            run = RunPath.parse(prefix)
            files: dict[str, str] = {}
            t = time.perf_counter()
            for name in RUN_FILES:
                if run.object_name(name) in listed:
                    files[name] = os.path.join(tmp, name)
                    storage.download(run.object_name(name), files[name])
            stages["download_all_files"].append(time.perf_counter() - t)
            serialized, t_dec = _timed(read_serialized, files[OUTPUT_COLLECT])
            raw, t_bytes = _timed(session.run, lambda s=serialized: ri.ByteSexpVector.from_memoryview(memoryview(s)))
            root, t_unser = _timed(session.run, lambda r=raw: ri.baseenv["unserialize"](r))
            _, t_models = _timed(session.run, lambda r=root: robyn.read_models(RObject(r, OUTPUT_COLLECT)))
            del raw, root, serialized
            _, t_sum = _timed(summarize_files, run, files, session)
            stages["python_decompress"].append(t_dec)
            stages["to_r_bytes"].append(t_bytes)
            stages["unserialize"].append(t_unser)
            stages["read_models"].append(t_models)
            stages["summarize_files"].append(t_sum)
            for path in files.values():
                os.remove(path)
    n = len(runs)
    return {
        "runs": n,
        "r_start_seconds": round(r_start, 3),
        "seconds": round(floor_seconds, 3),
        "seconds_per_run": round(floor_seconds / n, 4) if n else None,
        "download_seconds_per_run": round(statistics.fmean(download), 4) if n else None,
        "read_rds_seconds_per_run": round(statistics.fmean(read_rds), 4) if n else None,
        "worker_stages_seconds_per_run": {k: round(statistics.median(v), 4) if v else None for k, v in stages.items()},
        "breakdown_runs": min(n, breakdown_runs),
        "peak_rss_mib": _peak_rss_mib(),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description="bare download + readRDS floor")
    parser.add_argument("--project", required=True)
    parser.add_argument("--bucket", required=True)
    parser.add_argument("--breakdown-runs", type=int, default=5)
    args = parser.parse_args()
    result = measure(Storage(args.project, args.bucket), args.breakdown_runs)
    print(json.dumps(result))


if __name__ == "__main__":
    main()
