"""The Kubernetes manifests (k8s/base and its overlays) are valid, hardened and agree with the code.

Nothing here talks to a cluster: core kinds are validated offline against kubernetes-validate's
schemas, KEDA's kinds against the fields KEDA requires, and every command line against the click CLI.
The overlays are rendered by the small kustomize below (no kustomize binary on this machine): resources,
namespace, labels, images, strategic-merge patches and JSON 6902 patches, all the project uses; it
refuses other kustomization fields, and a patch that matches no resource is an error.
"""

from __future__ import annotations

import copy
import re
from pathlib import Path

import kubernetes_validate
import pytest
import yaml
from deploy_roles import COMPONENT_ROLES, ROLE_ACCOUNTS

from mmm_backfill.config import Settings

K8S = Path(__file__).resolve().parents[2] / "k8s"
KUSTOMIZATIONS = ["base", "overlays/example", "overlays/prometheus-scaler"]
#: The Kubernetes version the manifests are validated against (a current GKE release).
KUBERNETES_VERSION = "1.33"
WORKER = "mmm-backfill-worker"
AGGREGATOR = "mmm-backfill-aggregator"
CONFIG = "mmm-backfill-config"
RUN_AS = 10001
GMP_ADDRESS = re.compile(
    r"^https://monitoring\.googleapis\.com/v1/projects/([a-z][-a-z0-9]+)/location/global/prometheus$"
)

# --- a small kustomize -------------------------------------------------------------------------

_KUSTOMIZE_FIELDS = {"apiVersion", "kind", "namespace", "labels", "resources", "images", "patches"}


def load_all(path: Path) -> list[dict]:
    return [doc for doc in yaml.safe_load_all(path.read_text()) if doc]


def render(folder: Path) -> list[dict]:
    """The resources ``kubectl kustomize folder`` prints, for the features listed above."""
    spec = yaml.safe_load((folder / "kustomization.yaml").read_text())
    unknown = set(spec) - _KUSTOMIZE_FIELDS
    assert not unknown, f"{folder}: kustomization fields this renderer does not know: {unknown}"
    docs: list[dict] = []
    for entry in spec.get("resources", []):
        target = (folder / entry).resolve()
        docs += render(target) if target.is_dir() else load_all(target)
    for entry in spec.get("patches", []):
        apply_patch(folder, entry, docs)
    for doc in docs:
        apply_transformers(spec, doc)
    return docs


def apply_patch(folder: Path, entry: dict, docs: list[dict]) -> None:
    body = yaml.safe_load((folder / entry["path"]).read_text() if "path" in entry else entry["patch"])
    if isinstance(body, list):  # JSON 6902
        matches = [d for d in docs if matches_target(d, entry["target"])]
        assert matches, f"{folder}: JSON patch {entry} matches no resource"
        for doc in matches:
            for op in body:
                json_patch(doc, op)
        return
    target = {"kind": body["kind"], "name": body["metadata"]["name"], **entry.get("target", {})}
    matches = [d for d in docs if matches_target(d, target)]
    assert matches, f"{folder}: patch {entry} matches no resource"
    for doc in matches:
        doc.update(strategic_merge(doc, body))


def matches_target(doc: dict, target: dict) -> bool:
    group, _, version = doc["apiVersion"].rpartition("/")
    wanted = {"kind": doc["kind"], "name": doc["metadata"]["name"], "group": group, "version": version}
    return all(target.get(key, value) == value for key, value in wanted.items())


def strategic_merge(base, patch):  # noqa: ANN001, ANN201 - YAML values
    """Maps merge key by key; lists of maps with a ``name`` merge by name; anything else is replaced."""
    if isinstance(base, dict) and isinstance(patch, dict):
        merged = dict(base)
        for key, value in patch.items():
            merged[key] = strategic_merge(base[key], value) if key in base else copy.deepcopy(value)
        return merged
    if isinstance(base, list) and isinstance(patch, list) and all(isinstance(i, dict) and "name" in i for i in patch):
        merged = copy.deepcopy(base)
        for item in patch:
            same = [i for i, old in enumerate(merged) if isinstance(old, dict) and old.get("name") == item["name"]]
            if same:
                merged[same[0]] = strategic_merge(merged[same[0]], item)
            else:
                merged.append(copy.deepcopy(item))
        return merged
    return copy.deepcopy(patch)


