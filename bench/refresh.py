"""Refresh: the ``enqueue --refresh`` scan against a bare listing, and a refresh's cost per run.

Scan: 100,000 placeholder runs whose summaries cycle through missing, legacy, outdated and current
(state in custom metadata) on the list-only server; the refresh scan, the plain dry run and a bare
listing of the same prefix, storage calls counted (listing pages only, nothing per run).

Per run: ``Handler.handle`` in one process (as a worker does), on real-sized runs, alternating a
fresh backfill (create-only) and a refresh of a legacy summary (copy aside, compare-and-swap) of the
same files. Runs as ``python -m bench.refresh --per-run ...`` in its own process, like the floor,
so the benchmark's own process never embeds R.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time
import uuid
from pathlib import Path
from typing import Any

from bench.data import lay_out_refresh_scan, lay_out_runs, place_legacy_summaries, run_prefix
from bench.env import LiteGcs, start_gcs
from bench.producer import compare_scan
from mmm_backfill.config import Settings

REPO = Path(__file__).resolve().parent.parent


def measure_scan(workdir: Path, runs: int, repeats: int) -> dict:
    """Refresh scan and plain dry run against a bare listing of ``runs`` mixed-state runs."""
    bucket = "bench-refresh-scan"
    data = workdir / "refresh-scan-data"
    layout = lay_out_refresh_scan(data / bucket, runs)
    server = LiteGcs(data, workdir / "refresh-lite-gcs")
    server.start()
    try:
        settings = Settings(project=f"bench-refresh-{uuid.uuid4().hex[:8]}", bucket=bucket)
        refresh = compare_scan(settings, server.url, repeats, server.stats, refresh=True)
        plain = compare_scan(settings, server.url, repeats, refresh=False)
    finally:
        server.stop()
    return {"store": "lite list server", **layout, "refresh": refresh, "plain_dry_run": plain}


def measure_per_run(workdir: Path, templates: list[Path], runs: int) -> dict:
    """Lay out a fresh and a legacy bucket of the same runs; time both in a subprocess."""
    data, uid = workdir / "refresh-runs-data", uuid.uuid4().hex[:6]
    fresh, legacy = f"bench-fresh-{uid}", f"bench-legacy-{uid}"
    lay_out_runs(data / fresh, runs, templates)
    lay_out_runs(data / legacy, runs, templates)
    place_legacy_summaries(data / legacy, runs)
    gcs = start_gcs(workdir, "refresh-gcs", data)
    try:
        env = {**os.environ, "STORAGE_EMULATOR_HOST": gcs.url}
        args = ["--per-run", "--fresh", fresh, "--legacy", legacy, "--runs", str(runs)]
        out = subprocess.run(
            [sys.executable, "-m", "bench.refresh", *args],
            capture_output=True,
            text=True,
            timeout=1800,
            cwd=REPO,
            env=env,
        )
    finally:
        gcs.stop()
    if out.returncode != 0:
        raise RuntimeError(f"bench.refresh exited {out.returncode}: {out.stderr[-2000:]}")
    return json.loads(out.stdout.strip().splitlines()[-1])


def _handle_all(fresh: str, legacy: str, runs: int) -> dict:
    """Alternate a create and a refresh of run i; seconds and storage calls of each, per run."""
    from mmm_backfill.bus import Bus
    from mmm_backfill.messages import SummaryRequest
    from mmm_backfill.runpath import RunPath
    from mmm_backfill.storage import Storage
    from mmm_backfill.topology import setup_topology
    from worker.boundary.rbridge import RSession
    from worker.handler import Handler

    project = f"bench-refresh-{uuid.uuid4().hex[:6]}"
    bus = Bus(project)
    setup_topology(Settings(project=project, bucket=fresh), bus, None)
    session = RSession.shared()
    sides = {}
    for kind, bucket in (("fresh", fresh), ("refresh", legacy)):
        settings = Settings(project=project, bucket=bucket)
        storage = Storage(project, bucket)
        sides[kind] = {"storage": storage, "handler": Handler(settings, storage, bus, session, f"bench-{kind}")}
    times: dict[str, list[float]] = {"fresh": [], "refresh": []}
    outcomes: dict[str, dict[str, int]] = {"fresh": {}, "refresh": {}}
    for i in range(runs):
        run = RunPath.parse(run_prefix(i))
        for kind, side in sides.items():
            generation = side["storage"].generation(run.summary_name) if kind == "refresh" else None
            side["storage"].calls.clear()
            request = SummaryRequest.for_run(side["storage"].bucket_name, run, "bench", replace_generation=generation)
            t = time.perf_counter()
            outcome = side["handler"].handle(request.encode(), request.attributes()).outcome
            times[kind].append(time.perf_counter() - t)
            outcomes[kind][outcome] = outcomes[kind].get(outcome, 0) + 1
            side["calls"] = dict(side["storage"].calls)  # the last run's calls (the same for every run)
    bus.close()
    result = {
        kind: {
            "seconds_per_run_median": round(statistics.median(times[kind]), 4),
            "seconds_per_run_mean": round(statistics.mean(times[kind]), 4),
            "storage_calls_per_run": sides[kind]["calls"],
            "outcomes": outcomes[kind],
        }
        for kind in times
    }
    result["runs"] = runs
    result["refresh_to_fresh"] = round(
        result["refresh"]["seconds_per_run_median"] / result["fresh"]["seconds_per_run_median"], 3
    )
    return result


def refresh_rows(refresh: dict) -> list[tuple[str, str, Any]]:
    """The printed table's rows of the refresh section."""
    out: list[tuple[str, str, Any]] = []
    scan, per_run = refresh.get("scan"), refresh.get("per_run")
    if scan:
        name, r, p = "refresh scan", scan["refresh"], scan["plain_dry_run"]
        out += [
            (name, "runs by state", scan["states"]),
            (name, "bare listing s", r["bare_list_seconds"]),
            (name, "enqueue --refresh --dry-run s", r["dry_run_seconds"]),
            (
                name,
                "ratio to bare listing (refresh / plain dry run)",
                f"{r['ratio_to_bare_list']} / {p['ratio_to_bare_list']}",
            ),
            (name, "storage calls", r["dry_run_calls"]),
            (name, "server requests during the scan", r.get("dry_run_server_requests")),
            (name, "would enqueue", r["would_enqueue"]),
        ]
    if per_run:
        name = f"refresh per run ({per_run['runs']} runs)"
        for kind in ("fresh", "refresh"):
            side = per_run[kind]
            out += [
                (name, f"{kind}: median s per run", side["seconds_per_run_median"]),
                (name, f"{kind}: storage calls per run", side["storage_calls_per_run"]),
            ]
        out.append((name, "refresh / fresh backfill", per_run["refresh_to_fresh"]))
    return out


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--per-run", action="store_true", required=True)
    p.add_argument("--fresh", required=True)
    p.add_argument("--legacy", required=True)
    p.add_argument("--runs", type=int, required=True)
    args = p.parse_args()
    print(json.dumps(_handle_all(args.fresh, args.legacy, args.runs)))


if __name__ == "__main__":
    main()
