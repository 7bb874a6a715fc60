import pytest

from mmm_backfill.config import EMULATOR_PROJECT, ProjectNotFound, Settings, resolve_project


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


# --- project resolution: --project, MMM_BACKFILL_PROJECT, GOOGLE_CLOUD_PROJECT, ADC, emulator default ---


def no_adc() -> str | None:
    raise AssertionError("Application Default Credentials must not be asked")


def test_project_flag_beats_every_variable():
    env = {"MMM_BACKFILL_PROJECT": "from-env", "GOOGLE_CLOUD_PROJECT": "from-google"}
    settings = Settings.load({"project": "from-flag"}, environ=env).with_resolved_project(env, no_adc)
    assert settings.project == "from-flag"


def test_project_variable_beats_google_cloud_project():
    env = {"MMM_BACKFILL_PROJECT": "from-env", "GOOGLE_CLOUD_PROJECT": "from-google"}
    assert Settings.load(environ=env).with_resolved_project(env, no_adc).project == "from-env"


def test_google_cloud_project_beats_the_credentials_project():
    env = {"GOOGLE_CLOUD_PROJECT": "from-google"}
    assert Settings.load(environ=env).with_resolved_project(env, no_adc).project == "from-google"


def test_credentials_project_is_used_when_nothing_names_one():
    assert resolve_project({}, lambda: "from-adc") == "from-adc"


def test_emulators_get_the_local_project_without_asking_the_credentials():
    for host in ("PUBSUB_EMULATOR_HOST", "STORAGE_EMULATOR_HOST"):
        assert resolve_project({host: "127.0.0.1:8085"}, no_adc) == EMULATOR_PROJECT


def test_emulators_still_use_a_named_project():
    env = {"PUBSUB_EMULATOR_HOST": "127.0.0.1:8085", "GOOGLE_CLOUD_PROJECT": "from-google"}
    assert resolve_project(env, no_adc) == "from-google"


def test_no_project_anywhere_off_the_emulators_is_an_error_that_says_how_to_give_one():
    with pytest.raises(ProjectNotFound, match="--project"):
        resolve_project({}, lambda: None)


def test_cli_reports_a_missing_project_as_a_usage_error(monkeypatch, tmp_path):
    from click.testing import CliRunner

    from command_line.main import cli
    from mmm_backfill.config import EMULATOR_HOSTS

    for name in ("MMM_BACKFILL_PROJECT", "GOOGLE_CLOUD_PROJECT", "GCLOUD_PROJECT", *EMULATOR_HOSTS):
        monkeypatch.delenv(name, raising=False)
    # Real ADC lookup, stopped at its first step: a credentials file that does not exist.
    monkeypatch.setenv("GOOGLE_APPLICATION_CREDENTIALS", str(tmp_path / "missing.json"))
    result = CliRunner().invoke(cli, ["status", "--bucket", "b"])
    assert result.exit_code == 2
    assert "no Google Cloud project" in result.output
