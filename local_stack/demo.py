"""``mmm-backfill demo``: a whole backfill on a local stack, from empty emulators to country files.

Starts the emulators, creates the topology, seeds runs, enqueues them, runs workers and the
aggregator, shows progress, prints coverage, stops what it started. Exit 0 only when every run has
a current summary or is accounted for in the dead letters. With ``refresh``, every run is seeded
with a legacy summary first and ``enqueue --refresh`` replaces them all.
"""

from __future__ import annotations

import os
import shutil
import tempfile
import time
from dataclasses import dataclass, field
from typing import Any

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn

from local_stack.fixtures import generate_runs
from local_stack.seed import place_legacy_summaries, plan_runs
from local_stack.stack import LocalStack
from mmm_backfill.bus import Bus
from mmm_backfill.config import Settings
from mmm_backfill.runpath import RUN_SUMMARY_NAME
from mmm_backfill.storage import Storage
from mmm_backfill.summary_state import SummaryState, summary_state
from mmm_backfill.topology import setup_topology

#: Seconds without any progress after which the demo gives up.
STALL_TIMEOUT = 300.0


@dataclass
class DemoResult:
    """Outcome counts of a demo backfill (the ``--json`` output)."""

    runs: int = 0
    enqueued: int = 0
    summarised: int = 0
    dead_lettered: dict[str, int] = field(default_factory=dict)
    per_country: dict[str, dict[str, int]] = field(default_factory=dict)
    country_files: dict[str, int] = field(default_factory=dict)
    wall_seconds: float = 0.0
    complete: bool = False
    refresh: bool = False
    states_before: dict[str, int] = field(default_factory=dict)
    states_after: dict[str, int] = field(default_factory=dict)
    environment: dict[str, str] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return dict(vars(self))

    def tables(self) -> list:
        countries = [
            [c, v["runs"], v["summarised"], v["dead_lettered"], self.country_files.get(c, 0)]
            for c, v in sorted(self.per_country.items())
        ]
        reasons = [[r, n] for r, n in sorted(self.dead_lettered.items())]
        totals = [
            ["runs", self.runs],
            ["enqueued", self.enqueued],
            ["summarised", self.summarised],
            ["dead-lettered", sum(self.dead_lettered.values())],
            ["wall seconds", round(self.wall_seconds, 1)],
            ["complete", self.complete],
        ]
        states = [[s, n, self.states_after.get(s, 0)] for s, n in self.states_before.items()]
        return [
            ("demo backfill" + (" --refresh" if self.refresh else ""), ["", "count"], totals),
            ("summary states", ["state", "before", "after"], states),
            ("per country", ["country", "runs", "summarised", "dead-lettered", "runs in country file"], countries),
            ("dead letters by reason", ["reason", "runs"], reasons),
        ]


def _seed(settings: Settings, runs: int, seed_from: str | None, data_root: str, refresh: bool) -> str:
    """Lay out the bucket's objects under ``data_root/<bucket>/`` for fake-gcs-server to preload."""
    bucket_dir = os.path.join(data_root, settings.bucket)
    os.makedirs(bucket_dir, exist_ok=True)
    if seed_from:
        shutil.copytree(seed_from, bucket_dir, dirs_exist_ok=True)
    if runs:
        generate_runs(plan_runs(runs, bucket_dir))
    if refresh:
        place_legacy_summaries(bucket_dir)
    return bucket_dir


class _DeadLetterWatch:
    """Counts dead letters by peeking (pull, then nack) so they stay in place for ``replay``."""

    def __init__(self, bus: Bus, subscription: str) -> None:
        self.bus, self.subscription = bus, subscription
        self.reasons: dict[str, str] = {}

    def poll(self) -> dict[str, str]:
        received = self.bus.pull(self.subscription, 100, timeout=1.0)
        for message in received:
            key = message.attributes.get("run_path") or message.message_id
            self.reasons[key] = message.attributes.get("error_reason", "max_delivery_attempts")
        self.bus.nack(self.subscription, [m.ack_id for m in received])
        return self.reasons


def _summarised(storage: Storage, current_only: bool) -> set[str]:
    """Runs with a summary; with ``current_only`` (a refresh), a legacy or outdated one does not count."""
    suffix = "/" + RUN_SUMMARY_NAME
    return {
        o.name[: -len(suffix)]
        for o in storage.list("robyn/")
        if o.name.endswith(suffix) and (not current_only or summary_state(o.metadata) is SummaryState.CURRENT)
    }


def _states(storage: Storage) -> dict[str, int]:
    from producer.enqueue import list_run_objects, run_prefixes
    from producer.scan import scan

    return scan(list_run_objects(storage, run_prefixes(storage, None, None))).state_counts()


