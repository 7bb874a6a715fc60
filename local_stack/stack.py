"""A local stack: emulators plus worker and aggregator processes, for ``demo`` and end-to-end tests."""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import tempfile
from dataclasses import dataclass, field

from local_stack.emulators import FakeGcs, PubSubEmulator
from mmm_backfill.config import Settings


@dataclass
class LocalStack:
    """Emulators (started here unless hosts are given) and the role processes started on them.

    pubsub_host / storage_url: use running emulators instead of starting new ones.
    data_dir: preload fake-gcs-server from ``DIR/<bucket>/<object>`` (only when started here).
    """

    settings: Settings
    pubsub_host: str | None = None
    storage_url: str | None = None
    data_dir: str | None = None
    workdir: str = field(default_factory=lambda: tempfile.mkdtemp(prefix="mmm-stack-"))
    processes: list[subprocess.Popen] = field(default_factory=list)
    _emulators: list = field(default_factory=list)

    def start_emulators(self) -> None:
        if not self.pubsub_host:
            pubsub = PubSubEmulator(self.settings.project, workdir=os.path.join(self.workdir, "pubsub"))
            os.makedirs(pubsub.workdir, exist_ok=True)
            pubsub.start()
            self._emulators.append(pubsub)
            self.pubsub_host = pubsub.host
        if not self.storage_url:
            gcs = FakeGcs(data_dir=self.data_dir, workdir=os.path.join(self.workdir, "gcs"))
            os.makedirs(gcs.workdir, exist_ok=True)
            gcs.start()
            self._emulators.append(gcs)
            self.storage_url = gcs.url
        os.environ["PUBSUB_EMULATOR_HOST"] = self.pubsub_host
        os.environ["STORAGE_EMULATOR_HOST"] = self.storage_url

    @property
    def env(self) -> dict[str, str]:
        """Environment that points any ``mmm-backfill`` command at this stack."""
        return {
            "PUBSUB_EMULATOR_HOST": self.pubsub_host or "",
            "STORAGE_EMULATOR_HOST": self.storage_url or "",
            "MMM_BACKFILL_PROJECT": self.settings.project,
            "MMM_BACKFILL_BUCKET": self.settings.bucket,
            "MMM_BACKFILL_RETRY_MIN_BACKOFF_SECONDS": str(self.settings.retry_min_backoff_seconds),
            "MMM_BACKFILL_RETRY_MAX_BACKOFF_SECONDS": str(self.settings.retry_max_backoff_seconds),
            "MMM_BACKFILL_COALESCE_SECONDS": str(self.settings.coalesce_seconds),
        }

    def spawn(self, *args: str, log_name: str) -> subprocess.Popen:
        """Start ``mmm-backfill ARGS`` in the background, its output in the stack's log folder."""
        log_path = os.path.join(self.workdir, f"{log_name}.log")
        env = {**os.environ, **self.env, "MMM_BACKFILL_LOG_FORMAT": "json"}
        with open(log_path, "ab") as log:
            proc = subprocess.Popen([sys.executable, "-m", "mmm_backfill", *args], env=env, stdout=log, stderr=log)
        self.processes.append(proc)
        return proc

    def stop_processes(self, timeout: float = 120.0) -> list[int | None]:
        for proc in self.processes:
            if proc.poll() is None:
                proc.send_signal(signal.SIGTERM)
        codes = []
        for proc in self.processes:
            try:
                codes.append(proc.wait(timeout=timeout))
            except subprocess.TimeoutExpired:
                proc.kill()
                codes.append(proc.wait())
        self.processes.clear()
        return codes

    def stop(self) -> None:
        self.stop_processes()
        for emulator in reversed(self._emulators):
            with contextlib.suppress(Exception):
                emulator.stop()
        self._emulators.clear()
