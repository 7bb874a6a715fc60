"""Aggregators racing on one event subscription under a burst of events: no lost update, files equal a rebuild."""

from __future__ import annotations

import datetime as dt
import json
import logging
import random
import threading
import time
from concurrent.futures import ThreadPoolExecutor

import pytest
from backfill_kit import Figure, country_runs, mismatched_countries, read_country_file, stored_and_fresh, wait_for

from aggregator.testing import RunningAggregator
from mmm_backfill.messages import CompletionEvent
from mmm_backfill.runpath import RunPath, country_summary_name
from mmm_backfill.storage import Storage
from worker.summarize.summary import ModelRow, RunData, build_summary

pytestmark = [pytest.mark.reliability, pytest.mark.integration]

COUNTRIES = ("de", "fr", "us")
AGGREGATORS = 3
#: Runs written per wave; the events of a wave are published in a burst after its summaries, in
#: small batches (the emulator gives a whole batch to one stream; small ones reach every aggregator).
WAVES, PER_WAVE, EVENTS_PER_BATCH = 6, 50, 5
#: Share of events published twice (a worker's redelivered request reports the run again).
DUPLICATE_SHARE = 0.2
CREATED = dt.datetime(2026, 11, 29, 12, 0, 5, tzinfo=dt.UTC)


def summary_of(run: RunPath, rng: random.Random) -> bytes:
    models = [
        ModelRow(f"{run.timestamp}_m{i}", 1 if i == 0 else None, {"nrmse": rng.uniform(0.05, 0.4)}) for i in range(3)
    ]
    return json.dumps(build_summary(run, RunData(models=models, training_time_mins=1.0), CREATED)).encode()


def event_of(settings, run: RunPath, generation: int) -> tuple[bytes, dict[str, str]]:
    event = CompletionEvent(
        settings.bucket,
        run.prefix,
        run.revision,
        run.country,
        run.timestamp,
        "created",
        generation,
        0.5,
        "race-test",
        "2026-11-29T12:00:05.000Z",
    )
    return event.encode(), event.attributes()


class CountryWatcher:
    """Reads every country file generation it can while the race runs: which runs each one lists."""

    def __init__(self, settings) -> None:
        self.storage = Storage(settings.project, settings.bucket)
        self.history: dict[str, dict[int, list[str]]] = {c: {} for c in COUNTRIES}
        self.unreadable: list[str] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def __enter__(self):  # noqa: ANN204
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(30)

    def _run(self) -> None:
        deadline = time.monotonic() + 180
        while not self._stop.wait(0.05) and time.monotonic() < deadline:
            for country in COUNTRIES:
                found = self.storage.read(country_summary_name(country))
                if found is None:
                    continue
                try:
                    self.history[country][found[1]] = country_runs(json.loads(found[0]))
                except ValueError:
                    self.unreadable.append(f"{country}#{found[1]}")

    def shrinks(self) -> list[str]:
        """Generations that list fewer runs than an earlier one: an update was lost there."""
        lost = []
        for country, versions in self.history.items():
            seen: set[str] = set()
            for generation in sorted(versions):
                runs = set(versions[generation])
                if not seen <= runs:
                    lost.append(f"{country}#{generation} dropped {sorted(seen - runs)[:3]}")
                seen = runs
        return lost


def test_racing_aggregators_lose_no_update_and_match_a_fresh_rebuild(rel_settings, storage, bus, rel_topology, figures):
    rng = random.Random(4)
    runs = [RunPath(f"r{i % 2}", COUNTRIES[i % 3], f"1104_{i:06d}") for i in range(WAVES * PER_WAVE)]
    conflicts = _count_lost_races()
    started = time.monotonic()
    aggregators = [RunningAggregator(rel_settings) for _ in range(AGGREGATORS)]
    published = 0
    try:
        with CountryWatcher(rel_settings) as watcher, ThreadPoolExecutor(8) as pool:
            for wave in range(WAVES):
                batch = runs[wave * PER_WAVE : (wave + 1) * PER_WAVE]
                bodies = [summary_of(run, rng) for run in batch]
                generations = list(
                    pool.map(lambda rb: storage.write(rb[0].summary_name, rb[1], 0), zip(batch, bodies, strict=True))
                )
                events = [event_of(rel_settings, run, g) for run, g in zip(batch, generations, strict=True)]
                events += rng.sample(events, int(len(events) * DUPLICATE_SHARE))
                rng.shuffle(events)
                for i in range(0, len(events), EVENTS_PER_BATCH):
                    bus.publish_many(rel_settings.event_topic, events[i : i + EVENTS_PER_BATCH])
                published += len(events)

            def complete() -> bool:
                return all(
                    len(country_runs(read_country_file(storage, c)[0])) == len(runs) // len(COUNTRIES)
                    for c in COUNTRIES
                )

            wait_for(complete, 90, "every country file listing every run")
    finally:
        codes = [a.stop() for a in aggregators]
        conflicts.detach()
    seconds = time.monotonic() - started

    stored, fresh = stored_and_fresh(storage, COUNTRIES)
    expected = {c: {r.prefix for r in runs if r.country == c} for c in COUNTRIES}
    lost = sum(len(expected[c] - set(country_runs(stored[c]))) for c in COUNTRIES)
    duplicated = sum(len(country_runs(stored[c])) - len(set(country_runs(stored[c]))) for c in COUNTRIES)
    mismatched = mismatched_countries(stored, fresh)
    versions = sum(len(v) for v in watcher.history.values())
    figures.add(
        Figure(
            f"{AGGREGATORS} racing aggregators",
            len(runs),
            lost=lost,
            duplicated=duplicated,
            corrupt=len(mismatched) + len(watcher.unreadable),
            retries=conflicts.count,
            seconds=seconds,
            note=f"{published} events ({published - len(runs)} duplicates); {versions} country file versions "
            f"seen, {len(watcher.shrinks())} with a lost update",
        )
    )

    assert codes == [0] * AGGREGATORS
    assert lost == duplicated == 0
    assert mismatched == [], "a country file differs from a one-shot rebuild"
    assert watcher.unreadable == []
    assert watcher.shrinks() == [], "a country file version dropped runs an earlier one listed"


class _LostRaces(logging.Handler):
    """Counts the aggregators' lost compare-and-swap races (each one is retried) until detached."""

    def __init__(self) -> None:
        super().__init__(logging.INFO)
        self.count = 0
        self.logger = logging.getLogger("aggregator.rebuild")
        self.level_before = self.logger.level
        self.logger.addHandler(self)
        self.logger.setLevel(logging.INFO)

    def emit(self, record: logging.LogRecord) -> None:
        if record.getMessage().startswith("country file changed under the rebuild"):
            self.count += 1

    def detach(self) -> None:
        self.logger.removeHandler(self)
        self.logger.setLevel(self.level_before)


def _count_lost_races() -> _LostRaces:
    return _LostRaces()
