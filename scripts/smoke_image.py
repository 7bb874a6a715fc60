"""Image smoke test: build the image with podman and run its roles hardened against the local emulators.

Builds the stand-in base (scripts/image_base.sh, cached), then the Dockerfile; starts the Pub/Sub emulator
and fake-gcs-server on loopback, seeds runs, and runs ``enqueue``, ``worker`` and ``aggregator`` in the
image on the host network as the Deployment runs them: uid 10001, read-only root, a writable /tmp only,
no capabilities, no privilege escalation. It waits until every run is summarised and every country file
is written, then stops both services with SIGTERM and requires exit code 0 from each.

    .venv/bin/python scripts/smoke_image.py [--runs N] [--json]

Exit 0 when all of that held; the report gives build seconds, image size and the time to summarise.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

from local_stack.emulators import free_port
from local_stack.stack import LocalStack
from local_stack.testing import http_get, wait_for
from mmm_backfill.config import Settings

REPO = Path(__file__).resolve().parents[1]
IMAGE = "localhost/mmm-backfill:smoke"
#: podman's defaults ask for more than machines like CI's allow; crun refuses their hybrid cgroups.
PODMAN = ["podman", "--runtime", "runc"]
LIMITS = ["--ulimit", "nofile=20000:20000", "--ulimit", "nproc=32768:32768"]
#: The pod security of k8s/base (securityContext of every container, /tmp an emptyDir).
HARDENED = [
    "--user=10001:10001",
    "--read-only",
    "--read-only-tmpfs=false",
    "--tmpfs=/tmp:rw,nosuid,nodev,size=1g,mode=1777",
    "--cap-drop=ALL",
    "--security-opt=no-new-privileges",
    "--network=host",
]


def podman(*args: str, capture: bool = True, timeout: float = 900) -> str:
    done = subprocess.run([*PODMAN, *args], capture_output=capture, text=True, timeout=timeout, check=False)
    if done.returncode != 0:
        raise RuntimeError(f"podman {' '.join(args[:3])} failed ({done.returncode}): {done.stderr or ''}")
    return (done.stdout or "").strip()


def build_image() -> dict:
    """The stand-in base (built once), then the Dockerfile on it; seconds and bytes of the result."""
    started = time.monotonic()
    base = subprocess.run(
        ["bash", str(REPO / "scripts/image_base.sh")], capture_output=True, text=True, check=True
    ).stdout.strip()
    base_seconds = time.monotonic() - started
    started = time.monotonic()
    podman("build", "--network=host", *LIMITS, f"--build-arg=PYTHON_IMAGE={base}", "-t", IMAGE, str(REPO))
    size = int(podman("image", "inspect", "--format", "{{.Size}}", IMAGE))
    build_seconds = time.monotonic() - started
    return {"base_seconds": round(base_seconds, 1), "build_seconds": round(build_seconds, 1), "bytes": size}


def run_role(stack: LocalStack, role: str, *args: str, detach: bool = True) -> str:
    """``mmm-backfill ROLE ARGS`` in the image, hardened; the container id (detached) or its output."""
    env = [f"--env={k}={v}" for k, v in {**stack.env, "MMM_BACKFILL_LOG_FORMAT": "json"}.items()]
    name = f"mmm-smoke-{role}-{os.getpid()}"
    mode = ["--detach"] if detach else ["--rm"]
    return podman("run", *mode, f"--name={name}", *LIMITS, *HARDENED, *env, IMAGE, role, *args)


def hardening() -> dict:
    """What a process in the hardened container sees: its uid, and which folders it may write."""
    probe = "id -u; touch /probe 2>/dev/null && echo root-writable; touch /tmp/probe && echo tmp-writable; true"
    out = podman("run", "--rm", *LIMITS, *HARDENED, "--entrypoint=/bin/sh", IMAGE, "-c", probe).split()
    return {"uid": int(out[0]), "root_writable": "root-writable" in out, "tmp_writable": "tmp-writable" in out}


def summarised(stack: LocalStack, runs: int) -> bool:
    from mmm_backfill.storage import Storage

    storage = Storage(stack.settings.project, stack.settings.bucket)
    summaries = [o.name for o in storage.list("robyn/") if o.name.endswith("/model_summary.json")]
    countries = [o.name for o in storage.list("model_summary/") if o.name.endswith("/summary.json")]
    return len(summaries) == runs and len(countries) == 3


def stop(container: str) -> int:
    """SIGTERM (what Kubernetes and Cloud Run send), then the exit code the process chose."""
    podman("stop", "--time=120", container)
    return int(podman("inspect", "--format", "{{.State.ExitCode}}", container))


def smoke(runs: int) -> dict:
    report: dict = {"image": build_image(), "runs": runs}
    settings = Settings(
        project="mmm-smoke",
        bucket="mmm-smoke-runs",
        retry_min_backoff_seconds=1,
        retry_max_backoff_seconds=5,
        coalesce_seconds=1.0,
    )
    stack = LocalStack(settings)
    containers: list[str] = []
    try:
        stack.start_emulators()
        for args in (["setup"], ["seed", "--runs", str(runs)]):
            env = {**os.environ, **stack.env}
            subprocess.run([sys.executable, "-m", "mmm_backfill", *args], env=env, check=True, capture_output=True)
        report["hardening"] = hardening()
        started = time.monotonic()
        enqueued = json.loads(run_role(stack, "enqueue", "--json", detach=False))
        report["enqueued"] = enqueued["enqueued"]
        ports = {"worker": free_port(), "aggregator": free_port()}
        for role, port in ports.items():
            extra = ["--processes", "1"] if role == "worker" else []
            containers.append(run_role(stack, role, *extra, "--metrics-port", str(port)))
        report["healthy"] = all(
            wait_for(lambda p=port: http_get(f"http://127.0.0.1:{p}/healthz")[0] == 200, timeout=120)
            for port in ports.values()
        )
        report["summarised"] = bool(wait_for(lambda: summarised(stack, runs), timeout=300, interval=1.0))
        report["seconds_to_summarise"] = round(time.monotonic() - started, 1)
        report["exit_codes"] = {role: stop(c) for role, c in zip(ports, containers, strict=True)}
    finally:
        for container in containers:
            subprocess.run([*PODMAN, "rm", "--force", container], capture_output=True, check=False)
        stack.stop()
    hardened = report["hardening"] == {"uid": 10001, "root_writable": False, "tmp_writable": True}
    report["ok"] = hardened and report["healthy"] and report["summarised"] and set(report["exit_codes"].values()) == {0}
    return report


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=6, help="generated runs to backfill (3 countries)")
    parser.add_argument("--json", action="store_true", help="print the report as JSON")
    args = parser.parse_args()
    report = smoke(args.runs)
    if args.json:
        print(json.dumps(report))
    else:
        for key, value in report.items():
            print(f"{key:>22}: {value}")
    sys.exit(0 if report["ok"] else 1)


if __name__ == "__main__":
    main()
