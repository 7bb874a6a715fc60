"""Shared fixtures: sample runs, generated runs, R helpers (and, later, the emulators)."""

from __future__ import annotations

import dataclasses
import itertools
import os
import queue
import shutil
import signal
import subprocess
import sys
import threading
import time
import uuid
from pathlib import Path

import pytest

from local_stack.emulators import FakeGcs, PubSubEmulator
from local_stack.fixtures import RunSpec, generate_runs
from local_stack.samples import SAMPLES_ROOT, sample_run_dirs
from mmm_backfill.config import Settings
from mmm_backfill.runpath import RunPath

SAMPLES = SAMPLES_ROOT


@pytest.fixture(scope="session")
def samples_root() -> Path:
    if not sample_run_dirs():
        pytest.skip(f"real Robyn samples not present at {SAMPLES}")
    return SAMPLES


#: The variations the generator covers, by name.
VARIANTS: dict[str, dict] = {
    "standard": {},
    "no_validation_columns": {"validation": "none"},
    "validation_na": {"validation": "na"},
    "no_pareto_front": {"fronts": 0},
    "one_paid_media": {"paid_media": 1},
    "character_dates": {"dates": "character"},
    "bad_metrics": {"bad_metrics": 1},
    "plain_data_frame": {"tibble": 0},
    "old_front_name": {"front_column": "robyn_pareto_front"},
    "logical_front_column": {"front_column": "pareto_optimal"},
    "many_models": {"models": 150, "fronts": 3},
    "only_output_collect": {"best_file": 0, "timings": 0, "input": 0},
    "timings_only": {"best_file": 0},
}


