"""A running worker serves /healthz, /readyz and /metrics with its run counters."""

import subprocess
import sys

import pytest

from local_stack.emulators import free_port
from local_stack.testing import http_get, wait_for
from mmm_backfill.messages import SummaryRequest
from mmm_backfill.runpath import RunPath

pytestmark = pytest.mark.integration


def test_worker_endpoints_report_health_and_outcomes(settings, storage, bus, topology, emulator_env, generated_runs):
    run = RunPath("r1", "de", "metrics")
    for path in generated_runs["standard"].iterdir():
        storage.upload_file(run.object_name(path.name), str(path))
    request = SummaryRequest.for_run(settings.bucket, run, "bf")
    bus.publish_and_wait(settings.request_topic, request.encode(), request.attributes())
    port = free_port()
    env = {**emulator_env, "MMM_BACKFILL_PROJECT": settings.project, "MMM_BACKFILL_BUCKET": settings.bucket}
    proc = subprocess.Popen([sys.executable, "-m", "mmm_backfill", "worker", "--metrics-port", str(port)], env=env)
    base = f"http://127.0.0.1:{port}"
    try:
        assert wait_for(lambda: http_get(f"{base}/readyz")[0] == 200)
        assert http_get(f"{base}/healthz")[0] == 200
        text = wait_for(lambda: (t := http_get(f"{base}/metrics")[1]) and 'outcome="created"} 1.0' in t and t)
        assert text, "created outcome never counted"
        assert "mmm_backfill_run_seconds_count 1.0" in text
        assert "mmm_backfill_rds_bytes_read_total" in text
        assert "mmm_backfill_runs_in_flight 0.0" in text
    finally:
        proc.terminate()
        assert proc.wait(timeout=60) == 0
