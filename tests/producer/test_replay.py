"""Replay on the real Pub/Sub emulator: republish then ack, filters and failures leave dead letters in place."""

import json
import subprocess
import sys

import pytest

from mmm_backfill.config import Settings
from mmm_backfill.errors import TransientError
from mmm_backfill.messages import SummaryRequest
from mmm_backfill.runpath import RunPath
from producer.replay import MAX_DELIVERY_REASON, replay

pytestmark = pytest.mark.integration


def run_replay(settings, bus, **options):
    args = {"limit": None, "country": None, "revision": None, "dry_run": False, **options}
    return replay(settings, bus, **args)


def request(settings, path, replay_count=0):
    revision, country, timestamp = path.split("/")[1:]
    made = SummaryRequest.for_run(settings.bucket, RunPath(revision, country, timestamp), "bf1")
    return SummaryRequest(**{**vars(made), "replay_count": replay_count})


def dead_letter(bus, settings, path, reason="rds_corrupt", replay_count=0, body=None, from_worker=True):
    """Publish a dead letter the way the worker (or Pub/Sub itself) does; returns the request."""
    req = request(settings, path, replay_count)
    attributes = req.attributes()
    if from_worker:
        attributes |= {
            "error_class": "RdsCorrupt",
            "error_reason": reason,
            "error_message": f"{path}/OutputCollect.RDS: bad stream",
            "worker": "host-1",
        }
    bus.publish_and_wait(settings.dead_letter_topic, req.encode() if body is None else body, attributes)
    return req


def paths_of(messages):
    return sorted(m.attributes.get("run_path") for m in messages)


def test_replay_republishes_with_one_more_replay_and_acks_the_dead_letters(settings, bus, topology, drain):
    sent = [dead_letter(bus, settings, "robyn/r1/de/t1"), dead_letter(bus, settings, "robyn/r1/fr/t1", replay_count=2)]
    report = run_replay(settings, bus)
    assert report.to_dict()["replayed"] == 2 and report.to_dict()["unreplayable"] == []

    republished = drain(settings.request_subscription, expect=2)
    got = sorted((SummaryRequest.decode(m.data) for m in republished), key=lambda r: r.run_path)
    assert [(r.run_path, r.replay_count) for r in got] == [("robyn/r1/de/t1", 1), ("robyn/r1/fr/t1", 3)]
    assert [r.backfill_id for r in got] == [s.backfill_id for s in sent]  # same request, one more replay
    assert sorted(m.attributes["replay_count"] for m in republished) == ["1", "3"]
    assert drain(settings.dead_letter_subscription) == []  # acked


class RecordingBus:
    """A Bus that logs when a republish is confirmed and when dead letters are acked."""

    def __init__(self, bus):
        self.bus, self.events = bus, []

    def __getattr__(self, name):
        return getattr(self.bus, name)

    def publish(self, topic, data, attributes=None):
        future, events = self.bus.publish(topic, data, attributes), self.events

        class Confirmed:
            def result(self, timeout=None):
                value = future.result(timeout=timeout)
                events.append(("confirmed", attributes["run_path"]))
                return value

        return Confirmed()

    def ack(self, subscription, ack_ids):
        self.events.append(("ack", len(ack_ids)))
        return self.bus.ack(subscription, ack_ids)


def test_a_dead_letter_is_acked_only_after_its_republish_is_confirmed(settings, bus, topology, drain):
    for i in range(3):
        dead_letter(bus, settings, f"robyn/r1/de/t{i}")
    recording = RecordingBus(bus)
    assert run_replay(settings, recording).to_dict()["replayed"] == 3
    acks = [i for i, (kind, _) in enumerate(recording.events) if kind == "ack"]
    confirmations = [i for i, (kind, _) in enumerate(recording.events) if kind == "confirmed"]
    assert len(confirmations) == 3 and acks and min(acks) > max(confirmations)
    assert sum(recording.events[i][1] for i in acks) == 3


def test_a_failed_republish_leaves_the_dead_letter_in_place(settings, bus, topology, drain):
    dead_letter(bus, settings, "robyn/r1/de/t1")
    broken = settings.replace(request_topic="no-such-topic")
    report = run_replay(broken, bus)
    document = report.to_dict()
    assert (document["replayed"], document["publish_failed"]) == (0, 1)
    assert report.letters[0].action == "publish_failed" and report.letters[0].detail
    assert paths_of(drain(settings.dead_letter_subscription, expect=1)) == ["robyn/r1/de/t1"]


