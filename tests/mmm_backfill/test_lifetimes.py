from mmm_backfill.lifetimes import Lifetimes, field_value, stale_fields

OLDER_WORKERS = Lifetimes(ack_deadline_seconds=600, retention_seconds=604800, expires=True, retry_backoff=True)


def test_an_older_workers_subscription_needs_its_deadline_and_its_expiry_changed():
    assert stale_fields(OLDER_WORKERS, Lifetimes(60)) == ["ack_deadline_seconds", "expiration_policy"]


def test_a_subscription_as_setup_makes_it_needs_nothing():
    assert stale_fields(Lifetimes(60, 2678400, retry_backoff=False), Lifetimes(60, 2678400, retry_backoff=False)) == []


def test_a_retention_is_changed_only_where_one_is_wanted():
    assert stale_fields(OLDER_WORKERS, Lifetimes(600)) == ["expiration_policy"]
    assert "message_retention_duration" in stale_fields(OLDER_WORKERS, Lifetimes(600, 2678400))


def test_a_retry_policy_is_removed_where_none_is_wanted_and_never_added():
    assert stale_fields(Lifetimes(60, retry_backoff=True), Lifetimes(60, retry_backoff=False)) == ["retry_policy"]
    assert stale_fields(Lifetimes(60, retry_backoff=False), Lifetimes(60, retry_backoff=True)) == []


def test_an_expiry_is_lifted_by_a_policy_without_ttl_and_a_retry_policy_cleared_by_no_value():
    wanted = Lifetimes(60, 2678400)
    assert field_value("expiration_policy", wanted) == {"expiration_policy": {}}
    assert field_value("message_retention_duration", wanted) == {"message_retention_duration": {"seconds": 2678400}}
    assert field_value("ack_deadline_seconds", wanted) == {"ack_deadline_seconds": 60}
    assert field_value("retry_policy", wanted) == {}
