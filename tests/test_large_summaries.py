"""Run summaries as untrusted input at the sizes reported: a 200 MiB summary (and other hostile ones)
beside a real run's, through the real commands on the emulators. Each command's peak memory is the
kernel's own high-water mark for its process (``measured``), printed as a figure."""

from __future__ import annotations

import hashlib
import json
import signal
from pathlib import Path

import pytest

from aggregator.headline import RUN_FIELDS
from local_stack import testing
from mmm_backfill.messages import CompletionEvent, utc_now
from mmm_backfill.runpath import RunPath, country_summary_name
from mmm_backfill.summary_state import SummaryState, summary_state
from worker.replace import PREVIOUS_GENERATION_KEY, previous_name

pytestmark = [pytest.mark.integration, pytest.mark.e2e]

REFERENCE = "reference_model_summary.json"
#: A real run of the samples, whose old extractor's summary is good input.
GOOD = RunPath("r100", "de", "1104_082103")
#: The issue's bound on the aggregator's peak with a 200 MiB summary present (its pod has 1 GiB).
MAX_AGGREGATOR_MIB = 400
#: How much more a refresh over a 200 MiB legacy summary may cost a worker than over a small one.
MAX_EXTRA_WORKER_MIB = 100


def reference(samples_root: Path, run: RunPath) -> bytes:
    return (samples_root / run.prefix / REFERENCE).read_bytes()


def figure(text: str) -> None:
    print(f"\nfigure: {text}")


@pytest.fixture
def hostile_de(storage, samples_root, large_legacy_summary) -> dict[str, str]:
    """Country ``de``: a real run's legacy summary, the 200 MiB one, a best model padded with a
    2-million-element list, and three with a wrongly typed field. Returns the reason each bad one gets."""
    good = json.loads(reference(samples_root, GOOD))
    storage.write(GOOD.summary_name, reference(samples_root, GOOD), 0)
    large_legacy_summary.place(storage, large_legacy_summary.run.summary_name)
    bad = {
        "1104_900002": {"best_model": {**good["best_model"], "padding": [0] * 2_000_000}},
        "1104_900003": {"created_at": {"$date": 1_764_367_327_000}},
        "1104_900004": {"pareto_model_count": "0"},
        "1104_900005": {"training_time_mins": [1.5]},
    }
    for timestamp, change in bad.items():
        run = RunPath("r100", "de", timestamp)
        storage.write(run.summary_name, json.dumps({**good, "timestamp": timestamp, **change}).encode(), 0)
    return {
        large_legacy_summary.run.summary_name: "too_large",
        "robyn/r100/de/1104_900002/model_summary.json": "too_large",
        "robyn/r100/de/1104_900003/model_summary.json": "invalid_field: created_at",
        "robyn/r100/de/1104_900004/model_summary.json": "invalid_field: pareto_model_count",
        "robyn/r100/de/1104_900005/model_summary.json": "invalid_field: training_time_mins",
    }


def test_aggregate_beside_a_200_mib_summary_writes_typed_entries_at_a_bounded_peak(
    cli_env, storage, samples_root, hostile_de, measured
):
    command = measured(cli_env, "aggregate", "aggregate", "--country", "de", "--json")
    code, peak = command.wait()
    stdout, stderr = command.output()
    assert code == 0, stderr[-3000:]
    (country,) = json.loads(stdout)["countries"]
    stored = storage.stat(country_summary_name("de"))
    figure(f"aggregate --country de beside a 200 MiB summary: peak {peak:.0f} MiB, country file {stored.size} bytes")
    figure(f"aggregate --json printed {len(stdout)} bytes, stderr {len(stderr)} bytes")
    assert peak < MAX_AGGREGATOR_MIB
    assert {s["name"]: s["reason"] for s in country["skipped"]} == hostile_de
    assert stored.size < 1_000_000 and len(stdout) < 100_000 and len(stderr) < 100_000
    document = json.loads(storage.read(country_summary_name("de"))[0])
    legacy = json.loads(reference(samples_root, GOOD))
    (entry,) = document["runs"]
    where = {"revision": "r100", "timestamp": GOOD.timestamp, "run_path": GOOD.prefix}
    assert entry == where | {field: legacy[field] for field in RUN_FIELDS}


def event(settings, run: RunPath) -> CompletionEvent:
    return CompletionEvent(
        settings.bucket, run.prefix, run.revision, run.country, run.timestamp, "created", 1, 0.1, "test", utc_now()
    )


