"""The stream check's cost against the whole read of the same run (the check must cost under 10 % of it).

Runs in this process, with no emulator: each run's files are read exactly as a worker reads them
(``read_run``: bounds, decompression, the check, R's unserialize, the Robyn reading), and the check
alone is timed on the same decompressed streams. The best of ``repeats`` rounds counts for each.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from local_stack.samples import sample_run_dirs


def _best(fn: Callable[[], object], repeats: int) -> float:
    times = []
    for _ in range(repeats):
        started = time.perf_counter()
        fn()
        times.append(time.perf_counter() - started)
    return min(times)


def measure(templates: list[Path], repeats: int = 5) -> dict[str, Any]:
    from worker.boundary.rds_file import read_serialized
    from worker.boundary.rds_stream import check_stream
    from worker.summarize.extract import files_in_dir, read_run

    rows = []
    samples = sample_run_dirs()
    for run in [*samples, *templates[:1]]:
        files = files_in_dir(str(run))
        streams = [read_serialized(path) for name, path in files.items() if name.endswith(".RDS")]
        read_run(files)  # R's start-up and first-use costs are not the run's
        read = _best(lambda files=files: read_run(files), repeats)
        check = _best(lambda streams=streams: [check_stream(s) for s in streams], repeats)
        rows.append(
            {
                "run": "/".join(run.parts[-3:]) if run in samples else "generated, padded",
                "stream_mb": round(sum(len(s) for s in streams) / 1e6, 1),
                "check_seconds": round(check, 4),
                "read_seconds": round(read, 4),
                "ratio": round(check / read, 4),
            }
        )
    return {
        "runs": rows,
        "ratio": round(sum(r["check_seconds"] for r in rows) / sum(r["read_seconds"] for r in rows), 4),
        "max_ratio": max(r["ratio"] for r in rows),
    }