def test_filtered_out_dead_letters_stay_in_the_dead_letter_subscription(settings, bus, topology, drain):
    dead_letter(bus, settings, "robyn/r1/de/t1")
    dead_letter(bus, settings, "robyn/r1/fr/t1")
    dead_letter(bus, settings, "robyn/r2/de/t1")
    report = run_replay(settings, bus, country="de", revision="r1")
    assert report.to_dict()["replayed"] == 1 and report.left_in_place == 2
    assert paths_of(drain(settings.request_subscription, expect=1)) == ["robyn/r1/de/t1"]
    assert paths_of(drain(settings.dead_letter_subscription, expect=2)) == ["robyn/r1/fr/t1", "robyn/r2/de/t1"]


def test_a_malformed_dead_letter_is_reported_unreplayable_and_not_lost(settings, bus, topology, drain):
    dead_letter(bus, settings, "robyn/r1/de/bad", reason="invalid_message", body=b"not json at all")
    dead_letter(bus, settings, "robyn/r1/de/good")
    document = run_replay(settings, bus).to_dict()
    assert document["replayed"] == 1
    [bad] = document["unreplayable"]
    assert bad["run_path"] == "robyn/r1/de/bad" and bad["reason"] == "invalid_message" and "JSON" in bad["detail"]
    assert paths_of(drain(settings.dead_letter_subscription, expect=1)) == ["robyn/r1/de/bad"]
    assert paths_of(drain(settings.request_subscription, expect=1)) == ["robyn/r1/de/good"]


def test_dry_run_shows_reasons_and_messages_and_replays_nothing(settings, bus, topology, drain):
    dead_letter(bus, settings, "robyn/r1/de/t1", reason="rds_corrupt")
    dead_letter(bus, settings, "robyn/r1/de/t2", reason="rds_corrupt")
    dead_letter(bus, settings, "robyn/r1/fr/t1", reason="missing_run_file")
    report = run_replay(settings, bus, dry_run=True)
    document = report.to_dict()
    assert (document["replayed"], document["would_replay"]) == (0, 3)
    assert document["reasons"]["rds_corrupt"]["count"] == 2
    assert document["reasons"]["missing_run_file"]["example"] == "robyn/r1/fr/t1/OutputCollect.RDS: bad stream"
    assert {x["worker"] for x in document["dead_letters"]} == {"host-1"}
    titles = [t[0] for t in report.tables()]
    assert titles == ["replay (dry run)", "dead letters by reason", "dead letters"]
    assert drain(settings.request_subscription) == []
    assert len(drain(settings.dead_letter_subscription, expect=3)) == 3


def test_a_dead_letter_without_worker_attributes_was_dead_lettered_by_pubsub(settings, bus, topology, drain):
    dead_letter(bus, settings, "robyn/r1/de/t1", from_worker=False)
    [letter] = run_replay(settings, bus, dry_run=True).letters
    assert letter.reason == MAX_DELIVERY_REASON and letter.worker is None and letter.run_path == "robyn/r1/de/t1"
    drain(settings.dead_letter_subscription, expect=1)


def test_limit_replays_at_most_n_and_leaves_the_rest(settings, bus, topology, drain):
    for i in range(5):
        dead_letter(bus, settings, f"robyn/r1/de/t{i}")
    document = run_replay(settings, bus, limit=2).to_dict()
    assert document["replayed"] == 2
    assert len(drain(settings.request_subscription, expect=2)) == 2
    assert len(drain(settings.dead_letter_subscription, expect=3)) == 3


def test_an_empty_dead_letter_subscription_replays_nothing(settings, bus, topology):
    document = run_replay(settings, bus).to_dict()
    assert (document["pulled"], document["replayed"], document["dead_letters"]) == (0, 0, [])


def test_cli_replay_dry_run_prints_json(settings, bus, topology, emulator_env, drain):
    dead_letter(bus, settings, "robyn/r1/de/t1")
    env = {**emulator_env, "MMM_BACKFILL_PROJECT": settings.project, "MMM_BACKFILL_BUCKET": settings.bucket}
    result = subprocess.run(
        [sys.executable, "-m", "mmm_backfill", "replay", "--dry-run", "--json"],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, result.stderr
    document = json.loads(result.stdout)
    assert document["would_replay"] == 1 and "robyn/r1/de/t1" in json.dumps(document["dead_letters"])
    assert len(drain(settings.dead_letter_subscription, expect=1)) == 1


class FailingPullBus:
    """Pulling always fails transiently, as an empty real subscription does with DeadlineExceeded."""

    def pull(self, subscription, max_messages, timeout=10.0):
        raise TransientError("deadline exceeded")

    def ack(self, subscription, ack_ids):
        pass

    def nack(self, subscription, ack_ids):
        pass


def test_a_pull_that_keeps_failing_ends_the_replay_with_the_error_reported():
    document = run_replay(Settings(), FailingPullBus()).to_dict()
    assert document["replayed"] == 0 and "deadline exceeded" in document["pull_error"]
