"""enqueue stopped by SIGTERM mid-publish, and enqueue refusing a filter that matches no run."""

import json
import signal
import subprocess
import sys

import pytest

from mmm_backfill.messages import SummaryRequest
from producer.enqueue import NoRunsFound, enqueue

pytestmark = pytest.mark.integration


def test_sigterm_mid_publish_reports_exactly_the_requests_published(settings, topology, big_bucket, interrupt, drain):
    url, bucket, runs = big_bucket
    stopped = interrupt(
        ["enqueue", "--bucket", bucket, "--json"],
        marker="requests confirmed",
        env={"STORAGE_EMULATOR_HOST": url},
    )
    assert stopped.returncode == 128 + signal.SIGTERM, stopped.stderr[-2000:]
    assert stopped.seconds < 5
    report = json.loads(stopped.stdout)
    assert report["runs_seen"] == report["missing"] == runs
    assert report["interrupted_by"] == "SIGTERM" and 0 < report["enqueued"] < runs
    assert "interrupted by SIGTERM" in stopped.stderr
    published = drain(settings.request_subscription, expect=report["enqueued"], timeout=120)
    paths = [SummaryRequest.decode(m.data).run_path for m in published]
    assert len(paths) == len(set(paths)) == report["enqueued"]


def test_a_revision_with_no_runs_is_an_error_naming_the_prefix_listed(settings, storage, put):
    put("robyn/r1/de/t1/OutputCollect.RDS")
    with pytest.raises(NoRunsFound, match=f"gs://{settings.bucket}/robyn/r9/"):
        enqueue(settings, storage, None, revision="r9", country=None, limit=None, dry_run=True, show_progress=False)


def test_a_country_with_no_runs_names_every_prefix_listed(settings, storage, put):
    put("robyn/r1/de/t1/OutputCollect.RDS", "robyn/r2/de/t1/OutputCollect.RDS")
    with pytest.raises(NoRunsFound, match="robyn/r1/xx/, gs://.*/robyn/r2/xx/"):
        enqueue(settings, storage, None, revision=None, country="xx", limit=None, dry_run=True, show_progress=False)


def test_allow_empty_accepts_a_filter_that_matches_nothing(settings, storage, put):
    put("robyn/r1/de/t1/OutputCollect.RDS")
    options = {"revision": "r9", "country": None, "limit": None, "dry_run": True, "show_progress": False}
    report = enqueue(settings, storage, None, allow_empty=True, **options)
    assert (report.runs_seen, report.would_enqueue, report.prefixes) == (0, 0, ["robyn/r9/"])


def test_cli_exits_1_on_an_empty_match_and_0_with_allow_empty(settings, storage, topology, put, cli_env):
    put("robyn/r1/de/t1/OutputCollect.RDS")
    command = [sys.executable, "-m", "mmm_backfill", "enqueue", "--revision", "REVISION", "--json"]
    refused = subprocess.run(command, env=cli_env, capture_output=True, text=True, timeout=120)
    assert refused.returncode == 1 and refused.stdout == ""
    assert f"error [no_runs]: no run found under gs://{settings.bucket}/robyn/REVISION/" in refused.stderr
    allowed = subprocess.run([*command, "--allow-empty"], env=cli_env, capture_output=True, text=True, timeout=120)
    assert allowed.returncode == 0, allowed.stderr
    assert json.loads(allowed.stdout)["enqueued"] == 0
