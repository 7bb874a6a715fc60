"""The Pub/Sub emulator restarts mid-backfill: workers and aggregator reconnect, and the backfill finishes.

The emulator keeps nothing across a restart (``--data-dir`` holds only its ``env.yaml``): topics,
subscriptions and undelivered messages are gone. What the product promises then is recovery by
the operator's usual commands: ``setup`` again, ``enqueue`` again (it publishes only runs still
lacking a summary), while the running workers and aggregator pick up their subscriptions.
"""

from __future__ import annotations

import json
import subprocess
import sys
import time

import pytest
from backfill_kit import (
    REPO,
    Figure,
    country_runs,
    mismatched_countries,
    publish_requests,
    read_country_file,
    read_summaries,
    stored_and_fresh,
    upload_runs,
    wait_for,
    without_time,
)
from google.api_core import exceptions as gexc

from local_stack.emulators import PubSubEmulator, free_port
from mmm_backfill.bus import Bus
from mmm_backfill.runpath import RunPath
from mmm_backfill.topology import setup_topology

pytestmark = [pytest.mark.reliability, pytest.mark.integration]

COUNTRIES = ("de", "fr", "us")
RUNS = [RunPath("r5", COUNTRIES[i % 3], f"1107_{i:06d}") for i in range(12)]
#: Summaries that exist when the emulator is stopped (the rest are in the queue or in hand).
DONE_AT_RESTART = 3


def cli(env: dict[str, str], *args: str) -> str:
    result = subprocess.run(
        [sys.executable, "-m", "mmm_backfill", *args], env=env, cwd=REPO, capture_output=True, text=True, timeout=120
    )
    assert result.returncode == 0, result.stderr
    return result.stdout


def saw_subscription_gone(role) -> bool:  # noqa: ANN001 - backfill_kit.Role
    """The role met the missing subscription (a failed pull, an ended stream) or exited."""
    return "Subscription does not exist" in role.log_path.read_text(errors="replace") or not role.alive()


def test_roles_reconnect_after_a_pubsub_emulator_restart_and_the_backfill_finishes(
    rel_settings, storage, templates, proxy, roles, tmp_path, monkeypatch, figures
):
    upload_runs(storage, templates["slow"], RUNS)
    emulator = PubSubEmulator(rel_settings.project, port=free_port(), workdir=str(tmp_path / "pubsub"))
    (tmp_path / "pubsub").mkdir()
    emulator.start()
    monkeypatch.setenv("PUBSUB_EMULATOR_HOST", emulator.host)
    roles.env["PUBSUB_EMULATOR_HOST"] = emulator.host
    bus = Bus(rel_settings.project)
    try:
        setup_topology(rel_settings, bus)
        started = time.monotonic()
        consumers = [roles.start("worker"), roles.start("worker"), roles.start("aggregator")]
        roles.wait_ready(*consumers)
        publish_requests(bus, rel_settings, RUNS)
        done = lambda: sum(1 for found in read_summaries(storage, RUNS).values() if found)  # noqa: E731
        wait_for(lambda: done() >= DONE_AT_RESTART, 60, f"{DONE_AT_RESTART} runs summarised before the restart")

        emulator.stop()
        done_at_restart = done()
        emulator = PubSubEmulator(rel_settings.project, port=emulator.port, workdir=emulator.workdir)
        emulator.start()
        persisted = _subscription_exists(bus, rel_settings.request_subscription)
        # The worst case: setup runs again only after every consumer has met the missing subscription.
        wait_for(lambda: all(saw_subscription_gone(r) for r in consumers), 40, "every consumer meeting the gap")
        cli(roles.env, "setup")
        report = json.loads(cli(roles.env, "enqueue", "--json"))
        aggregator_exits = []
        if not consumers[2].alive():  # started again, as Kubernetes' restart policy would
            aggregator_exits.append(consumers[2].proc.returncode)
            consumers[2] = roles.start("aggregator")
        try:
            wait_for(lambda: done() == len(RUNS), 90, "every run summarised after the restart")
            wait_for(lambda: _aggregated(storage), 60, "every country file listing every run")
        except AssertionError as exc:
            raise AssertionError(f"{exc}\n{roles.tail()}") from None
        alive = [r.alive() for r in consumers]
        codes = roles.stop_all()
    finally:
        bus.close()
        emulator.stop()
    seconds = time.monotonic() - started
    summaries = read_summaries(storage, RUNS)
    writes = {run: proxy.writes_of(run.summary_name) for run in RUNS}
    stored, fresh = stored_and_fresh(storage, COUNTRIES)
    figures.add(
        Figure(
            "Pub/Sub emulator restart",
            len(RUNS),
            lost=sum(1 for found in summaries.values() if found is None),
            duplicated=sum(1 for run in RUNS if len(writes[run]) > 1),
            corrupt=len(mismatched_countries(stored, fresh)),
            retries=roles.retries(),
            seconds=seconds,
            note=f"state kept across restart: {'yes' if persisted else 'no'}; {done_at_restart} done before, "
            f"{report['enqueued']} re-enqueued; aggregator exits {aggregator_exits or 'none'}",
        )
    )

    assert alive == [True, True, True], f"a consumer exited after reconnecting\n{roles.tail()}"
    assert report["enqueued"] == len(RUNS) - report["already_summarised"]
    for run in RUNS:
        assert writes[run] == [summaries[run][1]], f"{run}: written {len(writes[run])} times"
    for country in COUNTRIES:
        assert without_time(stored[country]) == without_time(fresh[country])
    assert set(codes.values()) == {0}
    assert not aggregator_exits, f"the aggregator exited ({aggregator_exits}) instead of subscribing again"


def _subscription_exists(bus: Bus, subscription: str) -> bool:
    try:
        bus.get_subscription(subscription)
    except gexc.NotFound:
        return False
    return True


def _aggregated(storage) -> bool:  # noqa: ANN001
    return all(
        set(country_runs(read_country_file(storage, c)[0])) >= {r.prefix for r in RUNS if r.country == c}
        for c in COUNTRIES
    )
