"""Replay that is safe to repeat at once, bounded while dead letters keep arriving, and stopped by SIGTERM."""

import json
import signal
import subprocess
import sys

import pytest

from mmm_backfill.messages import SummaryRequest
from producer.replay import replay

pytestmark = pytest.mark.integration


def run_replay(settings, bus, **options):
    return replay(settings, bus, **{"limit": None, "country": None, "revision": None, "dry_run": False, **options})


def cli(cli_env, *args):
    return subprocess.run(
        [sys.executable, "-m", "mmm_backfill", "replay", *args],
        env={**cli_env, "COLUMNS": "250"},
        capture_output=True,
        text=True,
        timeout=120,
    )


def run_paths(messages):
    return sorted(m.attributes["run_path"] for m in messages)


def test_ten_dry_runs_in_a_row_each_see_every_dead_letter_and_a_replay_then_replays_them_all(
    settings, topology, dead_letters, cli_env, drain
):
    paths = dead_letters(["robyn/r1/de/t1", "robyn/r1/fr/t1"])
    for i in range(10):
        as_json = i % 2 == 0  # alternating the table and the JSON
        result = cli(cli_env, "--dry-run", *(["--json"] if as_json else []))
        assert result.returncode == 0, result.stderr
        if as_json:
            assert sorted(x["run_path"] for x in json.loads(result.stdout)["dead_letters"]) == paths
        else:
            assert all(path in result.stdout for path in paths), result.stdout
    result = cli(cli_env, "--json")
    assert result.returncode == 0 and json.loads(result.stdout)["replayed"] == 2, result.stderr
    assert run_paths(drain(settings.request_subscription, expect=2)) == paths


def test_dead_letters_published_after_the_start_wait_for_the_next_replay(settings, bus, topology, dead_letters, drain):
    dead_letters(["robyn/r1/de/t1"])

    class PublishingWhileReplaying:
        """A bus on which a new dead letter lands right after the replay's first pull."""

        def __init__(self):
            self.pulls = 0

        def __getattr__(self, name):
            return getattr(bus, name)

        def pull(self, *args, **kwargs):
            self.pulls += 1
            if self.pulls == 2:
                dead_letters(["robyn/r1/de/later"])
            return bus.pull(*args, **kwargs)

    report = run_replay(settings, PublishingWhileReplaying())
    assert [x.run_path for x in report.letters] == ["robyn/r1/de/t1"] and report.arrived_later == 1
    assert run_paths(drain(settings.dead_letter_subscription, expect=1)) == ["robyn/r1/de/later"]


def test_a_run_replayed_max_replays_times_is_exhausted_and_stays(settings, bus, topology, dead_letters, drain):
    dead_letters(["robyn/r1/de/t1"], replay_count=settings.max_replays)
    dead_letters(["robyn/r1/de/t2"], replay_count=settings.max_replays - 1)
    report = run_replay(settings, bus)
    document = report.to_dict()
    assert document["replayed"] == 1
    [exhausted] = document["exhausted"]
    assert exhausted["run_path"] == "robyn/r1/de/t1" and exhausted["reason"] == "rds_corrupt"
    assert "replayed 3 times" in exhausted["detail"]
    assert ["exhausted", 1] in report.tables()[0][2]
    assert run_paths(drain(settings.dead_letter_subscription, expect=1)) == ["robyn/r1/de/t1"]
    [request] = drain(settings.request_subscription, expect=1)
    assert SummaryRequest.decode(request.data).replay_count == settings.max_replays


def test_max_replays_comes_from_the_environment(settings, topology, dead_letters, cli_env, drain):
    dead_letters(["robyn/r1/de/t1"], replay_count=1)
    result = cli({**cli_env, "MMM_BACKFILL_MAX_REPLAYS": "1"}, "--json")
    document = json.loads(result.stdout)
    assert (document["replayed"], len(document["exhausted"])) == (0, 1)
    drain(settings.dead_letter_subscription, expect=1)


@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGINT], ids=["SIGTERM", "SIGINT"])
def test_a_signal_stops_a_replay_after_the_batch_in_hand_and_loses_or_doubles_nothing(
    settings, topology, dead_letters, interrupt, drain, signum
):
    paths = dead_letters([f"robyn/r1/de/t{i:04d}" for i in range(3000)])
    stopped = interrupt(["replay", "--json"], marker="dead letters replayed", signum=signum)
    assert stopped.returncode == 128 + signum, stopped.stderr[-2000:]
    assert stopped.seconds < 5
    report = json.loads(stopped.stdout)
    assert report["interrupted_by"] == signal.Signals(signum).name and 0 < report["replayed"] < len(paths)
    assert f"interrupted by {signal.Signals(signum).name}" in stopped.stderr
    republished = run_paths(drain(settings.request_subscription, expect=report["replayed"]))
    assert len(republished) == report["replayed"] == len(set(republished))
    left = run_paths(drain(settings.dead_letter_subscription, expect=len(paths) - report["replayed"]))
    assert sorted(republished + left) == paths
