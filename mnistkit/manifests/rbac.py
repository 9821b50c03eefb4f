"""Least-privilege RBAC for the workflow's pods, derived from a machine-readable list of what each step does.

``STEP_PERMISSIONS`` says, per workflow step, which (API group, resource, verb) it uses; the Role is
the union of those and nothing else, and a test checks the rendered Role against it (excess = 0).
Argo's executor writes each step's outputs as a ``WorkflowTaskResult`` (create/patch). Resource steps run
``kubectl apply`` (get + create + patch) or ``create``; the v4 executor waits on a resource by polling
GET. No step reads pods or logs: ``mnistkit logs`` runs with the *user's* permissions
(``USER_PERMISSIONS``, which ``mnistkit doctor`` checks with SelfSubjectAccessReviews).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from mnistkit.manifests.params import ManifestParams

__all__ = [
    "Permission",
    "STEP_PERMISSIONS",
    "USER_PERMISSIONS",
    "WORKFLOW_SERVICE_ACCOUNT",
    "required_permissions",
    "rules_from_permissions",
    "permissions_from_rules",
    "service_account",
    "role",
    "role_binding",
    "user_role",
    "USER_ROLE",
]

Permission = tuple[str, str, str]  # (apiGroup, resource, verb)
WORKFLOW_SERVICE_ACCOUNT = "mnistkit-workflow"
USER_ROLE = "mnistkit-user"

_APPLY = ("get", "create", "patch")  # kubectl apply: read, then create or patch
_EXECUTOR: tuple[Permission, ...] = (
    ("argoproj.io", "workflowtaskresults", "create"),
    ("argoproj.io", "workflowtaskresults", "patch"),
)

STEP_PERMISSIONS: Mapping[str, tuple[Permission, ...]] = {
    # every pod of the workflow (the Argo executor reporting outputs and results)
    "*executor*": _EXECUTOR,
    "get-workflow-info": (("argoproj.io", "workflows", "get"),),
    "tensorboard": tuple(("apps", "deployments", v) for v in _APPLY),
    "tensorboard-service": tuple(("", "services", v) for v in _APPLY),
    "train-model": (("kubeflow.org", "tfjobs", "create"), ("kubeflow.org", "tfjobs", "get")),
    "train-model-single": (("kubeflow.org", "tfjobs", "create"), ("kubeflow.org", "tfjobs", "get")),
    "serve-model": tuple(("apps", "deployments", v) for v in _APPLY),
    "serve-model-mnistkit": tuple(("apps", "deployments", v) for v in _APPLY),
    "serve-model-service": tuple(("", "services", v) for v in _APPLY),
    "cleanup": (("kubeflow.org", "tfjobs", "patch"),),
    "train-model-trainjob": (
        ("trainer.kubeflow.org", "trainjobs", "create"),
        ("trainer.kubeflow.org", "trainjobs", "get"),
    ),
    "cleanup-trainjob": (("trainer.kubeflow.org", "trainjobs", "patch"),),
    "report": (),
    # model-deploy
    "wait-for-training": (("argoproj.io", "workflows", "get"),),
}

# What a person using the CLI or panels needs in their namespace (checked by `mnistkit doctor`, rendered as
# the Role `mnistkit-user`; a test runs every command with exactly these rules).
USER_PERMISSIONS: tuple[Permission, ...] = (
    ("argoproj.io", "workflows", "create"),
    ("argoproj.io", "workflows", "get"),
    ("argoproj.io", "workflows", "list"),
    ("argoproj.io", "workflows", "watch"),
    ("argoproj.io", "workflows", "patch"),  # stop (argo stop)
    ("argoproj.io", "workflows", "delete"),
    ("argoproj.io", "workflowtemplates", "create"),
    ("argoproj.io", "workflowtemplates", "get"),  # deploy: is model-deploy current?
    ("argoproj.io", "workflowtemplates", "update"),  # deploy: upgrade an outdated model-deploy
    ("kubeflow.org", "tfjobs", "list"),
    ("kubeflow.org", "tfjobs", "delete"),
    ("trainer.kubeflow.org", "trainjobs", "list"),
    ("trainer.kubeflow.org", "trainjobs", "delete"),
    ("", "pods", "list"),
    ("", "pods/log", "get"),
    # port-forward's WebSocket upgrade is a GET: authorized as get, and since Kubernetes 1.35
    # (AuthorizePodWebsocketUpgradeCreatePermission, beta) also as create
    ("", "pods/portforward", "get"),
    ("", "pods/portforward", "create"),
    ("", "services", "list"),
    ("", "services", "delete"),
    ("apps", "deployments", "list"),
    ("apps", "deployments", "delete"),
    ("", "serviceaccounts", "get"),  # doctor: does the workflow's ServiceAccount exist?
    ("", "secrets", "create"),
    ("", "secrets", "update"),  # `mnistkit secret` replaces an existing aws-creds
)


def required_permissions(steps: Iterable[str] | None = None) -> set[Permission]:
    """The union of the permissions of ``steps`` (all steps by default)."""
    names = list(STEP_PERMISSIONS) if steps is None else list(steps)
    return {perm for s in names for perm in STEP_PERMISSIONS[s]}


def rules_from_permissions(perms: Iterable[Permission]) -> list[dict[str, Any]]:
    """One rule per (group, resource), verbs sorted: stable output for golden files."""
    grouped: dict[tuple[str, str], set[str]] = {}
    for group, resource, verb in perms:
        grouped.setdefault((group, resource), set()).add(verb)
    return [{"apiGroups": [g], "resources": [r], "verbs": sorted(v)} for (g, r), v in sorted(grouped.items())]


def permissions_from_rules(rules: Iterable[Mapping[str, Any]]) -> set[Permission]:
    """Expand Role rules back into (group, resource, verb) triples (wildcards stay ``*``, and count as excess)."""
    out: set[Permission] = set()
    for rule in rules:
        for g in rule.get("apiGroups", []):
            for r in rule.get("resources", []):
                for v in rule.get("verbs", []):
                    out.add((g, r, v))
    return out


def service_account(p: ManifestParams) -> dict[str, Any]:
    return {
        "apiVersion": "v1",
        "kind": "ServiceAccount",
        "metadata": {
            "name": WORKFLOW_SERVICE_ACCOUNT,
            "namespace": p.namespace,
            "labels": {"app.kubernetes.io/part-of": "mnistkit"},
        },
    }


def role(p: ManifestParams) -> dict[str, Any]:
    return {
        "apiVersion": "rbac.authorization.k8s.io/v1",
        "kind": "Role",
        "metadata": {
            "name": WORKFLOW_SERVICE_ACCOUNT,
            "namespace": p.namespace,
            "labels": {"app.kubernetes.io/part-of": "mnistkit"},
        },
        "rules": rules_from_permissions(required_permissions()),
    }


def role_binding(p: ManifestParams) -> dict[str, Any]:
    return {
        "apiVersion": "rbac.authorization.k8s.io/v1",
        "kind": "RoleBinding",
        "metadata": {
            "name": WORKFLOW_SERVICE_ACCOUNT,
            "namespace": p.namespace,
            "labels": {"app.kubernetes.io/part-of": "mnistkit"},
        },
        "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "Role", "name": WORKFLOW_SERVICE_ACCOUNT},
        "subjects": [{"kind": "ServiceAccount", "name": WORKFLOW_SERVICE_ACCOUNT, "namespace": p.namespace}],
    }


def user_role(p: ManifestParams) -> dict[str, Any]:
    """What a person needs to use the CLI and panels in the namespace (``USER_PERMISSIONS``), as a Role.

    A Kubeflow profile's owner already has more (``kubeflow-edit``); elsewhere an admin binds it:
    ``kubectl create rolebinding mnistkit-user --role=mnistkit-user --user=jane -n NS``.
    """
    return {
        "apiVersion": "rbac.authorization.k8s.io/v1",
        "kind": "Role",
        "metadata": {"name": USER_ROLE, "namespace": p.namespace, "labels": {"app.kubernetes.io/part-of": "mnistkit"}},
        "rules": rules_from_permissions(USER_PERMISSIONS),
    }
