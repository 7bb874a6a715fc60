"""terraform/ parses and names exactly the topics, subscriptions, accounts and grants that the code and k8s use.

Read with python-hcl2 (no terraform binary, no cloud): the locals are the module's one table of names
and settings, checked here against ``Settings``, against what ``setup`` creates, and against k8s/.
"""

from __future__ import annotations

import re
from pathlib import Path

import hcl2
import pytest
from deploy_roles import ROLE_ACCOUNTS
from packaging.specifiers import SpecifierSet
from test_manifests import RENDERED, named

from mmm_backfill.config import Settings
from mmm_backfill.topology import DEAD_LETTER_RETENTION_SECONDS, setup_topology

TERRAFORM = Path(__file__).resolve().parents[2] / "terraform"


def unwrap(value):  # noqa: ANN001, ANN201 - HCL values
    """python-hcl2 wraps attribute values and blocks in one-element lists; take them out, all the way down."""
    if isinstance(value, list) and len(value) == 1:
        inner = value[0]
        return [unwrap(v) for v in inner] if isinstance(inner, list) else unwrap(inner)
    if isinstance(value, dict):
        return {k: unwrap(v) for k, v in value.items()}
    if isinstance(value, list):
        return [unwrap(v) for v in value]
    return value


def parse_module() -> tuple[dict, dict, dict]:
    """(locals, resources by type and name, variables) of every .tf file."""
    local_values: dict = {}
    resources: dict = {}
    variables: dict = {}
    for path in sorted(TERRAFORM.glob("*.tf")):
        parsed = hcl2.loads(path.read_text())
        for block in parsed.get("locals", []):
            local_values.update(unwrap(block))
        for block in parsed.get("resource", []):
            for kind, named_blocks in block.items():
                resources.setdefault(kind, {}).update(unwrap(named_blocks))
        for block in parsed.get("variable", []):
            variables.update(unwrap(block))
    return local_values, resources, variables


LOCALS, RESOURCES, VARIABLES = parse_module()


class RecordingBus:
    """Stands in for the Bus only to write down what ``setup_topology`` asks Pub/Sub to create."""

    def __init__(self) -> None:
        self.subscriptions: dict[str, dict] = {}

    def ensure_topic(self, name: str) -> bool:
        return True

    def ensure_subscription(self, subscription: str, topic: str, **options) -> bool:  # noqa: ANN003
        self.subscriptions[subscription] = {"topic": topic, **options}
        return True


def test_every_file_parses_and_declares_project_region_bucket_and_image():
    assert list(TERRAFORM.glob("*.tf")), "no terraform files"
    assert {"project_id", "region", "bucket", "image", "enable_refresh"} <= set(VARIABLES)


def test_topics_are_the_settings_topics():
    s = Settings()
    assert LOCALS["topics"] == {
        "requests": s.request_topic,
        "dead_letter": s.dead_letter_topic,
        "events": s.event_topic,
    }


def test_subscriptions_have_the_names_and_delivery_settings_setup_creates():
    bus = RecordingBus()
    setup_topology(Settings(), bus)
    seconds = {int(LOCALS[f"retry_{end}_backoff"].removesuffix("s")) for end in ("minimum", "maximum")}
    assert seconds == {Settings().retry_min_backoff_seconds, Settings().retry_max_backoff_seconds}
    declared = {}
    for sub in LOCALS["subscriptions"].values():
        asked = bus.subscriptions[sub["name"]]
        declared[sub["name"]] = {
            "topic": LOCALS["topics"][sub["topic"]],
            "ack_deadline_seconds": sub["ack_deadline_seconds"],
            "dead_letter_topic": LOCALS["topics"]["dead_letter"] if sub["max_delivery_attempts"] else None,
            "max_delivery_attempts": sub["max_delivery_attempts"] or asked.get("max_delivery_attempts", 5),
            "retry_backoff": sub["retry_backoff"],
            "retention_seconds": seconds_of(sub["message_retention_duration"]),
        }
        if sub["retry_backoff"]:
            declared[sub["name"]]["min_backoff_seconds"] = int(LOCALS["retry_minimum_backoff"].removesuffix("s"))
            declared[sub["name"]]["max_backoff_seconds"] = int(LOCALS["retry_maximum_backoff"].removesuffix("s"))
        expected = {
            "dead_letter_topic": None,
            "max_delivery_attempts": 5,
            "retry_backoff": True,
            "retention_seconds": None,
            **asked,
        }
        if expected["retry_backoff"]:
            expected.setdefault("min_backoff_seconds", 10)
            expected.setdefault("max_backoff_seconds", 600)
        assert declared[sub["name"]] == expected, sub["name"]
    assert set(declared) == set(bus.subscriptions)


