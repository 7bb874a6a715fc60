"""The one-shot ``aggregate`` command stopped by a signal: the country in hand is written, the rest skipped."""

import json
import signal

import pytest

from mmm_backfill.runpath import RunPath

pytestmark = pytest.mark.integration

COUNTRIES = [f"c{i:02d}" for i in range(40)]


def test_sigterm_stops_aggregate_after_the_country_in_hand_with_a_report(kit, interrupt):
    kit.put_summaries([RunPath("r1", country, "t1") for country in COUNTRIES])
    stopped = interrupt(["aggregate", "--json"], marker="country file rebuilt")
    assert stopped.returncode == 128 + signal.SIGTERM, stopped.stderr[-2000:]
    assert stopped.seconds < 5
    report = json.loads(stopped.stdout)
    done = [entry["country"] for entry in report["countries"]]
    assert report["interrupted_by"] == "SIGTERM" and 0 < len(done) < len(COUNTRIES)
    assert "interrupted by SIGTERM" in stopped.stderr
    assert all(kit.runs_in_file(country) == {f"robyn/r1/{country}/t1"} for country in done)
    assert all(kit.read_country(country) is None for country in COUNTRIES if country not in done)
