"""The aggregator service on the real emulators: coalesced rebuilds, acks after the write, clean stops."""

import logging
import signal
import subprocess
import sys

import pytest

from aggregator.rebuild import aggregate
from mmm_backfill.runpath import RunPath
from mmm_backfill.storage import Storage

pytestmark = pytest.mark.integration


def runs(country, n, revision="r1"):
    return [RunPath(revision, country, f"t{i:03d}") for i in range(n)]


def without_time(document):
    return {k: v for k, v in document.items() if k != "aggregated_at"}


def test_events_produce_the_same_country_file_as_a_one_shot_build(kit, storage, settings):
    batch = runs("de", 4) + runs("fr", 3, "r2")
    kit.put_summaries(batch)
    aggregator = kit.start()
    kit.publish(batch)
    assert kit.wait_for(lambda: len(kit.runs_in_file("de")) == 4 and len(kit.runs_in_file("fr")) == 3)
    assert aggregator.stop() == 0
    streamed = {c: without_time(kit.read_country(c)) for c in ("de", "fr")}
    aggregate(settings, storage)
    assert streamed == {c: without_time(kit.read_country(c)) for c in ("de", "fr")}


def test_300_events_of_one_country_need_a_handful_of_rebuilds(kit):
    batch = runs("de", 300)
    kit.put_summaries(batch)
    before = kit.rebuilds()
    kit.start()
    kit.publish(batch)
    assert kit.wait_for(lambda: len(kit.runs_in_file("de")) == 300)
    assert kit.rebuilds() - before <= 5


def test_events_that_waited_through_a_restart_are_all_applied_at_once(kit):
    first = kit.start()
    kit.put_summary(RunPath("r0", "de", "t0"))
    kit.publish([RunPath("r0", "de", "t0")])
    assert kit.wait_for(lambda: kit.runs_in_file("de") == {"robyn/r0/de/t0"})
    assert first.stop() == 0
    waiting = runs("de", 300)
    kit.put_summaries(waiting)
    kit.publish(waiting)  # while no aggregator runs
    before = kit.rebuilds()
    kit.start()
    # One pull takes every waiting event: one rebuild. Through a streaming pull the emulator kept
    # handing them to the stopped aggregator's stream, and a minute passed without one applied.
    assert kit.wait_for(lambda: len(kit.runs_in_file("de")) == 301, timeout=30)
    assert kit.rebuilds() - before <= 2  # one, or two if the first pull came back short


def test_two_aggregators_on_one_subscription_lose_no_update_under_a_burst(kit):
    first, second = kit.start(coalesce_seconds=0.1), kit.start(coalesce_seconds=0.1)
    expected = set()
    for wave in range(12):  # runs keep arriving while both aggregators rebuild the same countries
        batch = runs("de", 25, f"r{wave:02d}") + runs("fr", 5, f"r{wave:02d}")
        kit.put_summaries(batch)
        kit.publish(batch)
        expected |= {run.prefix for run in batch}
    done = lambda: kit.runs_in_file("de") | kit.runs_in_file("fr") == expected  # noqa: E731
    assert kit.wait_for(done, timeout=60)
    assert (first.stop(), second.stop()) == (0, 0)
    assert kit.pending_runs(timeout=3) == set()


def test_events_are_not_acked_but_redelivered_while_the_write_fails(kit, monkeypatch):
    original = Storage.write

    def failing_write(self, name, data, if_generation_match, **kwargs):
        if name.startswith("model_summary/"):
            raise OSError("disk on fire")
        return original(self, name, data, if_generation_match, **kwargs)

    def events(result):
        return kit.counter("mmm_backfill_aggregator_events", result=result)

    batch = runs("de", 3)
    kit.put_summaries(batch)
    retried, applied = events("retried"), events("applied")
    monkeypatch.setattr(Storage, "write", failing_write)
    kit.start()
    kit.publish(batch)
    # Each failed rebuild returns the 3 events; seeing them fail twice means they came back.
    assert kit.wait_for(lambda: events("retried") - retried >= 2 * len(batch))
    assert events("applied") == applied
    assert kit.read_country("de") is None


def test_events_of_a_failed_write_come_back_and_are_applied(kit, monkeypatch):
    original, failures = Storage.write, []

    def flaky_write(self, name, data, if_generation_match, **kwargs):
        if name.startswith("model_summary/") and len(failures) < 2:
            failures.append(name)
            raise OSError("temporarily down")
        return original(self, name, data, if_generation_match, **kwargs)

    batch = runs("de", 3)
    kit.put_summaries(batch)
    monkeypatch.setattr(Storage, "write", flaky_write)
    kit.start()
    kit.publish(batch)
    assert kit.wait_for(lambda: len(kit.runs_in_file("de")) == 3)
    assert len(failures) == 2


def test_a_malformed_event_is_dropped_and_the_service_goes_on(kit, settings, bus):
    malformed = kit.counter("mmm_backfill_aggregator_events", result="malformed")
    aggregator = kit.start()
    bus.publish_and_wait(settings.event_topic, b"{not json")
    bus.publish_and_wait(settings.event_topic, b'{"v": 1, "run_path": "robyn/../de/t1"}')
    kit.put_summary(RunPath("r1", "de", "t1"))
    kit.publish([RunPath("r1", "de", "t1")])
    assert kit.wait_for(lambda: kit.runs_in_file("de") == {"robyn/r1/de/t1"})
    assert kit.counter("mmm_backfill_aggregator_events", result="malformed") - malformed == 2
    assert aggregator.thread.is_alive()
    assert aggregator.stop() == 0
    assert kit.pending_runs(timeout=3) == set()


def test_an_event_of_another_bucket_is_dropped(kit, settings, bus):
    aggregator = kit.start()
    event = kit.event(RunPath("r1", "de", "t1"), bucket="someone-else")
    bus.publish_and_wait(settings.event_topic, event.encode())
    assert kit.wait_for(lambda: kit.counter("mmm_backfill_aggregator_events", result="other_bucket") > 0)
    assert aggregator.stop() == 0
    assert kit.read_country("de") is None


def test_stop_finishes_the_rebuild_in_hand_before_exiting(kit, caplog):
    caplog.set_level(logging.DEBUG, logger="aggregator")
    aggregator = kit.start(coalesce_seconds=60.0)  # without the stop, nothing would be due for a minute
    kit.put_summary(RunPath("r1", "de", "t1"))
    kit.publish([RunPath("r1", "de", "t1")])
    assert kit.wait_for(lambda: any(r.getMessage() == "event queued" for r in caplog.records))
    assert aggregator.stop() == 0
    assert kit.runs_in_file("de") == {"robyn/r1/de/t1"}
    assert kit.pending_runs(timeout=3) == set()


def test_sigterm_stops_the_aggregator_command_with_exit_0(kit, settings, emulator_env, tmp_path):
    env = {**emulator_env, "MMM_BACKFILL_PROJECT": settings.project, "MMM_BACKFILL_BUCKET": settings.bucket}
    log_path = tmp_path / "aggregator.log"
    with open(log_path, "w") as log:
        proc = subprocess.Popen([sys.executable, "-m", "mmm_backfill", "aggregator"], env=env, stderr=log)
    try:
        kit.put_summary(RunPath("r1", "de", "t1"))
        kit.publish([RunPath("r1", "de", "t1")])
        assert kit.wait_for(lambda: kit.runs_in_file("de") == {"robyn/r1/de/t1"}, timeout=60)
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=60) == 0, log_path.read_text()[-2000:]
    finally:
        if proc.poll() is None:
            proc.kill()