def seconds_of(duration: str | None) -> int | None:
    """``"2678400s"`` → 2678400; None (the provider's default) stays None."""
    return None if duration is None else int(duration.removesuffix("s"))


def test_no_subscription_expires_and_each_keeps_messages_as_long_as_setup_asks():
    subscription = RESOURCES["google_pubsub_subscription"]["this"]
    assert subscription["expiration_policy"] == {"ttl": ""}
    assert subscription["message_retention_duration"] == "${each.value.message_retention_duration}"
    replay = LOCALS["subscriptions"]["dead_letter_replay"]
    assert seconds_of(replay["message_retention_duration"]) == DEAD_LETTER_RETENTION_SECONDS == 31 * 24 * 3600


def test_subscriptions_resource_applies_the_dead_letter_and_retry_policies():
    subscription = RESOURCES["google_pubsub_subscription"]["this"]
    blocks = subscription["dynamic"] if isinstance(subscription["dynamic"], list) else [subscription["dynamic"]]
    dynamic = {name: block for found in blocks for name, block in found.items()}
    retry = dynamic["retry_policy"]
    assert retry["for_each"] == "${each.value.retry_backoff ? [1] : []}"
    assert retry["content"] == {
        "minimum_backoff": "${local.retry_minimum_backoff}",
        "maximum_backoff": "${local.retry_maximum_backoff}",
    }
    policy = dynamic["dead_letter_policy"]["content"]
    assert policy["dead_letter_topic"] == '${google_pubsub_topic.this["dead_letter"].id}'


def test_pubsub_service_agent_may_dead_letter_from_the_workers_subscription():
    topic = RESOURCES["google_pubsub_topic_iam_member"]["dead_letter_agent"]
    subscription = RESOURCES["google_pubsub_subscription_iam_member"]["dead_letter_agent"]
    assert "dead_letter" in topic["topic"] and topic["role"] == "roles/pubsub.publisher"
    assert '"workers"' in subscription["subscription"] and subscription["role"] == "roles/pubsub.subscriber"


def test_service_accounts_are_the_k8s_service_accounts():
    assert {LOCALS["service_accounts"][role] for role in ROLE_ACCOUNTS} == set(ROLE_ACCOUNTS.values())
    assert LOCALS["service_accounts"] == ROLE_ACCOUNTS
    k8s_accounts = {d["metadata"]["name"] for d in RENDERED["base"] if d["kind"] == "ServiceAccount"}
    assert k8s_accounts == set(ROLE_ACCOUNTS.values())


def test_workload_identity_binds_each_k8s_service_account_in_the_k8s_namespace():
    namespace = named(RENDERED["base"], "Namespace", "mmm-backfill")["metadata"]["name"]
    assert VARIABLES["gke_namespace"]["default"] == namespace
    binding = RESOURCES["google_service_account_iam_member"]["workload_identity"]
    assert binding["role"] == "roles/iam.workloadIdentityUser"
    assert binding["member"].endswith(".svc.id.goog[${var.gke_namespace}/${each.value}]")


