"""Who runs as whom: the names every deployment path (k8s, compose, terraform) must agree on."""

#: One service account per role, the same names in k8s, compose and terraform (without the project).
ROLE_ACCOUNTS = {"worker": "mmm-backfill-worker", "aggregator": "mmm-backfill-aggregator", "jobs": "mmm-backfill-jobs"}
#: The role each component (the ``app.kubernetes.io/component`` label, the compose service) runs as.
COMPONENT_ROLES = {
    "worker": "worker",
    "aggregator": "aggregator",
    "enqueue": "jobs",
    "replay": "jobs",
    "refresh": "jobs",
    "producer": "jobs",
    "setup": "jobs",
}
