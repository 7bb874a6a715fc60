"""The machine, the baseline's R packages, and the local servers the benchmark starts."""

from __future__ import annotations

import contextlib
import datetime as dt
import os
import platform
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path

from local_stack.emulators import FakeGcs, PubSubEmulator, _Process, _wait_http, free_port

#: Debian packages of the baseline's R libraries (the old extractor loads jsonlite and dplyr).
R_PACKAGES = {"jsonlite": "r-cran-jsonlite", "dplyr": "r-cran-dplyr"}


def rscript() -> str:
    path = shutil.which("Rscript")
    if path is None:
        raise RuntimeError("Rscript not found: install Debian's r-base-core (scripts/bootstrap.sh)")
    return path


def missing_r_packages() -> list[str]:
    code = "cat(setdiff(c({}), rownames(installed.packages())))".format(",".join(f'"{p}"' for p in R_PACKAGES))
    out = subprocess.run([rscript(), "--vanilla", "-e", code], capture_output=True, text=True, check=True, timeout=120)
    return out.stdout.split()


def ensure_r_packages() -> None:
    """Install the baseline's R packages from Debian when missing (needs root and apt-get)."""
    missing = missing_r_packages()
    if not missing:
        return
    debs = [R_PACKAGES[p] for p in missing]
    if shutil.which("apt-get") is None or os.geteuid() != 0:
        raise RuntimeError(f"R packages {missing} missing: run `apt-get install -y {' '.join(debs)}` as root")
    print(f"installing {' '.join(debs)} for the baseline", file=sys.stderr)
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    # apt's output goes to stderr: stdout carries the --json document.
    subprocess.run(["apt-get", "update", "-qq"], check=True, env=env, timeout=600, stdout=sys.stderr)
    subprocess.run(
        ["apt-get", "install", "-y", "-qq", "--no-install-recommends", *debs],
        check=True,
        env=env,
        timeout=900,
        stdout=sys.stderr,
    )
    still = missing_r_packages()
    if still:
        raise RuntimeError(f"R packages {still} still missing after apt-get install")


def machine() -> dict:
    mem_kib = 0
    with open("/proc/meminfo") as fh:
        for line in fh:
            if line.startswith("MemTotal:"):
                mem_kib = int(line.split()[1])
    cpu = ""
    with contextlib.suppress(OSError), open("/proc/cpuinfo") as fh:
        cpu = next((line.split(":", 1)[1].strip() for line in fh if line.startswith("model name")), "")
    return {
        "date": dt.datetime.now(dt.UTC).isoformat(timespec="seconds").replace("+00:00", "Z"),
        "cores": os.cpu_count(),
        "memory_gib": round(mem_kib / 1024 / 1024, 1),
        "cpu": cpu,
        "load_average": [round(x, 2) for x in os.getloadavg()],
        "python": platform.python_version(),
        "r": subprocess.run([rscript(), "--version"], capture_output=True, text=True).stdout.splitlines()[0]
        if shutil.which("Rscript")
        else None,
    }


@contextlib.contextmanager
def storage_host(url: str) -> Iterator[None]:
    """Point Storage clients created inside the block at ``url`` (the client reads it when built)."""
    saved = os.environ.get("STORAGE_EMULATOR_HOST")
    os.environ["STORAGE_EMULATOR_HOST"] = url
    try:
        yield
    finally:
        if saved is None:
            os.environ.pop("STORAGE_EMULATOR_HOST", None)
        else:
            os.environ["STORAGE_EMULATOR_HOST"] = saved


def start_pubsub(workdir: Path) -> PubSubEmulator:
    path = workdir / "pubsub"
    path.mkdir(parents=True, exist_ok=True)
    emulator = PubSubEmulator("mmm-bench", workdir=str(path))
    emulator.start()
    os.environ["PUBSUB_EMULATOR_HOST"] = emulator.host
    return emulator


def start_gcs(workdir: Path, name: str, data_dir: Path) -> FakeGcs:
    """fake-gcs-server preloaded from ``data_dir`` (its start waits for the preload)."""
    path = workdir / name
    path.mkdir(parents=True, exist_ok=True)
    server = FakeGcs(data_dir=str(data_dir), workdir=str(path))
    server_start_timeout(server)
    return server


def server_start_timeout(server: FakeGcs, timeout: float = 900.0) -> None:
    """FakeGcs.start, waiting up to ``timeout``: a large preload delays the server's first answer."""
    import local_stack.emulators as emulators

    original = emulators._wait_http
    emulators._wait_http = lambda url, proc, log, timeout=timeout: original(url, proc, log, timeout)
    try:
        server.start()
    finally:
        emulators._wait_http = original


class LiteGcs(_Process):
    """``bench.lite_gcs`` in a subprocess (see its module doc for why it exists)."""

    def __init__(self, data_dir: Path, workdir: Path) -> None:
        self.data_dir, self.port = data_dir, free_port()
        self.workdir = workdir
        workdir.mkdir(parents=True, exist_ok=True)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> None:
        self.log_path = str(self.workdir / "lite-gcs.log")
        args = [sys.executable, "-m", "bench.lite_gcs", "--data", str(self.data_dir), "--port", str(self.port)]
        self._spawn(args, self.log_path)
        assert self.proc is not None
        _wait_http(f"{self.url}/_stats", self.proc, self.log_path, timeout=600)

    def stats(self) -> dict[str, int]:
        import json
        import urllib.request

        with urllib.request.urlopen(f"{self.url}/_stats", timeout=10) as resp:
            return json.loads(resp.read())


class Shaper(_Process):
    """``bench.shaper`` in a subprocess: ``url`` reaches ``upstream`` with cloud latency and bandwidth."""

    def __init__(self, upstream: str, workdir: Path, delay_ms: float, rate_mbps: float) -> None:
        self.upstream, self.workdir, self.port = upstream, workdir, free_port()
        self.delay_ms, self.rate_mbps = delay_ms, rate_mbps
        workdir.mkdir(parents=True, exist_ok=True)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> None:
        self.log_path = str(self.workdir / f"shaper-{self.port}.log")
        args = [sys.executable, "-m", "bench.shaper", "--upstream", self.upstream, "--port", str(self.port)]
        args += ["--delay-ms", str(self.delay_ms), "--rate-mbps", str(self.rate_mbps)]
        self._spawn(args, self.log_path)
        assert self.proc is not None
        _wait_http(f"{self.url}/storage/v1/b?project=bench", self.proc, self.log_path)

    def cpu_seconds(self) -> float:
        """CPU time the shaper used so far (user and system)."""
        assert self.proc is not None
        with open(f"/proc/{self.proc.pid}/stat") as fh:
            fields = fh.read().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")  # utime, stime of proc(5)


def make_workdir(keep: str | None) -> Path:
    if keep:
        path = Path(keep)
        path.mkdir(parents=True, exist_ok=True)
        return path
    return Path(tempfile.mkdtemp(prefix="mmm-bench-"))
