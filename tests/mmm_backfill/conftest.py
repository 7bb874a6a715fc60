"""Fixtures of the shared core's tests."""

from __future__ import annotations

import pytest
from pubsub_recorder import PubSubRecorder


@pytest.fixture
def recorded_bus(settings, pubsub_emulator, monkeypatch):
    """A Bus whose calls reach the emulator through a PubSubRecorder, and the recorder."""
    from mmm_backfill.bus import Bus

    with PubSubRecorder(pubsub_emulator.host) as recorder:
        monkeypatch.setenv("PUBSUB_EMULATOR_HOST", recorder.host)
        bus = Bus(settings.project)
        yield bus, recorder
        bus.close()
