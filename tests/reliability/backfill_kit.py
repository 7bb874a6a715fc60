"""What the reliability scenarios share: seed runs, enqueue, run the roles as processes, watch and count.

Every wait is bounded in time; every process started here is stopped by the test that started it.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

from local_stack import testing
from mmm_backfill.bus import Bus
from mmm_backfill.config import Settings
from mmm_backfill.messages import CompletionEvent, SummaryRequest
from mmm_backfill.runpath import RUN_FILES, RUN_SUMMARY_NAME, RunPath, country_summary_name
from mmm_backfill.storage import Storage
from worker.handler import TEMP_PREFIX

REPO = Path(__file__).resolve().parents[2]
#: Every field of a run summary (schema version 1); a summary missing one is corrupt.
SUMMARY_FIELDS = frozenset(
    {
        "schema_version",
        "generator",
        "country",
        "revision",
        "timestamp",
        "created_at",
        "training_time_mins",
        "has_pareto_models",
        "pareto_model_count",
        "pareto_models",
        "candidate_model_count",
        "candidate_models",
        "best_model",
        "input_metadata",
    }
)
#: Seconds a stopping role may take before it is killed (a run in hand is a second or two here).
STOP_TIMEOUT = 60.0


@dataclass
class Figure:
    """One row of the figures printed at the end of the session."""

    scenario: str
    runs: int
    lost: int = 0
    duplicated: int = 0
    corrupt: int = 0
    dead_lettered: Counter[str] = field(default_factory=Counter)
    retries: int = 0
    seconds: float = 0.0
    note: str = ""


def backfill_figure(
    scenario: str, summaries: dict, writes: dict, watcher: BucketWatcher, roles: Roles, seconds: float, note: str = ""
) -> Figure:
    """The row of a backfill: runs without a summary, written more than once or replaced, corrupt versions seen."""
    return Figure(
        scenario,
        len(summaries),
        lost=sum(1 for found in summaries.values() if found is None),
        duplicated=sum(1 for run_writes in writes.values() if len(run_writes) > 1) + len(watcher.replaced()),
        corrupt=len(watcher.problems),
        retries=roles.retries(),
        seconds=seconds,
        note=note,
    )


def wait_for(predicate: Callable[[], object], timeout: float, what: str, interval: float = 0.2) -> None:
    """``local_stack.testing.wait_for``, failing with AssertionError naming ``what`` after ``timeout`` seconds."""
    if not testing.wait_for(predicate, timeout, interval):
        raise AssertionError(f"timed out after {timeout:.0f}s waiting for {what}")


def upload_runs(storage: Storage, template: Path, runs: Iterable[RunPath], names: Iterable[str] = RUN_FILES) -> None:
    """Copy the template run's files to each run's folder (8 uploads at a time)."""
    jobs = [(run.object_name(n), str(template / n)) for run in runs for n in names if (template / n).exists()]
    with ThreadPoolExecutor(8) as pool:
        list(pool.map(lambda job: storage.upload_file(*job), jobs))


def request_for(settings: Settings, run: RunPath) -> SummaryRequest:
    return SummaryRequest.for_run(settings.bucket, run, "bf-reliability", "2026-11-29T12:00:00.000Z")


def publish_requests(bus: Bus, settings: Settings, runs: Iterable[RunPath], copies: int = 1) -> None:
    """Publish each run's request ``copies`` times in a row (identical bodies); return once all are confirmed.

    Copies in a row are pulled by different idle workers at the same time, so they race.
    """
    requests = [request_for(settings, run) for run in runs for _ in range(copies)]
    bus.publish_many(settings.request_topic, [(r.encode(), r.attributes()) for r in requests])


def drain(bus: Bus, subscription: str, expect: int | None = None, timeout: float = 20.0) -> list:
    """Pull and ack until ``expect`` messages (or, without it, two empty pulls in a row), within ``timeout``."""
    got, empty, deadline = [], 0, time.monotonic() + timeout
    while time.monotonic() < deadline and (len(got) < expect if expect is not None else empty < 2):
        batch = bus.pull(subscription, 100, timeout=2)
        bus.ack(subscription, [m.ack_id for m in batch])
        got += batch
        empty = 0 if batch else empty + 1
    return got


class EventTap:
    """A subscription of its own on the completion topic: sees every event, whoever else consumes them."""

    def __init__(self, bus: Bus, settings: Settings) -> None:
        self.bus, self.subscription = bus, f"{settings.event_subscription}-tap"
        bus.ensure_subscription(self.subscription, settings.event_topic, ack_deadline_seconds=60)
        self.events: list[CompletionEvent] = []

    def drain(self, expect: int | None = None, timeout: float = 20.0) -> list[CompletionEvent]:
        """Every event so far (pulled ones are kept across calls)."""
        missing = None if expect is None else max(0, expect - len(self.events))
        self.events += [CompletionEvent.decode(m.data) for m in drain(self.bus, self.subscription, missing, timeout)]
        return self.events

    def outcomes(self, run: RunPath) -> Counter[str]:
        return Counter(e.outcome for e in self.events if e.run_path == run.prefix)

    def generations(self, run: RunPath) -> set[int]:
        return {e.generation for e in self.events if e.run_path == run.prefix}


@dataclass
class Role:
    """One ``python -m mmm_backfill ROLE`` process and its log file."""

    name: str
    proc: subprocess.Popen
    log_path: Path

    @property
    def pid(self) -> int:
        return self.proc.pid

    def alive(self) -> bool:
        return self.proc.poll() is None


class Roles:
    """The role processes of one test. ``env`` is the environment every new process gets.

    Processes are started fresh (``subprocess``, never forked from this process's gRPC clients);
    ``stop_all`` sends SIGTERM, waits, and only then kills.
    """

    def __init__(self, env: dict[str, str], logdir: Path) -> None:
        self.env, self.logdir = dict(env), logdir
        self.started: list[Role] = []
        logdir.mkdir(parents=True, exist_ok=True)

    def start(self, role: str, *args: str, own_group: bool = False, **extra_env: str) -> Role:
        """Start ``role``; with ``own_group`` in a process group of its own, for ``kill_group``."""
        log_path = self.logdir / f"{role}-{len(self.started)}.log"
        with open(log_path, "ab") as log:
            proc = subprocess.Popen(
                [sys.executable, "-m", "mmm_backfill", role, *args],
                env={**self.env, **extra_env},
                cwd=REPO,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=own_group,
            )
        self.started.append(Role(role, proc, log_path))
        return self.started[-1]

    def wait_ready(self, *roles: Role, timeout: float = 60.0) -> None:
        """Wait until each process logged that it is consuming (R started, subscription open)."""

        def ready(role: Role) -> bool:
            if not role.alive():
                raise AssertionError(f"{role.name} {role.pid} exited with {role.proc.returncode}\n{self.tail()}")
            return f"{role.name} consuming" in role.log_path.read_text(errors="replace")

        wait_for(lambda: all(ready(r) for r in roles), timeout, f"{len(roles)} processes consuming")

    def live(self, role: str | None = None) -> list[Role]:
        return [r for r in self.started if r.alive() and (role is None or r.name == role)]

    @staticmethod
    def kill(role: Role) -> None:
        """SIGKILL, then reap: a zombie would still look alive to the stale-folder check."""
        role.proc.send_signal(signal.SIGKILL)
        role.proc.wait(timeout=STOP_TIMEOUT)

    @staticmethod
    def kill_group(role: Role) -> None:
        """SIGKILL to the process and every child (a role started with ``own_group``): a pod lost at once."""
        os.killpg(role.pid, signal.SIGKILL)
        role.proc.wait(timeout=STOP_TIMEOUT)

    @staticmethod
    def terminate(role: Role, timeout: float = STOP_TIMEOUT) -> int:
        """SIGTERM and the exit code; killed (and AssertionError) when it does not stop in time."""
        role.proc.send_signal(signal.SIGTERM)
        try:
            return role.proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            role.proc.kill()
            role.proc.wait()
            raise AssertionError(f"{role.name} {role.pid} ignored SIGTERM for {timeout:.0f}s") from None

    def stop_all(self, timeout: float = STOP_TIMEOUT) -> dict[int, int]:
        """Stop every live process; exit code by pid (-9 for any that had to be killed)."""
        live = self.live()
        for role in live:
            role.proc.send_signal(signal.SIGTERM)
        codes = {}
        for role in live:
            try:
                codes[role.pid] = role.proc.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                role.proc.kill()
                codes[role.pid] = role.proc.wait()
        return codes

    def log_records(self) -> list[dict]:
        """Every JSON log line of every process started (other lines are skipped)."""
        records = []
        for role in self.started:
            for line in role.log_path.read_text(errors="replace").splitlines():
                with contextlib.suppress(ValueError):
                    record = json.loads(line)
                    if isinstance(record, dict):
                        records.append(record)
        return records

    def retries(self) -> int:
        """Storage or bus calls retried (tenacity) plus runs nacked for a later try, over all processes."""
        records = self.log_records()
        retried_calls = sum(1 for r in records if str(r.get("message", "")).startswith("Retrying "))
        nacked = sum(1 for r in records if str(r.get("message", "")).startswith("request will be retried"))
        return retried_calls + nacked

    def tail(self, lines: int = 15) -> str:
        """The end of every log, for an assertion message."""
        return "\n".join(
            f"--- {r.name} {r.pid} ---\n" + "\n".join(r.log_path.read_text(errors="replace").splitlines()[-lines:])
            for r in self.started
        )


def temp_run_dirs(tmpdir: Path) -> list[str]:
    return sorted(p.name for p in tmpdir.iterdir() if p.name.startswith(TEMP_PREFIX))


def summary_problems(name: str, data: bytes) -> list[str]:
    """Why ``data`` is not a complete summary of the run whose object is ``name`` (empty when it is)."""
    run = RunPath.parse(name.rsplit("/", 1)[0])
    try:
        summary = json.loads(data)
    except (UnicodeDecodeError, ValueError) as exc:
        return [f"{name}: not JSON ({exc}); {len(data)} bytes"]
    if not isinstance(summary, dict):
        return [f"{name}: not an object"]
    problems = [f"{name}: missing {sorted(SUMMARY_FIELDS - set(summary))}"] if SUMMARY_FIELDS - set(summary) else []
    if (summary.get("revision"), summary.get("country"), summary.get("timestamp")) != (
        run.revision,
        run.country,
        run.timestamp,
    ):
        problems.append(f"{name}: names another run")
    if not summary.get("candidate_model_count") or not summary.get("candidate_models"):
        problems.append(f"{name}: no models")
    return problems


def read_summaries(storage: Storage, runs: Iterable[RunPath]) -> dict[RunPath, tuple[bytes, int] | None]:
    with ThreadPoolExecutor(8) as pool:
        runs = list(runs)
        return dict(zip(runs, pool.map(lambda run: storage.read(run.summary_name), runs), strict=True))


def storage_through(url: str, settings: Settings) -> Storage:
    """A Storage of the test's bucket that reaches the server through ``url`` (a proxy), whatever the environment."""
    from google.auth.credentials import AnonymousCredentials
    from google.cloud import storage

    client = storage.Client(settings.project, credentials=AnonymousCredentials(), client_options={"api_endpoint": url})
    return Storage(settings.project, settings.bucket, client)


def bucket_snapshot(storage: Storage) -> dict[str, int]:
    """Every object of the bucket and its generation."""
    return {o.name: o.generation for o in storage.list("")}


class BucketWatcher:
    """Polls the bucket while a scenario runs and reads every version of every run summary it sees.

    Catches what a final look cannot: a summary that existed half-written, or was replaced.
    ``generations`` maps each summary's name to the generations observed; ``first_seen`` to when
    (``time.monotonic()``) it was first listed; ``problems`` lists every version that was not a
    complete summary.
    """

    def __init__(self, settings: Settings, interval: float = 0.1, max_seconds: float = 300.0) -> None:
        self.storage = Storage(settings.project, settings.bucket)
        self.interval, self.max_seconds = interval, max_seconds
        self.generations: dict[str, set[int]] = {}
        self.first_seen: dict[str, float] = {}
        self.problems: list[str] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="bucket-watcher", daemon=True)

    def __enter__(self) -> BucketWatcher:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(timeout=30)
        self._look()  # a last look after everything stopped

    def _run(self) -> None:
        deadline = time.monotonic() + self.max_seconds
        while not self._stop.wait(self.interval) and time.monotonic() < deadline:
            self._look()

    def _look(self) -> None:
        for obj in self.storage.list("robyn/"):
            if not obj.name.endswith(f"/{RUN_SUMMARY_NAME}"):
                continue
            self.first_seen.setdefault(obj.name, time.monotonic())
            seen = self.generations.setdefault(obj.name, set())
            if obj.generation in seen:
                continue
            seen.add(obj.generation)
            found = self.storage.read(obj.name, obj.generation)
            if found is None:
                self.problems.append(f"{obj.name}#{obj.generation}: listed but unreadable")
            else:
                self.problems += summary_problems(obj.name, found[0])

    def replaced(self) -> list[str]:
        return sorted(name for name, gens in self.generations.items() if len(gens) > 1)


