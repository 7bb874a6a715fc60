import dataclasses
import json

import pytest

from mmm_backfill import errors
from mmm_backfill.messages import CompletionEvent, SummaryRequest
from mmm_backfill.runpath import RunPath

REQUEST = SummaryRequest.for_run("a-bucket", RunPath("r1", "de", "t1"), "bf1", "2026-11-29T00:00:00Z")


def body(**changes):
    return json.dumps({**dataclasses.asdict(REQUEST), **changes}).encode()


def test_request_round_trips_through_its_encoding():
    assert SummaryRequest.decode(REQUEST.encode()) == REQUEST
    assert REQUEST.attributes() == {
        "revision": "r1",
        "country": "de",
        "run_path": "robyn/r1/de/t1",
        "replay_count": "0",
        "backfill_id": "bf1",
    }


@pytest.mark.parametrize(
    "data,error",
    [
        (b"x" * 20_000, errors.MessageTooLarge),
        (b"\xff\xfe{}", errors.MessageNotUtf8),
        (b'{"v": 1, "bucket": ', errors.MessageNotJson),
        (b"[1, 2]", errors.MessageBadFields),
        (body(v=2), errors.MessageVersion),
        (body(extra="x"), errors.MessageBadFields),
        (body(replay_count="0"), errors.MessageBadFields),
        (body(replay_count=True), errors.MessageBadFields),
        (body(replay_count=-1), errors.MessageBadFields),
        (body(backfill_id=""), errors.MessageBadFields),
        (body(backfill_id='bf" OR "x'), errors.MessageBadFields),
        (body(backfill_id="b" * 129), errors.MessageBadFields),
        (body(bucket="Not/A/Bucket"), errors.MessageBadFields),
        (body(run_path="robyn/../de/t1", revision=".."), errors.PathOutsideLayout),
        (body(run_path="/robyn/r1/de/t1"), errors.PathOutsideLayout),
        (body(run_path="robyn/r1/de/t1/x"), errors.PathOutsideLayout),
        (body(run_path="robyn/r2/de/t1"), errors.PathOutsideLayout),
    ],
)
def test_each_malformed_request_raises_its_own_error(data, error):
    with pytest.raises(error) as info:
        SummaryRequest.decode(data)
    assert type(info.value) is error and isinstance(info.value, errors.InvalidMessage)


def test_missing_field_is_named():
    document = dataclasses.asdict(REQUEST)
    del document["backfill_id"]
    with pytest.raises(errors.MessageBadFields, match="backfill_id"):
        SummaryRequest.decode(json.dumps(document).encode())


def test_event_with_unknown_outcome_is_refused():
    event = CompletionEvent("a-bucket", "robyn/r1/de/t1", "r1", "de", "t1", "made", 1, 0.5, "w", "now")
    with pytest.raises(errors.MessageBadFields, match="outcome"):
        CompletionEvent.decode(event.encode())


# -- refresh requests ---------------------------------------------------------------------------

REFRESH = SummaryRequest.for_run("a-bucket", RunPath("r1", "de", "t1"), "bf1", "2026-11-29T00:00:00Z", 1234)


def test_refresh_request_round_trips_with_the_generation_to_replace():
    decoded = SummaryRequest.decode(REFRESH.encode())
    assert decoded == REFRESH and decoded.replace_generation == 1234


def test_create_only_request_encodes_exactly_as_before_refreshes_existed():
    assert "replace_generation" not in json.loads(REQUEST.encode())
    old_body = {k: v for k, v in dataclasses.asdict(REQUEST).items() if k != "replace_generation"}
    assert SummaryRequest.decode(json.dumps(old_body).encode()).replace_generation is None


def test_null_replace_generation_means_create_only():
    assert SummaryRequest.decode(body(replace_generation=None)).replace_generation is None


@pytest.mark.parametrize("value", [0, -5, "12", 1.5, True, [1], {"g": 1}])
def test_replace_generation_that_is_not_a_positive_integer_is_refused(value):
    with pytest.raises(errors.MessageBadFields, match="replace_generation"):
        SummaryRequest.decode(body(replace_generation=value))


def test_replaced_is_a_known_event_outcome():
    event = CompletionEvent("a-bucket", "robyn/r1/de/t1", "r1", "de", "t1", "replaced", 7, 0.5, "w", "now")
    assert CompletionEvent.decode(event.encode()).outcome == "replaced"