@pytest.fixture(scope="session")
def generated_runs(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """One generated run per variant, under ``robyn/gen/xx/{variant}``."""
    root = tmp_path_factory.mktemp("generated")
    dirs = {name: root / "robyn" / "gen" / "xx" / name.replace("_", "-") for name in VARIANTS}
    generate_runs(RunSpec(dir=str(dirs[n]), seed=i + 1, **VARIANTS[n]) for i, n in enumerate(VARIANTS))
    return dirs


@pytest.fixture(scope="session")
def run_r(tmp_path_factory: pytest.TempPathFactory):
    """Run a snippet of R code with ``Rscript --vanilla`` (for building hostile inputs)."""
    rscript = shutil.which("Rscript")
    assert rscript, "Rscript is required (Debian r-base-core)"

    def run(code: str) -> None:
        subprocess.run([rscript, "--vanilla", "-e", code], check=True, capture_output=True)

    return run


# -- real emulators -----------------------------------------------------------------------------

_counter = itertools.count()


@pytest.fixture(scope="session")
def pubsub_emulator(tmp_path_factory):
    """Google's Pub/Sub emulator on a free port for the whole session."""
    with PubSubEmulator("mmm-test", workdir=str(tmp_path_factory.mktemp("pubsub"))) as emulator:
        os.environ["PUBSUB_EMULATOR_HOST"] = emulator.host
        yield emulator
        os.environ.pop("PUBSUB_EMULATOR_HOST", None)


@pytest.fixture(scope="session")
def gcs_emulator(tmp_path_factory):
    """fake-gcs-server on a free port for the whole session."""
    with FakeGcs(workdir=str(tmp_path_factory.mktemp("gcs"))) as server:
        os.environ["STORAGE_EMULATOR_HOST"] = server.url
        yield server
        os.environ.pop("STORAGE_EMULATOR_HOST", None)


@pytest.fixture
def settings(pubsub_emulator, gcs_emulator) -> Settings:
    """Settings isolated per test: their own project (topics) and bucket, fast redelivery."""
    n = next(_counter)
    return Settings(
        project=f"test-{n}-{uuid.uuid4().hex[:6]}",
        bucket=f"bucket-{n}-{uuid.uuid4().hex[:6]}",
        ack_deadline_seconds=30,
        retry_min_backoff_seconds=1,
        retry_max_backoff_seconds=2,
        coalesce_seconds=0.5,
    )


@pytest.fixture
def emulator_env(pubsub_emulator, gcs_emulator) -> dict[str, str]:
    """Environment for CLI subprocesses that must reach the emulators."""
    env = dict(os.environ)
    env["PUBSUB_EMULATOR_HOST"] = pubsub_emulator.host
    env["STORAGE_EMULATOR_HOST"] = gcs_emulator.url
    return env


@pytest.fixture
def bus(settings):
    from mmm_backfill.bus import Bus

    b = Bus(settings.project)
    yield b
    b.close()


@pytest.fixture
def storage(settings):
    from mmm_backfill.storage import Storage

    s = Storage(settings.project, settings.bucket)
    s.ensure_bucket()
    return s


@pytest.fixture
def atomic_storage(gcs_emulator, settings):
    """Make Storage clients of the test's bucket through ``AtomicGcs``: the emulator, with Cloud
    Storage's semantics for copies (both preconditions, one mutating request at a time)."""
    from atomic_gcs import AtomicGcs

    from mmm_backfill.storage import Storage, make_client

    with AtomicGcs(gcs_emulator.url) as relay:
        yield lambda: Storage(settings.project, settings.bucket, client=make_client(settings.project, relay.url))


@pytest.fixture
def topology(settings, bus, storage):
    """Topics, subscriptions and bucket of ``settings``, created by ``setup``."""
    from mmm_backfill.topology import setup_topology

    return setup_topology(settings, bus, storage)


@pytest.fixture
def cli_env(emulator_env, settings) -> dict[str, str]:
    """Environment of a CLI subprocess on the test's project and bucket, JSON logs on stderr."""
    return {
        **emulator_env,
        "MMM_BACKFILL_PROJECT": settings.project,
        "MMM_BACKFILL_BUCKET": settings.bucket,
        "MMM_BACKFILL_LOG_FORMAT": "json",
    }


@dataclasses.dataclass
class Interrupted:
    """A CLI command stopped by a signal: its exit code, output, and seconds from the signal to its exit."""

    returncode: int
    stdout: str
    stderr: str
    seconds: float


@pytest.fixture
def interrupt(cli_env):
    """Run ``mmm-backfill ARGS`` (``env`` added), send ``signum`` once a stderr line holds ``marker``, wait."""

    def run(
        args: list[str], marker: str, signum: int = signal.SIGTERM, wait: float = 180.0, env: dict | None = None
    ) -> Interrupted:
        proc = subprocess.Popen(
            [sys.executable, "-m", "mmm_backfill", *args],
            env={**cli_env, **(env or {})},
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        lines: queue.Queue[str | None] = queue.Queue()
        threading.Thread(target=lambda: [lines.put(x) for x in proc.stderr] + [lines.put(None)], daemon=True).start()
        seen, deadline = [], time.monotonic() + wait
        try:
            while not seen or marker not in seen[-1]:
                line = lines.get(timeout=max(0.1, deadline - time.monotonic()))
                assert line is not None, f"exited before {marker!r}: {''.join(seen)[-2000:]}"
                seen.append(line)
            proc.send_signal(signum)
            signalled = time.monotonic()
            stdout = proc.stdout.read()
            proc.wait(timeout=60)
            seconds = time.monotonic() - signalled
        finally:
            if proc.poll() is None:
                proc.kill()
        while (line := lines.get(timeout=10)) is not None:
            seen.append(line)
        return Interrupted(proc.returncode, stdout, "".join(seen), seconds)

    return run


# -- peak memory of a command, and a 200 MiB legacy summary (summaries as untrusted input) ----------


@dataclasses.dataclass
class Measured:
    """A CLI command started through ``peak_rss.py``: its process, output files and peak memory."""

    proc: subprocess.Popen
    folder: Path
    name: str

    def wait(self, timeout: float = 300.0) -> tuple[int, float]:
        """Exit code and peak RSS of the command in MiB (the kernel's high-water mark, not a sample)."""
        code = self.proc.wait(timeout)
        return code, int((self.folder / f"{self.name}.peak").read_text()) / 1024

    def output(self) -> tuple[str, str]:
        return (self.folder / f"{self.name}.out").read_text(), (self.folder / f"{self.name}.err").read_text()


@pytest.fixture
def measured(tmp_path):
    """Start ``mmm-backfill ARGS`` under ``env`` as ``name``, its peak memory measured (``Measured``)."""

    def start(env: dict, name: str, *args: str) -> Measured:
        peak = tmp_path / f"{name}.peak"
        command = [sys.executable, str(Path(__file__).with_name("peak_rss.py")), str(peak), sys.executable]
        with open(tmp_path / f"{name}.out", "w") as out, open(tmp_path / f"{name}.err", "w") as err:
            proc = subprocess.Popen([*command, "-m", "mmm_backfill", *args], env=env, stdout=out, stderr=err)
        return Measured(proc, tmp_path, name)

    return start


#: Characters of the padded ``created_at`` (the case reported: 209,715,200).
LARGE_CREATED_AT_CHARS = 200 * 1024 * 1024


@dataclasses.dataclass
class LargeSummary:
    """A legacy summary padded to 200 MiB, stored once in a bucket of its own (uploads are slow).

    Its fields name ``run`` (a summary that would pass every check but its size there).
    """

    blob: object  # google.cloud.storage.Blob
    size: int
    sha256: str
    run: RunPath

    def place(self, storage, name: str) -> None:
        """Copy it to ``name`` in ``storage``'s bucket, inside the emulator (about a second)."""
        target, token = storage.bucket.blob(name), None
        while True:
            token, _, _ = target.rewrite(self.blob, token=token)
            if token is None:
                return


@pytest.fixture(scope="session")
def large_legacy_summary(gcs_emulator, samples_root, tmp_path_factory) -> LargeSummary:
    """The old extractor's summary of a real run, its ``created_at`` padded to 209,715,200 characters,
    moved to run ``robyn/r100/de/1104_900001``."""
    import hashlib
    import json

    from mmm_backfill.storage import Storage

    run = RunPath("r100", "de", "1104_900001")
    reference = json.loads((samples_root / "robyn/r100/de/1104_082103/reference_model_summary.json").read_bytes())
    padded = {**reference, "timestamp": run.timestamp, "created_at": "@PAD@"}
    head, tail = json.dumps(padded, indent=2).encode().split(b"@PAD@")
    path, digest = tmp_path_factory.mktemp("large") / "model_summary.json", hashlib.sha256()
    with open(path, "wb") as fh:
        for part in (head, *[b"x" * (1 << 20)] * (LARGE_CREATED_AT_CHARS >> 20), tail):
            fh.write(part)
            digest.update(part)
    storage = Storage("large-summaries", f"large-summaries-{uuid.uuid4().hex[:8]}")
    storage.ensure_bucket()
    storage.upload_file("model_summary.json", str(path), "application/json")
    size = path.stat().st_size
    path.unlink()
    return LargeSummary(storage.bucket.blob("model_summary.json"), size, digest.hexdigest(), run)