def run_demo(
    settings: Settings,
    runs: int,
    workers: int,
    seed_from: str | None = None,
    keep: bool = False,
    console: Console | None = None,
    refresh: bool = False,
) -> DemoResult:
    """Run a complete local backfill (``refresh``: over legacy summaries) and return its counts."""
    console = console or Console(stderr=True)
    started = time.monotonic()
    data_root = tempfile.mkdtemp(prefix="mmm-demo-data-")
    console.print(f"seeding {runs} generated runs" + (f" and {seed_from}" if seed_from else ""))
    _seed(settings, runs, seed_from, data_root, refresh)
    stack = LocalStack(settings, data_dir=data_root)
    result = DemoResult(refresh=refresh)
    try:
        stack.start_emulators()
        storage, bus = Storage(settings.project, settings.bucket), Bus(settings.project)
        setup_topology(settings, bus, storage)
        from producer.enqueue import enqueue

        result.states_before = _states(storage)
        report = enqueue(
            settings,
            storage,
            bus,
            revision=None,
            country=None,
            limit=None,
            dry_run=False,
            show_progress=False,
            refresh=refresh,
        )
        result.enqueued = report.enqueued
        result.runs = report.runs_seen
        console.print(f"enqueued {report.enqueued} of {report.runs_seen} runs; starting {workers} worker process(es)")
        stack.spawn("worker", "--processes", str(workers), log_name="worker")
        stack.spawn("aggregator", log_name="aggregator")
        _follow(result, storage, bus, settings, console)
        _settle_country_files(result, storage, settings)
        result.states_after = _states(storage)
        bus.close()
    finally:
        result.wall_seconds = time.monotonic() - started
        result.environment = stack.env
        if keep:
            console.print("stack left running; point commands at it with:")
            for key, value in stack.env.items():
                console.print(f"  export {key}={value}")
        else:
            stack.stop()
            shutil.rmtree(data_root, ignore_errors=True)
    return result


def _follow(result: DemoResult, storage: Storage, bus: Bus, settings: Settings, console: Console) -> None:
    """Show progress until every run is summarised or dead-lettered (or progress stalls)."""
    watch = _DeadLetterWatch(bus, settings.dead_letter_subscription)
    all_runs = {o.name.rsplit("/", 1)[0] for o in storage.list("robyn/") if o.name.endswith("/OutputCollect.RDS")}
    columns = (
        TextColumn("backfill"),
        BarColumn(),
        MofNCompleteColumn(),
        TextColumn("{task.fields[dead]} dead"),
        TimeElapsedColumn(),
        TimeRemainingColumn(),
    )
    last_change, done = time.monotonic(), 0
    with Progress(*columns, console=console, transient=False) as progress:
        task = progress.add_task("runs", total=len(all_runs), dead=0)
        while True:
            summarised = _summarised(storage, result.refresh) & all_runs
            dead = {p: r for p, r in watch.poll().items() if p not in summarised}
            finished = len(summarised) + len(dead)
            progress.update(task, completed=finished, dead=len(dead))
            if finished != done:
                done, last_change = finished, time.monotonic()
            if finished >= len(all_runs) or time.monotonic() - last_change > STALL_TIMEOUT:
                break
            time.sleep(0.5)
    result.summarised = len(summarised)
    result.complete = finished >= len(all_runs)
    for reason in dead.values():
        result.dead_lettered[reason] = result.dead_lettered.get(reason, 0) + 1
    for path in all_runs:
        country = path.split("/")[2]
        row = result.per_country.setdefault(country, {"runs": 0, "summarised": 0, "dead_lettered": 0})
        row["runs"] += 1
        row["summarised"] += path in summarised
        row["dead_lettered"] += path in dead


def _settle_country_files(result: DemoResult, storage: Storage, settings: Settings, timeout: float = 120.0) -> None:
    """Wait until each country file says what a fresh build from the bucket's summaries says."""
    from aggregator.cache import SummaryCache
    from aggregator.country import same_content
    from aggregator.rebuild import build_from_bucket, read_country_file

    cache, deadline = SummaryCache(storage, max_bytes=settings.max_summary_bytes), time.monotonic() + timeout
    while True:
        settled = True
        for country in result.per_country:
            document = read_country_file(storage, country, settings.max_country_file_bytes)[0] or {}
            result.country_files[country] = document.get("total_runs", 0)
            settled = settled and same_content(document, build_from_bucket(storage, country, cache).document)
        if settled:
            return
        if time.monotonic() > deadline:
            result.complete = False
            return
        time.sleep(settings.coalesce_seconds)
