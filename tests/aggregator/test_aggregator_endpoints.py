"""A running aggregator serves /readyz and /metrics with its rebuild and download counters."""

import json
import subprocess
import sys

import pytest

from local_stack.emulators import free_port
from local_stack.testing import http_get, wait_for
from mmm_backfill.messages import CompletionEvent, utc_now
from mmm_backfill.runpath import RunPath

pytestmark = pytest.mark.integration


def test_aggregator_endpoints_report_rebuilds_and_downloads(settings, storage, bus, topology, emulator_env):
    run = RunPath("r1", "de", "t1")
    summary = {
        "schema_version": 1,
        "country": "de",
        "revision": "r1",
        "timestamp": "t1",
        "created_at": utc_now(),
        "best_model": {"model_id": "a", "nrmse": 0.1},
        "has_pareto_models": True,
        "pareto_model_count": 1,
        "candidate_model_count": 1,
        "training_time_mins": None,
    }
    generation = storage.write(run.summary_name, json.dumps(summary).encode(), 0)
    event = CompletionEvent(settings.bucket, run.prefix, "r1", "de", "t1", "created", generation, 0.1, "w", utc_now())
    bus.publish_and_wait(settings.event_topic, event.encode(), event.attributes())
    port = free_port()
    env = {
        **emulator_env,
        "MMM_BACKFILL_PROJECT": settings.project,
        "MMM_BACKFILL_BUCKET": settings.bucket,
        "MMM_BACKFILL_COALESCE_SECONDS": "0.2",
    }
    proc = subprocess.Popen([sys.executable, "-m", "mmm_backfill", "aggregator", "--metrics-port", str(port)], env=env)
    base = f"http://127.0.0.1:{port}"
    try:
        text = wait_for(lambda: (t := http_get(f"{base}/metrics")[1]) and 'result="written"} 1.0' in t and t) or ""
        assert 'mmm_backfill_aggregator_rebuilds_total{result="written"} 1.0' in text
        assert "mmm_backfill_aggregator_summaries_fetched_total 1.0" in text
        assert http_get(f"{base}/readyz")[0] == 200
    finally:
        proc.terminate()
        assert proc.wait(timeout=60) == 0