def test_the_aggregator_fed_an_event_for_a_200_mib_summary_keeps_rebuilding_other_countries(
    cli_env, settings, storage, bus, topology, samples_root, hostile_de, large_legacy_summary, measured
):
    first, second = RunPath("r101", "fr", "1112_093045"), RunPath("r101", "fr", "1201_090000")
    storage.write(first.summary_name, reference(samples_root, first), 0)
    aggregator = measured({**cli_env, "MMM_BACKFILL_COALESCE_SECONDS": "0.2"}, "aggregator", "aggregator")

    def publish(*runs: RunPath) -> None:
        bus.publish_many(
            settings.event_topic, [(e.encode(), e.attributes()) for e in (event(settings, r) for r in runs)]
        )

    def runs_in(country: str) -> set[str]:
        found = storage.read(country_summary_name(country))
        return set() if found is None else {r["run_path"] for r in json.loads(found[0])["runs"]}

    try:
        publish(large_legacy_summary.run, first)
        assert testing.wait_for(lambda: runs_in("de") == {GOOD.prefix} and runs_in("fr") == {first.prefix}, 120)
        storage.write(second.summary_name, reference(samples_root, second), 0)
        publish(second, large_legacy_summary.run)
        assert testing.wait_for(lambda: runs_in("fr") == {first.prefix, second.prefix}, 60)
        assert aggregator.proc.poll() is None, aggregator.output()[1][-3000:]
    finally:
        aggregator.proc.send_signal(signal.SIGTERM)
        code, peak = aggregator.wait(120)
    figure(f"aggregator service fed events for a 200 MiB summary: peak {peak:.0f} MiB, exit {code}")
    assert code == 0 and peak < MAX_AGGREGATOR_MIB
    assert bus.pull(settings.event_subscription, 10, timeout=3) == []  # every event was acked


def refresh(env: dict, storage, run: RunPath, measured, name: str) -> float:
    """``enqueue --refresh``, then one worker process until the summary is current; its peak in MiB."""
    legacy = storage.stat(run.summary_name).generation
    enqueue = measured(env, f"{name}-enqueue", "enqueue", "--refresh", "--json")
    assert enqueue.wait(120)[0] == 0 and json.loads(enqueue.output()[0])["enqueued"] == 1, enqueue.output()[1]
    worker = measured(env, name, "worker", "--processes", "1")

    def refreshed() -> bool:
        copy = storage.stat(previous_name(run))
        live = storage.stat(run.summary_name)
        return (
            copy is not None
            and copy.metadata.get(PREVIOUS_GENERATION_KEY) == str(legacy)
            and summary_state(live.metadata) is SummaryState.CURRENT
        )

    try:
        assert testing.wait_for(refreshed, 180, 0.2), worker.output()[1][-3000:]
    finally:
        worker.proc.send_signal(signal.SIGTERM)
        code, peak = worker.wait(120)
    assert code == 0, worker.output()[1][-3000:]
    return peak


def sha256_of(storage, name: str, tmp_path: Path) -> str:
    path, digest = tmp_path / "download", hashlib.sha256()
    storage.download(name, str(path))
    with open(path, "rb") as fh:
        while chunk := fh.read(1 << 20):
            digest.update(chunk)
    return digest.hexdigest()


def test_refresh_over_a_200_mib_legacy_summary_keeps_it_and_costs_the_worker_no_more(
    cli_env, storage, topology, samples_root, large_legacy_summary, measured, tmp_path
):
    run = RunPath("r101", "fr", "1201_090000")
    for name in ("OutputCollect.RDS", "InputCollect.RDS", "best_model_id.txt"):
        storage.upload_file(run.object_name(name), str(samples_root / run.prefix / name))
    storage.write(run.summary_name, reference(samples_root, run), 0)
    small = refresh(cli_env, storage, run, measured, "worker-small")
    assert storage.read(previous_name(run))[0] == reference(samples_root, run)

    large_legacy_summary.place(storage, run.summary_name)  # the app writes a legacy summary again, 200 MiB
    large = refresh(cli_env, storage, run, measured, "worker-large")
    figure(f"worker refreshing a legacy summary: peak {small:.0f} MiB (1 KB summary), {large:.0f} MiB (200 MiB)")
    copy = storage.stat(previous_name(run))
    assert copy.size == large_legacy_summary.size
    assert sha256_of(storage, previous_name(run), tmp_path) == large_legacy_summary.sha256
    summary = json.loads(storage.read(run.summary_name)[0])
    assert summary["has_pareto_models"] is True and summary["created_at"].endswith("Z")
    assert large <= small + MAX_EXTRA_WORKER_MIB