def json_patch(doc: dict, op: dict) -> None:
    *parents, last = [p.replace("~1", "/").replace("~0", "~") for p in op["path"].lstrip("/").split("/")]
    node = doc
    for part in parents:
        node = node[int(part)] if isinstance(node, list) else node[part]
    key = (len(node) if last == "-" else int(last)) if isinstance(node, list) else last
    if op["op"] == "replace":
        assert (key in node) if isinstance(node, dict) else key < len(node), f"replace of a missing {op['path']}"
        node[key] = copy.deepcopy(op["value"])
    elif op["op"] == "add" and isinstance(node, list):
        node.insert(key, copy.deepcopy(op["value"]))
    elif op["op"] == "add":
        node[key] = copy.deepcopy(op["value"])
    elif op["op"] == "remove":
        del node[key]
    else:
        raise AssertionError(f"JSON patch op not supported here: {op['op']}")


def apply_transformers(spec: dict, doc: dict) -> None:
    meta = doc.setdefault("metadata", {})
    if "namespace" in spec and doc["kind"] != "Namespace":
        meta["namespace"] = spec["namespace"]
    for group in spec.get("labels", []):
        assert not group.get("includeSelectors"), "selector labels are not rendered here"
        meta.setdefault("labels", {}).update(group["pairs"])
    for container in containers(doc):
        for image in spec.get("images", []):
            name, _, tag = container["image"].partition(":")
            if name == image["name"]:
                tag = image.get("newTag", tag)
                container["image"] = image.get("newName", name) + (f":{tag}" if tag else "")


# --- lookups -----------------------------------------------------------------------------------


def pod_spec(doc: dict) -> dict | None:
    return doc["spec"]["template"]["spec"] if doc["kind"] in ("Deployment", "Job") else None


def containers(doc: dict) -> list[dict]:
    spec = pod_spec(doc)
    return [] if spec is None else spec.get("containers", []) + spec.get("initContainers", [])


def named(docs: list[dict], kind: str, name: str) -> dict:
    found = [d for d in docs if d["kind"] == kind and d["metadata"]["name"] == name]
    assert len(found) == 1, f"expected one {kind}/{name}, found {len(found)}"
    return found[0]


def option_value(args: list[str], option: str) -> str:
    return args[args.index(option) + 1]


RENDERED = {name: render(K8S / name) for name in KUSTOMIZATIONS}
INVOCATIONS = [
    (f"{name}/{doc['kind']}/{doc['metadata']['name']}", c.get("command", []) + c.get("args", []))
    for name, docs in RENDERED.items()
    for doc in docs
    for c in containers(doc)
]


@pytest.fixture(params=KUSTOMIZATIONS)
def docs(request) -> list[dict]:
    return copy.deepcopy(RENDERED[request.param])


# --- structure ---------------------------------------------------------------------------------


def test_every_manifest_and_patch_file_is_used_by_its_kustomization():
    for folder in [K8S / name for name in KUSTOMIZATIONS]:
        spec = yaml.safe_load((folder / "kustomization.yaml").read_text())
        used = set(spec.get("resources", [])) | {p["path"] for p in spec.get("patches", []) if "path" in p}
        files = {p.name for p in folder.glob("*.yaml")} - {"kustomization.yaml"}
        assert files <= used, f"{folder} holds files no kustomization uses: {sorted(files - used)}"


def test_renders_the_same_resources_in_every_kustomization(docs):
    kinds = sorted((d["kind"], d["metadata"]["name"]) for d in docs)
    assert kinds == sorted((d["kind"], d["metadata"]["name"]) for d in RENDERED["base"])
    assert {d["metadata"].get("namespace") for d in docs if d["kind"] != "Namespace"} == {"mmm-backfill"}