def fresh_country_file(storage: Storage, country: str) -> dict:
    """What a one-shot rebuild makes of ``country`` now, built from the bucket with an empty cache."""
    from aggregator.cache import SummaryCache
    from aggregator.rebuild import build_from_bucket

    return build_from_bucket(storage, country, SummaryCache(storage)).document


def read_country_file(storage: Storage, country: str) -> tuple[dict | None, int]:
    found = storage.read(country_summary_name(country))
    return (None, 0) if found is None else (json.loads(found[0]), found[1])


def without_time(document: dict | None) -> dict | None:
    return None if document is None else {k: v for k, v in document.items() if k != "aggregated_at"}


def stored_and_fresh(storage: Storage, countries: Iterable[str]) -> tuple[dict[str, dict | None], dict[str, dict]]:
    """Each country's stored file, and a fresh one-shot rebuild of it to compare against."""
    countries = list(countries)
    return (
        {c: read_country_file(storage, c)[0] for c in countries},
        {c: fresh_country_file(storage, c) for c in countries},
    )


def mismatched_countries(stored: dict[str, dict | None], fresh: dict[str, dict]) -> list[str]:
    """Countries whose stored file differs from the fresh rebuild (``aggregated_at`` aside)."""
    return [c for c in stored if without_time(stored[c]) != without_time(fresh[c])]


