"""The aggregator's restart: how long 1,000 completion events that waited while it was down take to drain.

An aggregator runs (one event applied, so it is consuming), stops, the events are published,
and a new aggregator starts; the clock runs from that start until every event is applied and the
country file lists every run. Production settings (coalescing window, retry policy), on the
benchmark's Pub/Sub emulator (a project of its own) and a fake-gcs-server of its own. The section
``drain`` of ``python -m bench`` (``--events N``, 1,000 by default).
"""

from __future__ import annotations

import datetime as dt
import json
import time
import uuid
from pathlib import Path

from prometheus_client import REGISTRY

from aggregator.testing import RunningAggregator
from bench.data import lay_out_aggregator
from bench.env import start_gcs, storage_host
from local_stack.testing import wait_for
from mmm_backfill.bus import Bus
from mmm_backfill.config import Settings
from mmm_backfill.messages import CompletionEvent, utc_now
from mmm_backfill.runpath import RunPath, country_summary_name
from mmm_backfill.storage import Storage
from mmm_backfill.topology import setup_topology
from worker.summarize.summary import ModelRow, RunData, build_summary

COUNTRY = "de"
#: Seconds to wait for the drain before reporting it incomplete.
DRAIN_TIMEOUT = 600.0
#: How often the drain is checked: the clock's resolution.
POLL_SECONDS = 0.05


def applied() -> float:
    return REGISTRY.get_sample_value("mmm_backfill_aggregator_events_total", {"result": "applied"}) or 0.0


def _summary() -> dict:
    run = RunPath("r100", COUNTRY, "1101_000000")
    models = [ModelRow(f"m{i}", 1 if i == 0 else None, {"nrmse": 0.2 + i / 10, "decomp_rssd": 0.3}) for i in range(3)]
    return build_summary(run, RunData(models=models, training_time_mins=1.0), dt.datetime.now(dt.UTC))


def _events(settings: Settings, paths: list[str]) -> list[tuple[bytes, dict[str, str]]]:
    events = []
    for path in paths:
        run = RunPath.parse(path)
        event = CompletionEvent(
            settings.bucket, path, run.revision, run.country, run.timestamp, "created", 1, 1.0, "bench", utc_now()
        )
        events.append((event.encode(), event.attributes()))
    return events


def measure(workdir: Path, events: int) -> dict:
    bucket = f"bench-drain-{uuid.uuid4().hex[:8]}"
    paths = lay_out_aggregator(workdir / "drain-data" / bucket, events + 1, COUNTRY, _summary())
    server = start_gcs(workdir, "drain-gcs", workdir / "drain-data")
    settings = Settings(project=bucket, bucket=bucket)
    try:
        with storage_host(server.url):
            bus = Bus(settings.project)
            setup_topology(settings, bus, Storage(settings.project, settings.bucket))
            first = RunningAggregator(settings)
            before = applied()
            bus.publish_many(settings.event_topic, _events(settings, paths[:1]))
            warm = bool(wait_for(lambda: applied() - before >= 1, DRAIN_TIMEOUT, POLL_SECONDS))
            first.stop()
            bus.publish_many(settings.event_topic, _events(settings, paths[1:]))
            before, started = applied(), time.perf_counter()
            second = RunningAggregator(settings)
            firsts: dict[str, float] = {}

            def progress() -> bool:
                done = applied() - before
                if done and "first_event_seconds" not in firsts:
                    firsts["first_event_seconds"] = time.perf_counter() - started
                return done >= events

            complete = bool(wait_for(progress, DRAIN_TIMEOUT, POLL_SECONDS))
            seconds = time.perf_counter() - started
            second.stop()
            found = Storage(settings.project, settings.bucket).read(country_summary_name(COUNTRY))
            runs = json.loads(found[0])["total_runs"] if found else 0
            bus.close()
    finally:
        server.stop()
    return {
        "events": events,
        "warm_up_applied": warm,
        "drain_seconds": round(seconds, 2),
        "first_event_seconds": round(firsts.get("first_event_seconds", float("nan")), 2),
        "events_applied": int(applied() - before),
        "country_file_runs": runs,
        "complete": complete and runs == events + 1,
    }
