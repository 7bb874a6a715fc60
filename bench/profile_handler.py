"""Where a worker's time goes: ``Handler.handle`` on real-sized runs, each stage timed by wrapping it.

``python -m bench.profile_handler [--runs 8] [--size-mb 40] [--cprofile FILE]``: starts its own
emulators, preloads the runs, handles one request per run in this process (as a worker does) and
prints seconds per run for each stage (storage calls, Python decompression, R work, event publish).
"""

from __future__ import annotations

import argparse
import cProfile
import functools
import json
import shutil
import statistics
import tempfile
import time
from collections import defaultdict
from pathlib import Path

from bench.data import default_cache_dir, lay_out_runs, run_prefix, template_runs
from bench.env import start_gcs, start_pubsub

TIMES: dict[str, list[float]] = defaultdict(list)


def timed(owner: object, attr: str, label: str) -> None:
    fn = getattr(owner, attr)

    @functools.wraps(fn)
    def wrapper(*args, **kwargs):  # noqa: ANN002, ANN003, ANN202
        t = time.perf_counter()
        try:
            return fn(*args, **kwargs)
        finally:
            TIMES[label].append(time.perf_counter() - t)

    setattr(owner, attr, wrapper)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--runs", type=int, default=8)
    p.add_argument("--size-mb", type=int, default=40)
    p.add_argument("--cprofile", help="also write a cProfile of the handling thread here")
    args = p.parse_args()

    import rpy2.rinterface as ri

    import worker.extract as extract
    import worker.rbridge as rbridge
    from mmm_backfill.bus import Bus
    from mmm_backfill.config import Settings
    from mmm_backfill.messages import SummaryRequest
    from mmm_backfill.runpath import RunPath
    from mmm_backfill.storage import Storage
    from mmm_backfill.topology import setup_topology
    from worker.handler import Handler

    workdir = Path(tempfile.mkdtemp(prefix="mmm-bench-profile-"))
    templates = template_runs(default_cache_dir(), args.size_mb)
    settings = Settings(project="bench-profile", bucket="bench-profile")
    lay_out_runs(workdir / "data" / settings.bucket, args.runs, templates)
    pubsub = start_pubsub(workdir)
    gcs = start_gcs(workdir, "gcs", workdir / "data")
    import os

    os.environ["STORAGE_EMULATOR_HOST"] = gcs.url
    try:
        bus, storage = Bus(settings.project), Storage(settings.project, settings.bucket)
        setup_topology(settings, bus, storage)
        session = rbridge.RSession.shared()
        handler = Handler(settings, storage, bus, session, "profile")
        # _list_page, not list: list is a generator, its call returns before any page is fetched
        for attr in ("generation", "_list_page", "download", "write"):
            timed(storage, attr, f"storage.{attr}")
        timed(bus, "publish_and_wait", "bus.publish_and_wait (event)")
        timed(extract, "read_serialized", "python decompress (read_serialized)")
        timed(ri.ByteSexpVector, "from_memoryview", "bytes to R (ByteSexpVector.from_memoryview)")
        timed(session, "inspect", "R unserialize + extract (inspect)")
        timed(extract, "build_summary", "build_summary")
        timed(handler, "handle", "handle (total)")
        profiler = cProfile.Profile() if args.cprofile else None
        for i in range(args.runs):
            run = RunPath.parse(run_prefix(i))
            request = SummaryRequest.for_run(settings.bucket, run, "profile")
            if profiler:
                profiler.enable()
            outcome = handler.handle(request.encode(), request.attributes())
            if profiler:
                profiler.disable()
            assert outcome.outcome == "created", outcome
        if profiler:
            profiler.dump_stats(args.cprofile)
        report = {
            label: {
                "calls_per_run": round(len(v) / args.runs, 2),
                "seconds_per_run": round(sum(v) / args.runs, 4),
                "median_call": round(statistics.median(v), 4),
            }
            for label, v in sorted(TIMES.items(), key=lambda kv: -sum(kv[1]))
        }
        print(json.dumps(report, indent=2))
        bus.close()
    finally:
        gcs.stop()
        pubsub.stop()
        shutil.rmtree(workdir, ignore_errors=True)


if __name__ == "__main__":
    main()