def country_runs(document: dict | None) -> list[str]:
    return [] if document is None else [run["run_path"] for run in document["runs"]]


def environment(
    base: dict[str, str], settings: Settings, storage_url: str, tmpdir: Path, **extra: str
) -> dict[str, str]:
    """Environment of a role process: the test's project and bucket, storage through ``storage_url``."""
    env = {k: v for k, v in base.items() if not k.startswith("MMM_BACKFILL_")}
    env.update(
        {
            "STORAGE_EMULATOR_HOST": storage_url,
            "MMM_BACKFILL_PROJECT": settings.project,
            "MMM_BACKFILL_BUCKET": settings.bucket,
            "MMM_BACKFILL_COALESCE_SECONDS": str(settings.coalesce_seconds),
            "MMM_BACKFILL_ACK_DEADLINE_SECONDS": str(settings.ack_deadline_seconds),
            "MMM_BACKFILL_RETRY_MIN_BACKOFF_SECONDS": str(settings.retry_min_backoff_seconds),
            "MMM_BACKFILL_RETRY_MAX_BACKOFF_SECONDS": str(settings.retry_max_backoff_seconds),
            "MMM_BACKFILL_LOG_FORMAT": "json",
            "TMPDIR": str(tmpdir),
            "PYTHONUNBUFFERED": "1",
        }
    )
    env.update(extra)
    os.makedirs(tmpdir, exist_ok=True)
    return env