# --- schemas -----------------------------------------------------------------------------------


def test_core_resources_validate_against_the_kubernetes_schemas(docs):
    for doc in docs:
        if doc["apiVersion"].startswith("keda.sh/"):
            continue
        where = f"{doc['kind']}/{doc['metadata']['name']}"
        try:
            kubernetes_validate.validate(doc, KUBERNETES_VERSION, strict=True)
        except kubernetes_validate.ValidationError as err:
            pytest.fail(f"{where}: {'.'.join(map(str, err.path))}: {err.message}")


def test_scaled_object_targets_the_worker_deployment(docs):
    scaled = named(docs, "ScaledObject", WORKER)
    assert scaled["apiVersion"] == "keda.sh/v1alpha1"
    ref = scaled["spec"]["scaleTargetRef"]
    assert ref["name"] == named(docs, "Deployment", WORKER)["metadata"]["name"]
    assert ref.get("kind", "Deployment") == "Deployment"
    assert scaled["spec"]["minReplicaCount"] == 0
    assert scaled["spec"]["maxReplicaCount"] >= 1
    assert "replicas" not in named(docs, "Deployment", WORKER)["spec"], "KEDA owns the worker replica count"


def test_triggers_carry_the_metadata_keda_requires(docs):
    auths = {d["metadata"]["name"]: d for d in docs if d["kind"] == "TriggerAuthentication"}
    for trigger in named(docs, "ScaledObject", WORKER)["spec"]["triggers"]:
        metadata = trigger["metadata"]
        assert all(isinstance(v, str) for v in metadata.values()), "KEDA trigger metadata values are strings"
        if trigger["type"] == "gcp-pubsub":
            assert {"subscriptionName", "mode", "value"} <= set(metadata)
            assert metadata["mode"] in ("SubscriptionSize", "OldestUnackedMessageAge")
        elif trigger["type"] == "prometheus":
            assert {"serverAddress", "query", "threshold"} <= set(metadata)
            assert GMP_ADDRESS.match(metadata["serverAddress"]), metadata["serverAddress"]
        else:
            pytest.fail(f"unexpected trigger type {trigger['type']}")
        float(metadata.get("value", metadata.get("threshold")))
        auth = auths[trigger["authenticationRef"]["name"]]
        assert auth["apiVersion"] == "keda.sh/v1alpha1"
        assert auth["spec"]["podIdentity"]["provider"] == "gcp"


def test_the_prometheus_overlay_replaces_the_deprecated_gcp_pubsub_trigger():
    triggers = named(RENDERED["overlays/prometheus-scaler"], "ScaledObject", WORKER)["spec"]["triggers"]
    assert [t["type"] for t in triggers] == ["prometheus"]
    metadata = triggers[0]["metadata"]
    config = named(RENDERED["overlays/prometheus-scaler"], "ConfigMap", CONFIG)["data"]
    assert GMP_ADDRESS.match(metadata["serverAddress"]).group(1) == config["MMM_BACKFILL_PROJECT"]
    assert "pubsub_googleapis_com:subscription_num_undelivered_messages" in metadata["query"]
    assert f'project_id="{config["MMM_BACKFILL_PROJECT"]}"' in metadata["query"]


# --- agreement with the code -------------------------------------------------------------------


def test_command_lines_use_real_subcommands_and_options(invocation, check_invocation):
    check_invocation(invocation)


def test_containers_run_the_image_entrypoint(docs):
    for doc in docs:
        for c in containers(doc):
            assert c.get("command", ["mmm-backfill"]) == ["mmm-backfill"], c["name"]
            assert c["image"].rsplit("/", 1)[-1].startswith("mmm-backfill:"), c["image"]
            assert not c["image"].endswith(":latest")


def test_every_environment_variable_is_a_setting(docs):
    known = set(Settings.env_names())
    for doc in docs:
        if doc["kind"] == "ConfigMap":
            assert set(doc["data"]) <= known, set(doc["data"]) - known
        for c in containers(doc):
            names = {e["name"] for e in c.get("env", [])}
            assert names <= known, names - known
            assert [r["configMapRef"]["name"] for r in c.get("envFrom", [])] == [CONFIG]


