"""``enqueue --wait`` on the real emulators, through the CLI, with real workers and the aggregator."""

from __future__ import annotations

import json
import subprocess
import sys
import time

import pytest

from local_stack.stack import LocalStack
from local_stack.testing import wait_for
from mmm_backfill.runpath import country_summary_name
from producer.wait_report import EXIT_DEAD_LETTERED, EXIT_TIMED_OUT

pytestmark = [pytest.mark.integration, pytest.mark.e2e]

REVISIONS, COUNTRIES = ("r1", "r2"), ("de", "fr", "us")
TRUNCATED, NOT_RDS = "robyn/r1/de/0001_truncated", "robyn/r2/fr/0001_not-rds"


@pytest.fixture
def bucket_runs(storage, generated_runs):
    """Upload ``count`` real-shaped runs over REVISIONS × COUNTRIES (copies of a generated run); their paths."""

    def upload(count: int, revisions=REVISIONS) -> list[str]:
        source = generated_runs["standard"]
        paths = [
            f"robyn/{revisions[i % len(revisions)]}/{COUNTRIES[i % len(COUNTRIES)]}/1101_{i:06d}" for i in range(count)
        ]
        for path in paths:
            for file in source.iterdir():
                storage.upload_file(f"{path}/{file.name}", str(file))
        return paths

    return upload


