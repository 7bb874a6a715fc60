"""The producer: ``enqueue --dry-run`` against a bare listing of the same prefix, calls, publish rate."""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable
from pathlib import Path

from bench.data import lay_out_producer
from bench.env import LiteGcs, start_gcs, storage_host
from mmm_backfill.bus import Bus
from mmm_backfill.config import Settings
from mmm_backfill.storage import Storage
from mmm_backfill.topology import setup_topology


def _diff(after: dict[str, int], before: dict[str, int]) -> dict[str, int]:
    return {k: v - before.get(k, 0) for k, v in after.items() if v - before.get(k, 0)}


def _per_run_calls(calls: dict[str, int]) -> int:
    """Calls that are not listing pages: anything per run (stat, read, download...)."""
    return sum(v for k, v in calls.items() if k != "list_page")


def compare_scan(
    settings: Settings,
    url: str,
    repeats: int,
    server_stats: Callable[[], dict[str, int]] | None = None,
    refresh: bool = False,
) -> dict:
    """Alternate bare listings and dry-run enqueues ``repeats`` times; keep the fastest of each.

    ``refresh``: the dry runs are ``enqueue --refresh`` scans (summary states from the listing).
    """
    from producer.enqueue import enqueue

    bare, dry = [], []
    result: dict = {}
    for _ in range(repeats):
        with storage_host(url):
            storage = Storage(settings.project, settings.bucket)
        t = time.perf_counter()
        objects = sum(1 for _ in storage.list("robyn/"))
        bare.append(time.perf_counter() - t)
        result["objects_listed"], result["bare_calls"] = objects, dict(storage.calls)

        with storage_host(url):
            storage = Storage(settings.project, settings.bucket)
        before = server_stats() if server_stats else {}
        t = time.perf_counter()
        report = enqueue(
            settings,
            storage,
            None,
            revision=None,
            country=None,
            limit=None,
            dry_run=True,
            show_progress=False,
            refresh=refresh,
        )
        dry.append(time.perf_counter() - t)
        if server_stats:
            result["dry_run_server_requests"] = _diff(server_stats(), before)
        result["dry_run_calls"] = dict(storage.calls)
        result["runs_seen"], result["missing"] = report.runs_seen, report.missing
        result["states"], result["would_enqueue"] = report.states, report.would_enqueue
    result.update(
        {
            "bare_list_seconds": round(min(bare), 3),
            "dry_run_seconds": round(min(dry), 3),
            "bare_list_seconds_all": [round(x, 3) for x in bare],
            "dry_run_seconds_all": [round(x, 3) for x in dry],
            "ratio_to_bare_list": round(min(dry) / min(bare), 3),
            "per_run_calls": _per_run_calls(result["dry_run_calls"]),
            "extra_list_pages": result["dry_run_calls"].get("list_page", 0) - result["bare_calls"].get("list_page", 0),
        }
    )
    return result


def measure_publish(settings: Settings, url: str, limit: int) -> dict:
    """A real enqueue (listing and publishing) of up to ``limit`` missing runs into a fresh topic."""
    from producer.enqueue import enqueue

    bus = Bus(settings.project)
    try:
        setup_topology(settings, bus, None)
        with storage_host(url):
            storage = Storage(settings.project, settings.bucket)
        t = time.perf_counter()
        report = enqueue(
            settings, storage, bus, revision=None, country=None, limit=limit, dry_run=False, show_progress=False
        )
        seconds = time.perf_counter() - t
    finally:
        bus.close()
    return {
        "enqueued": report.enqueued,
        "enqueue_seconds": round(seconds, 3),
        "publish_seconds": round(report.publish_seconds, 3),
        "publish_per_second": round(report.publish_per_second or 0.0, 1),
    }


def measure_lite(workdir: Path, runs: int, repeats: int, publish: int) -> dict:
    """``runs`` placeholder runs on the list-only server (fake-gcs-server cannot hold 100k in time)."""
    bucket = "bench-producer-lite"
    data = workdir / "producer-lite-data"
    t = time.perf_counter()
    layout = lay_out_producer(data / bucket, runs)
    layout_seconds = time.perf_counter() - t
    server = LiteGcs(data, workdir / "lite-gcs")
    t = time.perf_counter()
    server.start()
    start_seconds = time.perf_counter() - t
    try:
        settings = Settings(project=f"bench-producer-{uuid.uuid4().hex[:8]}", bucket=bucket)
        result = {"store": "lite list server", **layout, "layout_seconds": round(layout_seconds, 2)}
        result["server_start_seconds"] = round(start_seconds, 2)
        result.update(compare_scan(settings, server.url, repeats, server.stats))
        if publish:
            result["publish"] = measure_publish(settings, server.url, publish)
    finally:
        server.stop()
    return result


def measure_fake_gcs(workdir: Path, runs: int) -> dict:
    """The same comparison on fake-gcs-server, at a size its preload and listing can take."""
    bucket = "bench-producer-fgcs"
    data = workdir / "producer-fgcs-data"
    layout = lay_out_producer(data / bucket, runs)
    t = time.perf_counter()
    server = start_gcs(workdir, "producer-gcs", data)
    start_seconds = time.perf_counter() - t
    try:
        settings = Settings(project=f"bench-producer-{uuid.uuid4().hex[:8]}", bucket=bucket)
        result = {"store": "fake-gcs-server", **layout, "preload_seconds": round(start_seconds, 2)}
        result.update(compare_scan(settings, server.url, 1))
    finally:
        server.stop()
    return result