def test_topic_and_subscription_names_match_the_settings_defaults(docs):
    defaults = Settings()
    config = named(docs, "ConfigMap", CONFIG)["data"]
    for key, value in config.items():
        if key.endswith(("_TOPIC", "_SUBSCRIPTION")):
            assert value == getattr(defaults, key.removeprefix("MMM_BACKFILL_").lower()), key
    for trigger in named(docs, "ScaledObject", WORKER)["spec"]["triggers"]:
        if trigger["type"] == "gcp-pubsub":
            assert trigger["metadata"]["subscriptionName"].rsplit("/", 1)[-1] == defaults.request_subscription
        else:
            assert f'subscription_id="{defaults.request_subscription}"' in trigger["metadata"]["query"]


def test_project_is_the_same_everywhere_in_an_overlay(docs):
    project = named(docs, "ConfigMap", CONFIG)["data"]["MMM_BACKFILL_PROJECT"]
    for account in ROLE_ACCOUNTS.values():
        gsa = named(docs, "ServiceAccount", account)["metadata"]["annotations"]["iam.gke.io/gcp-service-account"]
        assert gsa.endswith(f"@{project}.iam.gserviceaccount.com")
    for trigger in named(docs, "ScaledObject", WORKER)["spec"]["triggers"]:
        name = trigger["metadata"].get("subscriptionName", "")
        assert not name.startswith("projects/") or name.split("/")[1] == project


def test_probes_use_the_metrics_port_given_on_the_command_line(docs):
    for name in (WORKER, AGGREGATOR):
        container = pod_spec(named(docs, "Deployment", name))["containers"][0]
        port = int(option_value(container["args"], "--metrics-port"))
        assert {p["name"]: p["containerPort"] for p in container["ports"]}["metrics"] == port
        for probe, path in (("livenessProbe", "/healthz"), ("readinessProbe", "/readyz")):
            assert container[probe]["httpGet"] == {"path": path, "port": "metrics"}, (name, probe)


def test_grace_periods_cover_the_stop_grace_of_each_role(docs):
    from aggregator.service import STOP_GRACE_SECONDS as AGGREGATOR_GRACE
    from worker.consumer import STOP_GRACE_SECONDS as WORKER_GRACE

    assert pod_spec(named(docs, "Deployment", WORKER))["terminationGracePeriodSeconds"] >= WORKER_GRACE + 60
    assert pod_spec(named(docs, "Deployment", AGGREGATOR))["terminationGracePeriodSeconds"] > AGGREGATOR_GRACE
    assert named(docs, "Deployment", AGGREGATOR)["spec"]["replicas"] == 1


def test_worker_is_sized_for_one_rds_in_memory(docs):
    resources = pod_spec(named(docs, "Deployment", WORKER))["containers"][0]["resources"]
    assert resources["requests"]["memory"] == "2Gi"
    assert resources["limits"]["memory"] == "4Gi"
    assert option_value(pod_spec(named(docs, "Deployment", WORKER))["containers"][0]["args"], "--processes") == "1"


# --- hardening ---------------------------------------------------------------------------------


def test_every_pod_runs_hardened_as_the_image_user_with_a_writable_tmp(docs):
    for doc in docs:
        spec = pod_spec(doc)
        if spec is None:
            continue
        where = f"{doc['kind']}/{doc['metadata']['name']}"
        assert spec["securityContext"]["runAsNonRoot"] is True, where
        assert spec["securityContext"]["runAsUser"] == RUN_AS, where
        tmp_volumes = {v["name"] for v in spec["volumes"] if "emptyDir" in v}
        for c in containers(doc):
            context = c["securityContext"]
            assert context["readOnlyRootFilesystem"] is True, where
            assert context["allowPrivilegeEscalation"] is False, where
            assert context["capabilities"]["drop"] == ["ALL"], where
            assert any(m["mountPath"] == "/tmp" and m["name"] in tmp_volumes for m in c["volumeMounts"]), where