@pytest.fixture
def hostile_runs(storage, generated_runs):
    """Two runs the workers dead-letter: a truncated OutputCollect.RDS and one that is not an RDS at all."""
    good = (generated_runs["standard"] / "OutputCollect.RDS").read_bytes()
    storage.write(f"{TRUNCATED}/OutputCollect.RDS", good[: len(good) // 2], 0)
    storage.write(f"{NOT_RDS}/OutputCollect.RDS", b"this is not an RDS file", 0)
    return {TRUNCATED: "rds_truncated", NOT_RDS: "not_rds"}


@pytest.fixture
def stack(settings, emulator_env, tmp_path):
    """Worker and aggregator processes on the test's topics and bucket (started by the test)."""
    workdir = tmp_path / "stack"
    workdir.mkdir()
    local = LocalStack(
        settings,
        pubsub_host=emulator_env["PUBSUB_EMULATOR_HOST"],
        storage_url=emulator_env["STORAGE_EMULATOR_HOST"],
        workdir=str(workdir),
    )
    yield local
    codes = local.stop_processes()
    assert all(code == 0 for code in codes), codes


def start_roles(stack, processes: int = 2) -> None:
    stack.spawn("worker", "--processes", str(processes), log_name="worker")
    stack.spawn("aggregator", log_name="aggregator")


def enqueue_wait(stack, cli_env, *args: str, timeout: float = 300) -> tuple[int, dict, str]:
    """``mmm-backfill enqueue --wait --json ARGS``: exit code, the JSON report, stderr."""
    env = {**cli_env, **stack.env, "MMM_BACKFILL_LOG_FORMAT": "json"}
    result = subprocess.run(
        [sys.executable, "-m", "mmm_backfill", "enqueue", "--wait", "--json", *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout,
    )
    assert result.stdout, result.stderr[-3000:]
    return result.returncode, json.loads(result.stdout), result.stderr


def start_wait(env: dict, *args: str, stderr=subprocess.DEVNULL) -> subprocess.Popen:
    """``mmm-backfill enqueue --wait --json ARGS`` in the background, its report on stdout."""
    return subprocess.Popen(
        [sys.executable, "-m", "mmm_backfill", "enqueue", "--wait", "--json", *args],
        env=env,
        stdout=subprocess.PIPE,
        stderr=stderr,
        text=True,
    )


def country_runs(storage, country: str) -> set[str]:
    found = storage.read(country_summary_name(country))
    return set() if found is None else {entry["run_path"] for entry in json.loads(found[0])["runs"]}


def summaries(storage) -> set[str]:
    return {o.name.rsplit("/", 1)[0] for o in storage.list("robyn/") if o.name.endswith("/model_summary.json")}


def test_wait_returns_0_once_every_run_is_summarised_and_every_country_file_holds_it(
    storage, topology, stack, cli_env, bucket_runs
):
    paths = bucket_runs(50)
    start_roles(stack)
    code, report, _ = enqueue_wait(stack, cli_env)
    # Read at once, as a deploy's next step would: every country file already holds every run.
    held = {country: country_runs(storage, country) for country in COUNTRIES}
    assert code == 0, report["wait"]
    assert report["enqueued"] == 50
    assert (report["wait"]["summarised"], report["wait"]["dead_lettered"], report["wait"]["pending"]) == (50, 0, 0)
    assert report["wait"]["verdict"] == "complete"
    for country in COUNTRIES:
        assert held[country] == {p for p in paths if p.split("/")[2] == country}
    assert {c["country"]: c["current"] for c in report["wait"]["country_files"]} == dict.fromkeys(COUNTRIES, True)


def test_dead_lettered_runs_give_their_own_exit_code_and_are_named_with_their_reasons(
    storage, topology, stack, cli_env, bucket_runs, hostile_runs
):
    paths = bucket_runs(48)
    start_roles(stack)
    code, report, _ = enqueue_wait(stack, cli_env)
    held = {country: country_runs(storage, country) for country in COUNTRIES}
    assert code == EXIT_DEAD_LETTERED, report["wait"]
    wait = report["wait"]
    assert (wait["summarised"], wait["dead_lettered"], wait["pending"]) == (48, 2, 0)
    assert {d["run_path"]: d["reason"] for d in wait["dead_letters"]} == hostile_runs
    for country in COUNTRIES:
        assert held[country] == {p for p in paths if p.split("/")[2] == country}


def test_without_workers_the_timeout_names_what_is_pending_and_a_second_wait_enqueues_only_the_rest(
    storage, topology, stack, cli_env, bucket_runs
):
    paths = bucket_runs(12)
    started = time.monotonic()
    code, report, _ = enqueue_wait(stack, cli_env, "--timeout", "20s")
    assert time.monotonic() - started < 25
    assert code == EXIT_TIMED_OUT
    assert report["wait"]["verdict"] == "timed out" and sorted(report["wait"]["pending_runs"]) == sorted(paths)

    start_roles(stack, processes=1)
    assert wait_for(lambda: len(summaries(storage)) >= 3, 120), "the first backfill's requests are served"
    code, second, _ = enqueue_wait(stack, cli_env, "--timeout", "3m")
    assert code == 0, second["wait"]
    assert second["enqueued"] == second["missing"] == 12 - second["already_summarised"] < 12
    assert summaries(storage) == set(paths)
    for country in COUNTRIES:
        assert country_runs(storage, country) == {p for p in paths if p.split("/")[2] == country}


def test_two_waits_on_different_revisions_each_report_only_their_own_runs(
    storage, topology, stack, cli_env, bucket_runs
):
    paths = bucket_runs(24)
    start_roles(stack)
    env = {**cli_env, **stack.env, "MMM_BACKFILL_LOG_FORMAT": "json"}
    procs = {revision: start_wait(env, "--revision", revision) for revision in REVISIONS}
    for revision, proc in procs.items():
        out, _ = proc.communicate(timeout=300)
        assert proc.returncode == 0, out
        wait = json.loads(out)["wait"]
        assert wait["runs"] == wait["summarised"] == 12
        assert {row["revision"] for row in wait["by_revision_country"]} == {revision}
        assert wait["runs"] == sum(p.split("/")[1] == revision for p in paths)


def test_a_replay_dry_run_beside_a_running_wait_sees_every_dead_letter(
    settings, storage, topology, stack, cli_env, bucket_runs, hostile_runs
):
    bucket_runs(1)
    stack.spawn("worker", log_name="worker")  # no aggregator: the wait runs until stopped
    env = {**cli_env, **stack.env, "MMM_BACKFILL_LOG_FORMAT": "json"}
    wait = start_wait(env, "--timeout", "90s")
    try:

        def replay_sees_both() -> bool:
            result = subprocess.run(
                [sys.executable, "-m", "mmm_backfill", "replay", "--dry-run", "--json"],
                env=env,
                capture_output=True,
                text=True,
                timeout=60,
            )
            return {d["run_path"] for d in json.loads(result.stdout)["dead_letters"]} == set(hostile_runs)

        assert wait_for(replay_sees_both, 60, interval=1.0)
        for _ in range(3):  # again and again while the wait keeps pulling its own subscriptions
            assert replay_sees_both()
    finally:
        wait.terminate()
        out, _ = wait.communicate(timeout=60)
    assert wait.returncode == 143
    assert {d["run_path"] for d in json.loads(out)["wait"]["dead_letters"]} == set(hostile_runs)


def test_enqueue_refuses_before_publishing_when_the_workers_subscription_is_missing(
    settings, storage, bus, topology, cli_env, bucket_runs, drain
):
    bucket_runs(3)
    bus.delete_subscription(settings.request_subscription)
    spy = "requests-spy"
    bus.ensure_subscription(spy, settings.request_topic)
    for args in (["enqueue"], ["enqueue", "--wait"]):
        result = subprocess.run(
            [sys.executable, "-m", "mmm_backfill", *args], env=cli_env, capture_output=True, text=True, timeout=120
        )
        assert result.returncode == 1
        assert "no_subscription" in result.stderr and settings.request_subscription in result.stderr
    assert drain(spy, timeout=5) == []


def test_a_dry_run_reports_the_missing_subscription_and_exits_1(settings, storage, bus, topology, cli_env, bucket_runs):
    bucket_runs(2)
    bus.delete_subscription(settings.request_subscription)
    result = subprocess.run(
        [sys.executable, "-m", "mmm_backfill", "enqueue", "--dry-run", "--json"],
        env=cli_env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 1
    report = json.loads(result.stdout)
    assert report["would_enqueue"] == 2
    assert any(settings.request_subscription in problem for problem in report["delivery_problems"])


@pytest.fixture(autouse=True)
def _no_stray_wait_subscriptions(settings, bus):
    """Every wait deletes its own subscriptions when it ends (checked after each test)."""
    yield
    leftovers = [
        name
        for topic in (settings.event_topic, settings.dead_letter_topic)
        for name in (bus.topic_subscriptions(topic) or [])
        if "-wait-" in name
    ]
    assert leftovers == []


def test_off_a_terminal_progress_is_a_json_log_line_at_a_steady_interval(
    storage, topology, stack, cli_env, bucket_runs
):
    bucket_runs(3)
    code, _, stderr = enqueue_wait(
        stack, {**cli_env, "MMM_BACKFILL_WAIT_PROGRESS_SECONDS": "1"}, "--timeout", "6s", timeout=60
    )
    assert code == EXIT_TIMED_OUT
    lines = [json.loads(line) for line in stderr.splitlines() if line.startswith("{")]
    progress = [line for line in lines if line["message"] == "backfill progress"]
    assert len(progress) >= 3
    for line in progress:
        assert {"done", "pending", "dead_lettered", "runs_per_minute", "eta_seconds"} <= set(line)
        assert (line["severity"], line["pending"], line["done"]) == ("INFO", 3, 0)


def test_a_stalled_wait_warns_and_finds_in_the_listing_runs_summarised_without_an_event(
    settings, storage, topology, stack, cli_env, bucket_runs
):
    from local_stack.seed import legacy_summary

    paths = bucket_runs(3)
    env = {
        **cli_env,
        **stack.env,
        "MMM_BACKFILL_WAIT_PROGRESS_SECONDS": "1",
        "MMM_BACKFILL_WAIT_STALL_SECONDS": "3",
    }
    wait = start_wait(env, "--timeout", "2m", stderr=subprocess.PIPE)
    try:
        assert "backfill progress" in next(line for line in wait.stderr if "backfill progress" in line)
        for path in paths:  # summarised behind the wait's back: no completion event
            revision, country, timestamp = path.split("/")[1:]
            storage.write(
                f"{path}/model_summary.json", json.dumps(legacy_summary(revision, country, timestamp)).encode(), 0
            )
        aggregate = subprocess.run(
            [sys.executable, "-m", "mmm_backfill", "aggregate"], env=env, capture_output=True, timeout=120
        )
        assert aggregate.returncode == 0
        out, err = wait.communicate(timeout=120)
    finally:
        if wait.poll() is None:
            wait.kill()
    assert wait.returncode == 0, err[-3000:]
    report = json.loads(out)["wait"]
    assert report["outcomes"] == {"found_in_listing": 3} and report["listings"] >= 1
    assert "no run has settled for a while" in err