#: The per-role table of docs/deploy.md: (grant, on what) for each role, and nothing else.
ROLE_GRANTS = {
    "worker": {
        ("roles/pubsub.subscriber", "summary-requests-workers"),
        ("roles/pubsub.publisher", "summary-events"),
        ("roles/pubsub.publisher", "summary-requests-dead"),
        ("roles/storage.objectViewer", "read_runs"),
        ("roles/storage.objectCreator", "create_summaries"),
    },
    "aggregator": {
        ("roles/pubsub.subscriber", "summary-events-aggregator"),
        ("roles/storage.objectViewer", "read_runs"),
        ("roles/storage.objectUser", "country_files"),
    },
    "jobs": {
        ("roles/pubsub.publisher", "summary-requests"),
        ("roles/pubsub.subscriber", "summary-requests-dead-replay"),
        ("roles/storage.objectViewer", "read_runs"),
        # enqueue checks the subscriptions are attached; --wait follows on subscriptions of its own
        ("roles/pubsub.viewer", "summary-requests"),
        ("roles/pubsub.viewer", "summary-events"),
        ("roles/pubsub.viewer", "summary-requests-dead"),
        ("roles/pubsub.subscriber", "summary-events"),
        ("roles/pubsub.subscriber", "summary-requests-dead"),
        ("mmm-backfill follower", "project"),
        ("roles/storage.objectViewer", "country_files"),
    },
}


def granted() -> dict[str, set[tuple[str, str]]]:
    grants: dict[str, set[tuple[str, str]]] = {role: set() for role in ROLE_ACCOUNTS}
    for grant in LOCALS["topic_publishers"].values():
        grants[grant["account"]].add(("roles/pubsub.publisher", LOCALS["topics"][grant["topic"]]))
    for grant in LOCALS["subscription_subscribers"].values():
        name = LOCALS["subscriptions"][grant["subscription"]]["name"]
        grants[grant["account"]].add(("roles/pubsub.subscriber", name))
    for grant in LOCALS["topic_viewers"].values():
        grants[grant["account"]].add(("roles/pubsub.viewer", LOCALS["topics"][grant["topic"]]))
    for grant in LOCALS["topic_attachers"].values():
        grants[grant["account"]].add(("roles/pubsub.subscriber", LOCALS["topics"][grant["topic"]]))
    for grant in LOCALS["bucket_grants"].values():
        grants[grant["account"]].add((grant["role"], grant["condition"]))
    for member in RESOURCES["google_project_iam_member"].values():  # project-wide: the roles' ones only
        account = re.fullmatch(r'\$\{google_service_account\.role\["(\w+)"\]\.member\}', member["member"])
        if account:
            role = RESOURCES["google_project_iam_custom_role"][member["role"].split(".")[1]]
            grants[account.group(1)].add((role["title"], "project"))
    return grants


def test_each_role_holds_exactly_the_grants_of_its_table():
    assert granted() == ROLE_GRANTS


def test_bucket_conditions_keep_each_grant_to_its_prefix():
    assert LOCALS["objects"] == "projects/_/buckets/${var.bucket}/objects"
    conditions = {name: c["expression"].replace('\\"', '"') for name, c in LOCALS["bucket_conditions"].items()}
    assert 'resource.name.startsWith("${local.objects}/robyn/")' in conditions["read_runs"]
    assert '.startsWith("robyn/")' in conditions["read_runs"]
    assert conditions["create_summaries"] == (
        'resource.name.startsWith("${local.objects}/robyn/") && resource.name.endsWith("/model_summary.json")'
    )
    assert 'startsWith("${local.objects}/model_summary/")' in conditions["country_files"]
    assert "robyn" not in conditions["country_files"]


