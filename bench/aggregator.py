"""The aggregator: a burst of completion events for one country; rebuilds, summary downloads, time.

``run_aggregator`` runs in a thread of this process so its Prometheus counters (rebuilds, summaries
fetched, events applied) can be read; its Storage is wrapped to count the calls it makes.
"""

from __future__ import annotations

import json
import threading
import time
import uuid
from pathlib import Path

from prometheus_client import REGISTRY

from bench.data import lay_out_aggregator
from bench.env import start_gcs, storage_host
from mmm_backfill.bus import Bus
from mmm_backfill.config import Settings
from mmm_backfill.messages import CompletionEvent, utc_now
from mmm_backfill.runpath import RUN_SUMMARY_NAME, RunPath, country_summary_name
from mmm_backfill.storage import Storage
from mmm_backfill.topology import setup_topology

COUNTRY = "de"
#: Seconds to wait for every event to be applied.
APPLY_TIMEOUT = 600.0
REBUILD_RESULTS = ("written", "unchanged", "failed", "conflict")


def _counters() -> dict[str, float]:
    def value(name: str, labels: dict[str, str] | None = None) -> float:
        return REGISTRY.get_sample_value(name, labels or {}) or 0.0

    out = {f"rebuilds_{r}": value("mmm_backfill_aggregator_rebuilds_total", {"result": r}) for r in REBUILD_RESULTS}
    out["summaries_fetched"] = value("mmm_backfill_aggregator_summaries_fetched_total")
    for result in ("applied", "retried", "returned", "malformed", "other_bucket"):
        out[f"events_{result}"] = value("mmm_backfill_aggregator_events_total", {"result": result})
    return out


class _CountingStorage(Storage):
    """Storage that remembers every instance, so the aggregator's calls can be read afterwards."""

    instances: list[Storage] = []

    def __init__(self, *args, **kwargs) -> None:  # noqa: ANN002, ANN003
        super().__init__(*args, **kwargs)
        _CountingStorage.instances.append(self)


def measure(workdir: Path, events: int, template: dict) -> dict:
    import aggregator.service as service

    bucket = f"bench-agg-{uuid.uuid4().hex[:8]}"
    data = workdir / "aggregator-data"
    paths = lay_out_aggregator(data / bucket, events, COUNTRY, template)
    t = time.perf_counter()
    server = start_gcs(workdir, "aggregator-gcs", data)
    preload = time.perf_counter() - t
    settings = Settings(project=bucket, bucket=bucket)
    result: dict = {"events": events, "country": COUNTRY, "preload_seconds": round(preload, 2)}
    saved_storage = service.Storage
    stop = threading.Event()
    try:
        with storage_host(server.url):
            bus = Bus(settings.project)
            storage = Storage(settings.project, settings.bucket)
            setup_topology(settings, bus, storage)
            generations = {o.name: o.generation for o in storage.list("robyn/")}
            service.Storage = _CountingStorage
            _CountingStorage.instances = []
            before = _counters()
            thread = threading.Thread(
                target=service.run_aggregator, args=(settings, stop), name="bench-aggregator", daemon=True
            )
            thread.start()
            time.sleep(1.0)  # the aggregator starts pulling
            messages = []
            for path in paths:
                run = RunPath.parse(path)
                event = CompletionEvent(
                    bucket,
                    path,
                    run.revision,
                    run.country,
                    run.timestamp,
                    "created",
                    generations.get(f"{path}/{RUN_SUMMARY_NAME}", 0),
                    1.0,
                    "bench",
                    utc_now(),
                )
                messages.append((event.encode(), event.attributes()))
            t0 = time.perf_counter()
            bus.publish_many(settings.event_topic, messages)
            result["publish_seconds"] = round(time.perf_counter() - t0, 3)
            deadline = time.monotonic() + APPLY_TIMEOUT
            while _counters()["events_applied"] - before["events_applied"] < events and time.monotonic() < deadline:
                if not thread.is_alive():
                    break
                time.sleep(0.05)
            result["seconds"] = round(time.perf_counter() - t0, 3)
            time.sleep(settings.coalesce_seconds + 1.0)  # any late rebuild shows up in the counts
            stop.set()
            thread.join(timeout=120)
            after = _counters()
            delta = {k: int(after[k] - before[k]) for k in after}
            found = storage.read(country_summary_name(COUNTRY))
            document = json.loads(found[0]) if found else {}
            bus.close()
    finally:
        stop.set()
        service.Storage = saved_storage
        server.stop()
    calls: dict[str, int] = {}
    for instance in _CountingStorage.instances:
        for op, n in instance.calls.items():
            calls[op] = calls.get(op, 0) + n
    rebuilds = sum(delta[f"rebuilds_{r}"] for r in REBUILD_RESULTS)
    result.update(
        {
            "events_applied": delta["events_applied"],
            "rebuilds": rebuilds,
            "rebuilds_by_result": {r: delta[f"rebuilds_{r}"] for r in REBUILD_RESULTS if delta[f"rebuilds_{r}"]},
            "summary_downloads": delta["summaries_fetched"],
            "downloads_per_summary": round(delta["summaries_fetched"] / events, 3) if events else None,
            "storage_calls": calls,
            "country_file_runs": document.get("total_runs"),
            "complete": delta["events_applied"] >= events and document.get("total_runs") == events,
        }
    )
    return result
