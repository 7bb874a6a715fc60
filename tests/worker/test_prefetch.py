"""One request ahead on the real emulators: held, fetched and handed over; returned at once on a stop."""

import os
import threading

import pytest

from local_stack.testing import wait_for
from mmm_backfill.messages import SummaryRequest
from mmm_backfill.runpath import RunPath
from worker.boundary.rbridge import RSession
from worker.claims import AHEAD, Claims
from worker.handler import Handler
from worker.prefetch import Prefetcher

pytestmark = pytest.mark.integration

RUN = RunPath("r1", "de", "1101_000001")


@pytest.fixture
def queued(settings, storage, bus, topology, generated_runs):
    """One run uploaded and its request published."""
    for path in generated_runs["standard"].iterdir():
        storage.upload_file(RUN.object_name(path.name), str(path))
    msg = SummaryRequest.for_run(settings.bucket, RUN, "bf-test")
    bus.publish_and_wait(settings.request_topic, msg.encode(), msg.attributes())
    return msg


@pytest.fixture
def claims(tmp_path):
    return Claims(str(tmp_path / "claims"))


@pytest.fixture
def stop():
    return threading.Event()


@pytest.fixture
def ahead(settings, storage, bus, claims, stop):
    handler = Handler(settings, storage, bus, RSession.shared(), "test-worker")
    prefetcher = Prefetcher(settings, bus, handler, claims, stop)
    yield prefetcher
    prefetcher.close()


def claim_files(claims, prefix: str) -> list[str]:
    return [n for n in os.listdir(claims.root) if n.startswith(prefix)] if os.path.isdir(claims.root) else []


def pull_again(bus, settings) -> list:
    for _ in range(10):
        if found := bus.pull(settings.request_subscription, 1, timeout=2):
            return found
    return []


def test_the_next_request_is_claimed_ahead_fetched_and_handed_over(settings, bus, claims, ahead, queued):
    ahead.start()
    held = ahead.take()
    assert held is not None and held.message.data == queued.encode()
    assert held.claim.stage == AHEAD and len(claim_files(claims, "ahead-")) == 1
    assert sorted(held.fetched.files) == ["InputCollect.RDS", "OutputCollect.RDS", "best_model_id.txt", "timings.csv"]
    held.start(claims)
    assert claim_files(claims, "ahead-") == [] and len(claim_files(claims, "claim-")) == 1
    held.fetched.close()
    held.finish(bus, settings, claims, retry=False)
    assert claim_files(claims, "claim-") == []


def test_nothing_is_held_when_the_subscription_is_empty(settings, ahead, topology):
    ahead.start()
    assert ahead.take() is None


def test_a_stop_returns_the_request_held_ahead_without_waiting_for_r(settings, bus, claims, ahead, stop, queued):
    ahead.start()
    assert wait_for(lambda: ahead.held is not None and ahead.held.fetched is not None)
    folder, key = ahead.held.fetched.folder, ahead.held.claim.key
    stop.set()  # the consumer's R is busy elsewhere: nobody calls take()
    assert wait_for(lambda: not claim_files(claims, "ahead-") and not os.path.exists(folder))
    assert claims.crashes(key) == 0
    assert [m.data for m in pull_again(bus, settings)] == [queued.encode()]


def test_close_returns_the_request_held_ahead_and_removes_its_files(settings, bus, claims, ahead, queued):
    ahead.start()
    assert wait_for(lambda: ahead.held is not None and ahead.held.fetched is not None)
    folder = ahead.held.fetched.folder
    ahead.close()
    assert claim_files(claims, "ahead-") == [] and not os.path.exists(folder)
    assert [m.data for m in pull_again(bus, settings)] == [queued.encode()]
    ahead.start()  # closed: nothing more is taken
    assert ahead.take() is None
