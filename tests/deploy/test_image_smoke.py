"""The image builds from the lock and runs every long-lived role hardened (scripts/smoke_image.py).

Runs where podman can run containers (scripts/bootstrap.sh installs podman, runc and debootstrap);
about 85 s the first time on a 2-core machine (stand-in base 40 s, build 35 s), about 12 s once cached.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]


def podman_runs_containers() -> bool:
    if not (shutil.which("podman") and shutil.which("runc") and shutil.which("debootstrap")):
        return False
    return subprocess.run(["podman", "--runtime", "runc", "info"], capture_output=True, check=False).returncode == 0


@pytest.mark.integration
@pytest.mark.skipif(not podman_runs_containers(), reason="podman with runc and debootstrap are not installed")
def test_image_builds_and_its_roles_summarise_runs_hardened_and_stop_cleanly():
    done = subprocess.run(
        [sys.executable, str(REPO / "scripts/smoke_image.py"), "--json"],
        capture_output=True,
        text=True,
        timeout=1200,
        check=False,
    )
    assert done.stdout.strip(), done.stderr[-3000:]
    report = json.loads(done.stdout.strip().splitlines()[-1])
    assert report["hardening"] == {"uid": 10001, "root_writable": False, "tmp_writable": True}
    assert report["enqueued"] == report["runs"]
    assert report["healthy"] and report["summarised"], report
    assert report["exit_codes"] == {"worker": 0, "aggregator": 0}
    assert done.returncode == 0, done.stderr[-3000:]
