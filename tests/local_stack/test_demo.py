"""The README's first command, small: a whole backfill on its own emulators."""

import json
import subprocess
import sys

import pytest

pytestmark = [pytest.mark.integration, pytest.mark.e2e]


def test_demo_summarises_every_run_and_exits_zero():
    result = subprocess.run(
        [sys.executable, "-m", "mmm_backfill", "demo", "--runs", "6", "--workers", "1", "--json"],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    report = json.loads(result.stdout)
    assert report["complete"] is True
    assert (report["runs"], report["enqueued"], report["summarised"]) == (6, 6, 6)
    assert sum(report["country_files"].values()) == 6
    assert "PUBSUB_EMULATOR_HOST" in report["environment"]


def test_demo_refresh_turns_every_legacy_summary_current():
    result = subprocess.run(
        [sys.executable, "-m", "mmm_backfill", "demo", "--runs", "3", "--workers", "1", "--refresh", "--json"],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    report = json.loads(result.stdout)
    assert report["complete"] is True and (report["runs"], report["enqueued"]) == (3, 3)
    assert report["states_before"] == {"missing": 0, "legacy": 3, "outdated": 0, "current": 0}
    assert report["states_after"] == {"missing": 0, "legacy": 0, "outdated": 0, "current": 3}