def test_jobs_wait_to_be_resumed(docs):
    for job in (named(docs, "Job", "mmm-backfill-enqueue"), named(docs, "Job", "mmm-backfill-replay")):
        assert job["spec"]["suspend"] is True, "a Job created by `kubectl apply -k` must not run by itself"
        assert pod_spec(job)["restartPolicy"] == "Never"


def test_every_job_has_an_active_deadline(docs):
    jobs = [doc for doc in docs if doc["kind"] == "Job"]
    assert jobs
    for job in jobs:
        deadline = job["spec"].get("activeDeadlineSeconds")
        assert isinstance(deadline, int) and deadline > 0, job["metadata"]["name"]


@pytest.mark.parametrize("name", ["mmm-backfill-enqueue", "mmm-backfill-refresh"])
def test_backfill_jobs_wait_for_a_verdict_and_give_up_before_their_deadline(docs, name):
    from command_line.durations import parse_duration

    job = named(docs, "Job", name)
    args = pod_spec(job)["containers"][0]["args"]
    assert "--wait" in args
    assert parse_duration(option_value(args, "--timeout")) < job["spec"]["activeDeadlineSeconds"]
    assert job["spec"]["backoffLimit"] == 0


def test_the_base_enqueue_revision_is_refused_until_an_overlay_sets_one():
    from mmm_backfill.errors import InvalidRunPath
    from producer.scan import check_filters

    args = pod_spec(named(RENDERED["base"], "Job", "mmm-backfill-enqueue"))["containers"][0]["args"]
    with pytest.raises(InvalidRunPath):
        check_filters(option_value(args, "--revision"), None)
    overlay = pod_spec(named(RENDERED["overlays/example"], "Job", "mmm-backfill-enqueue"))["containers"][0]["args"]
    check_filters(option_value(overlay, "--revision"), None)


def test_disruption_budget_selects_the_worker_pods(docs):
    pdb = named(docs, "PodDisruptionBudget", WORKER)
    labels = named(docs, "Deployment", WORKER)["spec"]["template"]["metadata"]["labels"]
    assert pdb["spec"]["selector"]["matchLabels"].items() <= labels.items()


def test_each_role_has_its_own_service_account_acting_as_its_own_google_account(docs):
    accounts = {d["metadata"]["name"]: d for d in docs if d["kind"] == "ServiceAccount"}
    assert set(accounts) == set(ROLE_ACCOUNTS.values())
    for name, account in accounts.items():
        gsa = account["metadata"]["annotations"]["iam.gke.io/gcp-service-account"]
        assert gsa.split("@")[0] == name and gsa.endswith(".iam.gserviceaccount.com"), gsa


def test_every_pod_runs_as_the_service_account_of_its_role(docs):
    for doc in docs:
        spec = pod_spec(doc)
        if spec is None:
            continue
        component = doc["spec"]["template"]["metadata"]["labels"]["app.kubernetes.io/component"]
        assert spec["serviceAccountName"] == ROLE_ACCOUNTS[COMPONENT_ROLES[component]], doc["metadata"]["name"]


def test_the_example_overlay_sets_its_image_and_revision():
    docs = RENDERED["overlays/example"]
    for doc in docs:
        for c in containers(doc):
            assert c["image"] == "europe-west1-docker.pkg.dev/my-gcp-project/mmm/mmm-backfill:0.1.0"
    args = pod_spec(named(docs, "Job", "mmm-backfill-enqueue"))["containers"][0]["args"]
    assert option_value(args, "--revision") == "r100"


def test_refresh_job_waits_to_be_resumed_and_runs_enqueue_refresh(docs):
    job = named(docs, "Job", "mmm-backfill-refresh")
    assert job["spec"]["suspend"] is True and pod_spec(job)["restartPolicy"] == "Never"
    args = pod_spec(job)["containers"][0]["args"]
    assert args[:2] == ["enqueue", "--refresh"]