def test_the_summary_replacer_may_replace_run_summaries_and_their_copies_only_and_only_with_refresh():
    role = RESOURCES["google_project_iam_custom_role"]["summary_replacer"]
    # delete to replace a summary (and an earlier copy); create for model_summary.previous.json,
    # which the workers' objectCreator condition does not cover
    assert role["permissions"] == ["storage.objects.create", "storage.objects.delete"]
    assert role["count"] == "${var.enable_refresh ? 1 : 0}"
    binding = RESOURCES["google_storage_bucket_iam_member"]["worker_replaces_summaries"]
    assert binding["count"] == role["count"]
    assert binding["member"] == '${google_service_account.role["worker"].member}'
    assert binding["condition"]["expression"] == "${local.bucket_conditions.replace_summaries.expression}"
    assert LOCALS["bucket_conditions"]["replace_summaries"]["expression"].replace('\\"', '"') == (
        'resource.name.startsWith("${local.objects}/robyn/") && (resource.name.endsWith("/model_summary.json") '
        '|| resource.name.endsWith("/model_summary.previous.json"))'
    )
    assert VARIABLES["enable_refresh"]["default"] is False


def test_the_summary_replacer_of_the_docs_is_the_one_terraform_creates():
    docs = (TERRAFORM.parent / "docs" / "deploy.md").read_text()
    permissions = re.search(r"mmmBackfillSummaryReplacer .*?--permissions=(\S+)", docs, re.S).group(1).split(",")
    assert permissions == RESOURCES["google_project_iam_custom_role"]["summary_replacer"]["permissions"]
    expression = re.search(r"cat > summary-replace.yaml.*?expression: >-\n(.*?)\nEOF", docs, re.S).group(1)
    terraform = LOCALS["bucket_conditions"]["replace_summaries"]["expression"].replace('\\"', '"')
    assert " ".join(expression.split()) == terraform.replace("${local.objects}", "projects/_/buckets/$BUCKET/objects")


def test_cloud_run_roles_run_as_their_own_service_accounts():
    pools = RESOURCES["google_cloud_run_v2_worker_pool"]
    for role in ("worker", "aggregator"):
        assert pools[role]["template"]["service_account"] == f'${{google_service_account.role["{role}"].email}}'
        assert pools[role]["template"]["containers"]["args"][0] == role
    job = RESOURCES["google_cloud_run_v2_job"]["this"]["template"]["template"]
    assert job["service_account"] == '${google_service_account.role["jobs"].email}'
    assert pools["aggregator"]["scaling"]["manual_instance_count"] == 1


def test_the_follower_role_only_manages_subscriptions():
    role = RESOURCES["google_project_iam_custom_role"]["backfill_follower"]
    assert sorted(role["permissions"]) == [
        "pubsub.subscriptions.consume",
        "pubsub.subscriptions.create",
        "pubsub.subscriptions.delete",
    ]


@pytest.mark.parametrize("job", ["enqueue", "refresh"])
def test_backfill_jobs_wait_for_a_verdict_and_give_up_before_their_task_timeout(job):
    from command_line.durations import parse_duration

    spec = LOCALS["jobs"][job]
    args = spec["args"]
    assert "--wait" in args
    assert parse_duration(args[args.index("--timeout") + 1]) < parse_duration(spec["timeout"])
    assert spec["max_retries"] == 0


def test_cloud_run_jobs_are_enqueue_replay_and_refresh():
    assert set(LOCALS["jobs"]) == {"enqueue", "replay", "refresh"}
    assert LOCALS["jobs"]["refresh"]["enabled"] == "${var.enable_refresh}"


@pytest.mark.parametrize("job", ["enqueue", "replay", "refresh"])
def test_cloud_run_job_command_lines_use_real_subcommands_and_options(job, check_invocation):
    check_invocation(LOCALS["jobs"][job]["args"])


def resolve_locals(value: str) -> str:
    value = re.sub(r"\$\{local\.topics\.(\w+)\}", lambda m: LOCALS["topics"][m.group(1)], value)
    value = re.sub(
        r"\$\{tostring\(local\.subscriptions\.(\w+)\.(\w+)\)\}",
        lambda m: str(LOCALS["subscriptions"][m.group(1)][m.group(2)]),
        value,
    )
    return re.sub(
        r"\$\{local\.subscriptions\.(\w+)\.name\}", lambda m: LOCALS["subscriptions"][m.group(1)]["name"], value
    )


