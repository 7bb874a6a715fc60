"""Transient storage faults: 503, 429, resets and slow answers on ~20% of requests lose and duplicate nothing."""

from __future__ import annotations

import time

import pytest
from backfill_kit import (
    Figure,
    country_runs,
    mismatched_countries,
    publish_requests,
    read_country_file,
    read_summaries,
    stored_and_fresh,
    summary_problems,
    upload_runs,
    wait_for,
    without_time,
)
from faulty_proxy import FAULTS, FaultyProxy

from mmm_backfill.runpath import RunPath

pytestmark = [pytest.mark.reliability, pytest.mark.integration]

FAULT_RATE = 0.2
SEED = 20261129
COUNTRIES = ("de", "fr", "us")
RUNS = [RunPath(f"r{i % 2}", COUNTRIES[i % 3], f"1101_{i:06d}") for i in range(12)]


@pytest.fixture
def proxy(gcs_emulator):
    """Overrides the plain relay: the role processes reach storage through a faulty one."""
    with FaultyProxy(gcs_emulator.url, fault_rate=FAULT_RATE, seed=SEED) as relay:
        yield relay


def test_storage_faults_leave_every_summary_and_country_file_written_once(
    rel_settings, storage, bus, rel_topology, templates, proxy, roles, tap, figures
):
    upload_runs(storage, templates["small"], RUNS)
    started = time.monotonic()
    roles.wait_ready(roles.start("worker"), roles.start("worker"), roles.start("aggregator"))
    publish_requests(bus, rel_settings, RUNS)

    def summarised() -> bool:
        return all(found is not None for found in read_summaries(storage, RUNS).values())

    def aggregated() -> bool:
        return all(
            set(country_runs(read_country_file(storage, c)[0])) >= {r.prefix for r in RUNS if r.country == c}
            for c in COUNTRIES
        )

    try:
        wait_for(summarised, 120, "every run summarised through the faulty proxy")
        wait_for(aggregated, 60, "every country file listing every run")
    except AssertionError as exc:
        raise AssertionError(f"{exc}\nproxy faults {dict(proxy.faults)}\n{roles.tail()}") from None
    codes = roles.stop_all()
    seconds = time.monotonic() - started
    events = tap.drain(expect=len(RUNS))

    summaries = read_summaries(storage, RUNS)
    writes = {run: proxy.writes_of(run.summary_name) for run in RUNS}
    created = {run: tap.outcomes(run)["created"] for run in RUNS}
    corrupt = [p for run, (data, _) in summaries.items() for p in summary_problems(run.summary_name, data)]
    stored, fresh = stored_and_fresh(storage, COUNTRIES)
    figures.add(
        Figure(
            "transient storage faults",
            len(RUNS),
            lost=sum(1 for found in summaries.values() if found is None),
            duplicated=sum(1 for run in RUNS if len(writes[run]) > 1 or created[run] > 1),
            corrupt=len(corrupt) + len(mismatched_countries(stored, fresh)),
            retries=roles.retries(),
            seconds=seconds,
            note=f"{sum(proxy.faults.values())} faults in {proxy.requests} requests: "
            + ", ".join(f"{k} {v}" for k, v in sorted(proxy.faults.items())),
        )
    )

    assert set(proxy.faults) == set(FAULTS), f"every kind of fault was injected: {proxy.faults}"
    assert sum(proxy.faults.values()) >= 0.1 * proxy.requests
    assert not corrupt
    for run in RUNS:
        generation = summaries[run][1]
        assert writes[run] == [generation], f"{run}: written {len(writes[run])} times"
        assert created[run] == 1, f"{run}: {tap.outcomes(run)} (the worker that wrote it must say 'created')"
        assert tap.generations(run) == {generation}
    for country in COUNTRIES:
        assert without_time(stored[country]) == without_time(fresh[country])
        paths = country_runs(stored[country])
        assert len(paths) == len(set(paths)) == sum(1 for r in RUNS if r.country == country)
    assert len(events) >= len(RUNS)
    assert set(codes.values()) == {0}, roles.tail()
