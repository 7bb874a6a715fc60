"""docker-compose.yml wires the emulators and the roles together the way the code expects (read statically)."""

from __future__ import annotations

import re
import shlex
from pathlib import Path

import yaml
from deploy_roles import COMPONENT_ROLES, ROLE_ACCOUNTS

from mmm_backfill.config import EMULATOR_PROJECT, Settings

COMPOSE = yaml.safe_load((Path(__file__).resolve().parents[2] / "docker-compose.yml").read_text())
SERVICES = COMPOSE["services"]
APP_SERVICES = ["setup", "producer", "worker", "aggregator"]
DEFAULT = re.compile(r"^\$\{(\w+):-([^}]*)\}$")


def argv_lists(service: dict) -> list[list[str]]:
    """The ``mmm-backfill`` command lines a service runs (one, or several chained with && under sh -c)."""
    command = service["command"]
    if service.get("entrypoint") == ["/bin/sh", "-c"]:
        (script,) = command
        return [shlex.split(part) for part in script.split("&&")]
    return [["mmm-backfill", *command]]


def default_of(value: str) -> str:
    """``${NAME:-default}`` -> default (what compose uses when NAME is unset); plain values as they are."""
    found = DEFAULT.match(value)
    return found.group(2) if found else value


INVOCATIONS = [(name, argv) for name in APP_SERVICES for argv in argv_lists(SERVICES[name])]


def test_has_the_emulators_and_every_role():
    assert set(SERVICES) == {"pubsub", "gcs", *APP_SERVICES}


def test_command_lines_use_real_subcommands_and_options(invocation, check_invocation):
    assert invocation[0] == "mmm-backfill"
    check_invocation(invocation)


def test_setup_creates_the_topology_then_seeds_sample_runs():
    assert [argv[:2] for argv in argv_lists(SERVICES["setup"])] == [
        ["mmm-backfill", "setup"],
        ["mmm-backfill", "seed"],
    ]


def test_app_services_build_the_one_image_and_share_one_environment():
    envs = [SERVICES[name]["environment"] for name in APP_SERVICES]
    assert all(env == envs[0] for env in envs)
    assert {SERVICES[name]["build"] for name in APP_SERVICES} == {"."}
    env = envs[0]
    assert env["PUBSUB_EMULATOR_HOST"] == "pubsub:8085"
    assert env["STORAGE_EMULATOR_HOST"] == "http://gcs:4443"
    assert {"MMM_BACKFILL_PROJECT", "MMM_BACKFILL_BUCKET"} <= set(env)


def test_every_environment_variable_is_a_setting():
    for name in APP_SERVICES:
        unknown = set(SERVICES[name]["environment"]) - set(Settings.env_names())
        assert not unknown, f"{name}: {unknown}"


def test_pubsub_emulator_serves_the_project_the_roles_use():
    pubsub = SERVICES["pubsub"]
    assert pubsub["image"] == "gcr.io/google.com/cloudsdktool/google-cloud-cli:emulators"
    assert pubsub["command"][:5] == ["gcloud", "beta", "emulators", "pubsub", "start"]
    assert "--host-port=0.0.0.0:8085" in pubsub["command"]
    project = SERVICES["worker"]["environment"]["MMM_BACKFILL_PROJECT"]
    assert f"--project={project}" in pubsub["command"]
    assert default_of(project) == EMULATOR_PROJECT
    assert "healthcheck" in pubsub


def test_storage_emulator_answers_at_the_address_the_roles_use():
    gcs = SERVICES["gcs"]
    assert gcs["image"] == "fsouza/fake-gcs-server:1.54"
    flags = dict(zip(gcs["command"][::2], gcs["command"][1::2], strict=True))
    assert flags["-scheme"] == "http" and flags["-port"] == "4443"
    assert flags["-external-url"] == SERVICES["worker"]["environment"]["STORAGE_EMULATOR_HOST"]
    assert default_of(SERVICES["worker"]["environment"]["MMM_BACKFILL_BUCKET"]) == Settings().bucket
    assert "healthcheck" in gcs


def test_start_order_follows_health_and_completion():
    healthy = {"condition": "service_healthy"}
    done = {"condition": "service_completed_successfully"}
    assert SERVICES["setup"]["depends_on"] == {"pubsub": healthy, "gcs": healthy}
    for name in ("producer", "worker", "aggregator"):
        assert SERVICES[name]["depends_on"] == {"setup": done}, name


def test_workers_scale_without_clashing_and_report_health_on_their_metrics_port():
    worker = SERVICES["worker"]
    assert "container_name" not in worker and "ports" not in worker, "--scale worker=N needs neither"
    port = worker["command"][worker["command"].index("--metrics-port") + 1]
    assert f"127.0.0.1:{port}/healthz" in " ".join(worker["healthcheck"]["test"])


def test_aggregator_reports_health_on_its_metrics_port():
    aggregator = SERVICES["aggregator"]
    port = aggregator["command"][aggregator["command"].index("--metrics-port") + 1]
    assert f"127.0.0.1:{port}/healthz" in " ".join(aggregator["healthcheck"]["test"])


def test_each_app_service_runs_as_the_service_account_of_its_role():
    for name in APP_SERVICES:
        assert SERVICES[name]["labels"] == {"mmm-backfill.service-account": ROLE_ACCOUNTS[COMPONENT_ROLES[name]]}, name
