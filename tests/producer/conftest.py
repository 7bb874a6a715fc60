"""Helpers of the producer tests: placeholder objects in the bucket, draining a subscription."""

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
