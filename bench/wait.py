"""What following a backfill costs (``enqueue --wait``), against one bare listing of the same runs.

A bucket of ``runs`` placeholder runs on the list-only server; the completion events of all of them
(and as many again of another backfill, which the emulator delivers too since it does not apply
subscription filters) published to the event topic as workers would. The follower then drains its
subscription: pulls and acks made, their time, and the tracker's bookkeeping, beside one bare
listing of the runs (what a wait that polled the bucket would pay per interval, and what one stalled
wait pays once). An idle round (two empty pulls) is timed too: that is the cost per interval while
nothing happens.
"""

from __future__ import annotations

import time
import uuid
from pathlib import Path

from bench.data import lay_out_producer, producer_run_prefix
from bench.env import LiteGcs, storage_host
from mmm_backfill.bus import Bus
from mmm_backfill.config import Settings
from mmm_backfill.messages import BACKFILL_ID_ATTRIBUTE, CompletionEvent, utc_now
from mmm_backfill.runpath import RunPath
from mmm_backfill.storage import Storage
from mmm_backfill.topology import setup_topology
from producer.follow import Follower
from producer.tracker import Tracker

#: Seconds allowed for the follower to see every event.
DRAIN_TIMEOUT = 600.0


class _CountingBus(Bus):
    """A Bus that counts the pulls and acks the follower makes."""

    def __init__(self, project: str) -> None:
        super().__init__(project)
        self.requests = {"pull": 0, "ack": 0}

    def pull(self, *args, **kwargs):  # noqa: ANN002, ANN003, ANN201
        self.requests["pull"] += 1
        return super().pull(*args, **kwargs)

    def ack(self, *args, **kwargs):  # noqa: ANN002, ANN003, ANN201
        self.requests["ack"] += 1
        return super().ack(*args, **kwargs)


def measure(workdir: Path, runs: int) -> dict:
    bucket = f"bench-wait-{uuid.uuid4().hex[:8]}"
    data = workdir / "wait-data"
    lay_out_producer(data / bucket, runs, summarised_every=runs + 1)
    server = LiteGcs(data, workdir / "wait-lite-gcs")
    server.start()
    try:
        with storage_host(server.url):
            storage = Storage("bench", bucket)
        started = time.perf_counter()
        listed = sum(1 for _ in storage.list("robyn/"))
        bare = {"seconds": round(time.perf_counter() - started, 3), "objects": listed}
        bare["pages"] = storage.calls.get("list_page", 0)
    finally:
        server.stop()
    settings = Settings(project=f"bench-wait-{uuid.uuid4().hex[:8]}", bucket=bucket)
    follow = _follow(settings, [RunPath.parse(producer_run_prefix(i)) for i in range(runs)])
    return {
        "runs": runs,
        "bare_listing": bare,
        "follow": follow,
        "ratio_to_bare_listing": round(follow["seconds"] / bare["seconds"], 3),
    }


def _follow(settings: Settings, runs: list[RunPath]) -> dict:
    bus = _CountingBus(settings.project)
    backfill_id, other = uuid.uuid4().hex, uuid.uuid4().hex
    try:
        setup_topology(settings, bus, None)
        with Follower(settings, bus, backfill_id) as follower:
            for owner in (backfill_id, other):
                bus.publish_many(settings.event_topic, [_event(settings, run, owner) for run in runs])
            tracker = Tracker(runs, time.monotonic())
            bus.requests.update(pull=0, ack=0)
            started = time.perf_counter()
            while tracker.pending and time.perf_counter() - started < DRAIN_TIMEOUT:
                for update in follower.poll(2.0):
                    tracker.summarised(update.run_path, update.outcome, update.created_at, time.monotonic())
            seconds = time.perf_counter() - started
            drained = dict(bus.requests)
            idle_started = time.perf_counter()
            follower.poll(2.0)
            idle = time.perf_counter() - idle_started
    finally:
        bus.close()
    return {
        "seconds": round(seconds, 3),
        "settled": tracker.settled,
        "requests": drained,
        "seconds_per_pull": round(seconds / max(1, drained["pull"]), 4),
        "foreign_dropped": follower.foreign,
        "idle_round_seconds": round(idle, 3),
        "idle_round_requests": 2,
    }


def _event(settings: Settings, run: RunPath, backfill_id: str) -> tuple[bytes, dict[str, str]]:
    event = CompletionEvent(
        settings.bucket, run.prefix, run.revision, run.country, run.timestamp, "created", 1, 0.1, "bench", utc_now()
    )
    return event.encode(), {**event.attributes(), BACKFILL_ID_ATTRIBUTE: backfill_id}


def wait_rows(wait: dict) -> list[tuple[str, str, object]]:
    """The printed table's rows of the wait section."""
    if not wait:
        return []
    name, follow, bare = f"wait ({wait['runs']:,} runs)", wait["follow"], wait["bare_listing"]
    return [
        (name, "bare listing: s / pages", f"{bare['seconds']} / {bare['pages']}"),
        (name, "follower: s to see every event", follow["seconds"]),
        (name, "follower: pulls / acks", f"{follow['requests']['pull']} / {follow['requests']['ack']}"),
        (name, "follower: s per pull (with its events)", follow["seconds_per_pull"]),
        (name, "follower / bare listing", wait["ratio_to_bare_listing"]),
        (name, "other backfill's events dropped", follow["foreign_dropped"]),
        (name, "idle round: requests / s", f"{follow['idle_round_requests']} / {follow['idle_round_seconds']}"),
    ]
