import pytest

from mmm_backfill.config import Settings


def test_defaults_name_the_documented_topology():
    s = Settings.load(environ={})
    assert s.request_topic == "summary-requests"
    assert s.request_subscription == "summary-requests-workers"
    assert s.dead_letter_topic == "summary-requests-dead"
    assert s.dead_letter_subscription == "summary-requests-dead-replay"
    assert s.event_topic == "summary-events"
    assert s.event_subscription == "summary-events-aggregator"
    assert s.max_delivery_attempts == 5


def test_environment_overrides_defaults_and_flags_override_environment():
    env = {"MMM_BACKFILL_BUCKET": "from-env", "MMM_BACKFILL_MAX_RDS_BYTES": "123"}
    assert Settings.load(environ=env).bucket == "from-env"
    assert Settings.load(environ=env).max_rds_bytes == 123
    assert Settings.load({"bucket": "from-flag"}, environ=env).bucket == "from-flag"


def test_flags_left_unset_do_not_erase_environment():
    assert Settings.load({"bucket": None}, environ={"MMM_BACKFILL_BUCKET": "b"}).bucket == "b"


def test_bad_number_in_environment_names_the_variable():
    with pytest.raises(ValueError, match="MMM_BACKFILL_MAX_RDS_BYTES"):
        Settings.load(environ={"MMM_BACKFILL_MAX_RDS_BYTES": "lots"})


def test_rds_limits_come_from_settings():
    limits = Settings(max_rds_bytes=10, max_rds_serialized_bytes=20).rds_limits
    assert (limits.max_file_bytes, limits.max_serialized_bytes) == (10, 20)
