"""Helpers of the producer tests: placeholder objects, dead letters, draining a subscription, a preloaded bucket."""

from __future__ import annotations

import time

import pytest


@pytest.fixture
def put(storage):
    """Upload tiny placeholder objects: the producer lists names and never reads content."""

    def upload(*names: str) -> None:
        for name in names:
            storage.write(name, b"x", 0)

    return upload


@pytest.fixture
def drain(bus):
    """Pull and ack every message of a subscription until it stays empty (or ``expect`` arrived)."""

    def pull_all(subscription: str, expect: int | None = None, timeout: float = 30.0) -> list:
        got, deadline = [], time.monotonic() + timeout
        while time.monotonic() < deadline:
            batch = bus.pull(subscription, 100, timeout=3.0)
            bus.ack(subscription, [m.ack_id for m in batch])
            got.extend(batch)
            if not batch and (expect is None or len(got) >= expect):
                break
        return got

    return pull_all


@pytest.fixture
def dead_letters(bus, settings):
    """Publish dead letters as a worker does (reason ``rds_corrupt``); returns their run paths, sorted."""
    from mmm_backfill.messages import SummaryRequest
    from mmm_backfill.runpath import RunPath

    def publish(paths: list[str], replay_count: int = 0) -> list[str]:
        messages = []
        for path in paths:
            made = SummaryRequest.for_run(settings.bucket, RunPath.parse(path), "bf1")
            request = SummaryRequest(**{**vars(made), "replay_count": replay_count})
            attributes = request.attributes() | {"error_class": "RdsCorrupt", "error_reason": "rds_corrupt"}
            messages.append((request.encode(), attributes | {"error_message": "bad stream", "worker": "host-1"}))
        bus.publish_many(settings.dead_letter_topic, messages)
        return sorted(paths)

    return publish


#: Runs in the preloaded bucket of the interrupted-enqueue test.
BIG_BUCKET_RUNS = 10_000


@pytest.fixture(scope="module")
def big_bucket(tmp_path_factory):
    """A second fake-gcs-server preloaded (``-data``) with 10,000 runs: uploads would take minutes.

    Yields the server's URL, the bucket name and the number of runs (placeholder ``OutputCollect.RDS``).
    """
    from bench.env import start_gcs

    root = tmp_path_factory.mktemp("big-bucket")
    name = "preloaded-runs"
    for i in range(BIG_BUCKET_RUNS):
        folder = root / "data" / name / "robyn" / "r1" / ("de", "fr", "us", "it")[i % 4] / f"1101_{i:06d}"
        folder.mkdir(parents=True)
        (folder / "OutputCollect.RDS").write_bytes(b"x")
    server = start_gcs(root, "gcs", root / "data")
    try:
        yield server.url, name, BIG_BUCKET_RUNS
    finally:
        server.stop()
