"""Helpers of the aggregator tests: realistic run summaries, completion events, a running aggregator."""

from __future__ import annotations

import datetime as dt
import json
import time
from concurrent.futures import ThreadPoolExecutor

import pytest
from prometheus_client import REGISTRY

from aggregator.testing import RunningAggregator
from mmm_backfill.messages import CompletionEvent
from mmm_backfill.runpath import RunPath, country_summary_name
from worker.summarize.summary import ModelRow, RunData, build_summary

CREATED = dt.datetime(2026, 11, 29, 12, 0, 5, tzinfo=dt.UTC)


def make_summary(run: RunPath, nrmse: float | None = 0.2, fronts: int = 1) -> dict:
    """A summary as a worker writes it: three models, the first the best, ``fronts`` of them on a front."""
    models = [
        ModelRow(f"{run.timestamp}_m{i}", i + 1 if i < fronts else None, {"nrmse": n, "decomp_rssd": 0.3})
        for i, n in enumerate([nrmse, 0.5, 0.6])
    ]
    return build_summary(run, RunData(models=models, training_time_mins=1.5), CREATED)


def event_for(settings, run: RunPath) -> CompletionEvent:
    return CompletionEvent(
        bucket=settings.bucket,
        run_path=run.prefix,
        revision=run.revision,
        country=run.country,
        timestamp=run.timestamp,
        outcome="created",
        generation=1,
        duration_seconds=1.0,
        worker="test",
        completed_at="2026-11-29T12:00:05.000Z",
    )


class Kit:
    """The test's bucket and topics seen from the aggregator's side: write summaries, publish events, read files."""

    def __init__(self, settings, storage, bus) -> None:
        self.settings, self.storage, self.bus = settings, storage, bus
        self.started: list[RunningAggregator] = []

    def put_summary(self, run: RunPath, nrmse: float | None = 0.2, fronts: int = 1) -> dict:
        summary = make_summary(run, nrmse, fronts)
        self.storage.write(run.summary_name, json.dumps(summary).encode(), 0)
        return summary

    def put_summaries(self, runs: list[RunPath], nrmse: float = 0.2) -> None:
        with ThreadPoolExecutor(8) as pool:
            list(pool.map(lambda run: self.put_summary(run, nrmse), runs))

    def publish(self, runs: list[RunPath]) -> None:
        events = [event_for(self.settings, run) for run in runs]
        self.bus.publish_many(self.settings.event_topic, [(e.encode(), e.attributes()) for e in events])

    def read_country(self, country: str) -> dict | None:
        found = self.storage.read(country_summary_name(country))
        return None if found is None else json.loads(found[0])

    def runs_in_file(self, country: str) -> set[str]:
        document = self.read_country(country)
        return set() if document is None else {run["run_path"] for run in document["runs"]}

    def pending_runs(self, timeout: float = 5.0) -> set[str]:
        """Run paths of the events still in the subscription (pulled and nacked, so they stay)."""
        found: set[str] = set()
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            received = self.bus.pull(self.settings.event_subscription, 1000, timeout=2)
            found |= {json.loads(r.data)["run_path"] for r in received}
            self.bus.nack(self.settings.event_subscription, [r.ack_id for r in received])
            if not received and found:
                break
        return found

    @staticmethod
    def wait_for(predicate, timeout: float = 30.0, interval: float = 0.1) -> bool:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if predicate():
                return True
            time.sleep(interval)
        return predicate()

    @staticmethod
    def counter(name: str, **labels: str) -> float:
        """Current value of a Prometheus counter (0 before its first increment)."""
        return REGISTRY.get_sample_value(f"{name}_total", labels) or 0.0

    def rebuilds(self) -> float:
        """Rebuilds so far in this process, whatever their result."""
        results = ("written", "unchanged", "failed", "conflict")
        return sum(self.counter("mmm_backfill_aggregator_rebuilds", result=r) for r in results)

    def event(self, run: RunPath, bucket: str | None = None) -> CompletionEvent:
        return event_for(self.settings.replace(bucket=bucket), run)

    def start(self, **overrides) -> RunningAggregator:
        """Start an aggregator on the test's settings, changed by ``overrides``."""
        self.started.append(RunningAggregator(self.settings.replace(**overrides)))
        return self.started[-1]


@pytest.fixture
def kit(settings, storage, bus, topology):
    """A Kit on fresh topics and bucket; every aggregator it started is stopped at teardown."""
    tools = Kit(settings, storage, bus)
    yield tools
    for aggregator in tools.started:
        aggregator.stop()