def test_cloud_run_environment_is_the_k8s_configmap():
    config = named(RENDERED["overlays/example"], "ConfigMap", "mmm-backfill-config")["data"]
    env = LOCALS["app_env"]
    assert set(env) == set(config) and set(env) <= set(Settings.env_names())
    for key, value in config.items():
        if key not in ("MMM_BACKFILL_PROJECT", "MMM_BACKFILL_BUCKET"):
            assert resolve_locals(env[key]) == value, key


def test_the_workers_lease_is_the_ack_deadline_of_their_subscription_everywhere():
    config = named(RENDERED["overlays/example"], "ConfigMap", "mmm-backfill-config")["data"]
    deadline = LOCALS["subscriptions"]["workers"]["ack_deadline_seconds"]
    assert int(config["MMM_BACKFILL_ACK_DEADLINE_SECONDS"]) == deadline == Settings().ack_deadline_seconds
    assert resolve_locals(LOCALS["app_env"]["MMM_BACKFILL_ACK_DEADLINE_SECONDS"]) == str(deadline)


def test_crema_scales_the_worker_pool_with_the_prometheus_scaler_trigger_of_k8s():
    overlay = named(RENDERED["overlays/prometheus-scaler"], "ScaledObject", "mmm-backfill-worker")
    k8s_trigger = overlay["spec"]["triggers"][0]
    project = named(RENDERED["overlays/prometheus-scaler"], "ConfigMap", "mmm-backfill-config")["data"][
        "MMM_BACKFILL_PROJECT"
    ]
    scaled = LOCALS["crema_config"]["spec"]["scaledObjects"]["spec"]
    trigger = scaled["triggers"]
    assert trigger["type"] == k8s_trigger["type"] == "prometheus"
    metadata = {k: v.replace("${var.project_id}", project) for k, v in trigger["metadata"].items()}
    metadata["query"] = LOCALS["backlog_query"].replace('\\"', '"').replace("${var.project_id}", project)
    assert metadata == k8s_trigger["metadata"]
    assert scaled["scaleTargetRef"]["name"].endswith("/workerpools/mmm-backfill-worker")
    assert RESOURCES["google_cloud_run_v2_worker_pool"]["worker"]["name"] == "mmm-backfill-worker"
    assert scaled["minReplicaCount"] == overlay["spec"]["minReplicaCount"] == 0
    assert VARIABLES["max_workers"]["default"] == overlay["spec"]["maxReplicaCount"]


def test_the_worker_pool_count_belongs_to_crema():
    pool = RESOURCES["google_cloud_run_v2_worker_pool"]["worker"]
    assert pool["scaling"]["scaling_mode"] == "MANUAL"
    assert pool["lifecycle"]["ignore_changes"] == ["${scaling[0].manual_instance_count}"]


def google_provider_constraint() -> SpecifierSet:
    (block,) = hcl2.loads((TERRAFORM / "versions.tf").read_text())["terraform"]
    return SpecifierSet(unwrap(block["required_providers"])["google"]["version"])


@pytest.mark.parametrize(
    ("version", "allowed"),
    [
        ("6.46.0", False),  # manual_instance_count = 0 dropped from the request
        ("7.17.0", False),  # a permanent diff on scaling[0].scaling_mode (provider issue 25580)
        ("7.18.0", True),
        ("7.99.0", True),
        ("8.0.0", False),
    ],
)
def test_the_google_provider_is_one_that_handles_worker_pools(version, allowed):
    assert google_provider_constraint().contains(version) is allowed


def test_a_new_crema_configuration_exists_before_the_old_one_is_deleted():
    version = RESOURCES["google_parameter_manager_parameter_version"]["crema"]
    assert version["lifecycle"]["create_before_destroy"] is True


def test_docs_walk_through_terraform_for_both_paths():
    docs = (TERRAFORM.parent / "docs" / "deploy.md").read_text()
    assert "terraform apply" in docs and "gcloud run jobs execute mmm-backfill-enqueue" in docs
