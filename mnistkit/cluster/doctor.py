"""``mnistkit doctor``: can this notebook/laptop run the mnistkit workflow here, and if not, why not?

Checks, each answered in plain words with what to do: the API server answers; the CRDs
``workflows.argoproj.io`` and a training API exist: ``tfjobs.kubeflow.org`` (training operator v1) and/or
``trainjobs.trainer.kubeflow.org`` (Trainer v2, then also its ``mnistkit-tensorflow`` runtime), and which one
``submit`` will use; the Argo and training controllers run; the workflow's ServiceAccount
(``mnistkit render`` -> rbac-*.yaml) and the ``aws-creds`` Secret exist; and the user may do what the CLI does
(one SelfSubjectAccessReview per permission).
A check that cannot be made (not allowed to look) is reported as unknown, not as a failure.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import TYPE_CHECKING

from mnistkit.cluster import trainers
from mnistkit.cluster.objects import drain, raw
from mnistkit.errors import ClusterError
from mnistkit.manifests.rbac import USER_PERMISSIONS, WORKFLOW_SERVICE_ACCOUNT

if TYPE_CHECKING:
    from mnistkit.cluster.client import ClusterClient

__all__ = ["Check", "doctor", "format_report", "CRDS", "CONTROLLERS"]

CRDS = {
    "workflows.argoproj.io": "Argo Workflows (kubectl apply -k of the Argo install, or Kubeflow Pipelines' Argo)",
    trainers.TFJOB_CRD: "the Kubeflow training operator v1 (kubectl apply -k "
    "github.com/kubeflow/training-operator/manifests/overlays/standalone?ref=v1.9.4)",
    trainers.TRAINJOB_CRD: "Kubeflow Trainer v2 (kubectl apply --server-side -k "
    "https://github.com/kubeflow/trainer.git/manifests/overlays/manager?ref=v2.3.0), then the mnistkit-tensorflow "
    "runtime (docs/cluster.md)",
}
# Either training API will do; without both, the missing one is not a problem.
_TRAINING_CRDS = (trainers.TFJOB_CRD, trainers.TRAINJOB_CRD)
# (what, [(namespace, deployment), ...]) - the first one found counts.
CONTROLLERS = (
    (
        "Argo workflow controller",
        [
            ("argo", "workflow-controller"),
            ("kubeflow", "workflow-controller"),
            ("kubeflow", "ml-pipeline-workflow-controller"),
        ],
    ),
    ("training operator", [("kubeflow", "training-operator"), ("training-operator", "training-operator")]),
    (
        "Kubeflow Trainer controller",
        [
            ("kubeflow-system", "kubeflow-trainer-controller-manager"),
            ("kubeflow", "kubeflow-trainer-controller-manager"),
        ],
    ),
)
_CRD_OF_CONTROLLER = {"training operator": trainers.TFJOB_CRD, "Kubeflow Trainer controller": trainers.TRAINJOB_CRD}


@dataclass(frozen=True)
class Check:
    name: str
    ok: bool | None  # None: could not be checked (not allowed to look)
    detail: str
    fix: str = ""


def _crd_checks(client: ClusterClient) -> tuple[list[Check], dict[str, bool | None]]:
    from kubernetes.client.exceptions import ApiException

    found: dict[str, bool | None] = {}
    errors: dict[str, str] = {}
    for crd in CRDS:
        try:
            found[crd] = trainers.crd_installed(client, crd)
        except ApiException as exc:
            if exc.status == 401:
                raise  # nothing else will work either: doctor() says so once
            found[crd], errors[crd] = None, f"API error {exc.status} {exc.reason}"
    other = dict(zip(_TRAINING_CRDS, reversed(_TRAINING_CRDS)))
    out = []
    for crd, what in CRDS.items():
        if crd in errors:
            out.append(Check(f"CRD {crd}", False, errors[crd]))
        elif found[crd]:
            out.append(Check(f"CRD {crd}", True, "installed"))
        elif found[crd] is None:
            out.append(
                Check(
                    f"CRD {crd}", None, "not allowed to read CRDs; assumed present if the permission checks below pass"
                )
            )
        elif found.get(other.get(crd, "")):
            out.append(Check(f"CRD {crd}", True, f"not installed (not needed: {other[crd]} is)"))
        else:
            out.append(Check(f"CRD {crd}", False, "not installed", f"install {what}"))
    return out, found


def _trainer_checks(client: ClusterClient, found: dict[str, bool | None]) -> list[Check]:
    """Where the mnistkit-tensorflow runtime is (with Trainer v2), and which API `submit` will use."""
    out = []
    kind, known = None, True
    if found[trainers.TRAINJOB_CRD] is not False:
        kind, known = trainers.runtime_kind(client)
        if kind:
            where = "cluster-wide" if kind == "ClusterTrainingRuntime" else f"in {client.namespace}"
            out.append(Check("training runtime mnistkit-tensorflow", True, f"{kind} ({where})"))
        elif not known:
            out.append(Check("training runtime mnistkit-tensorflow", None, "not allowed to read training runtimes"))
        elif found[trainers.TRAINJOB_CRD]:
            out.append(
                Check(
                    "training runtime mnistkit-tensorflow",
                    False,
                    "not installed: TrainJobs cannot run",
                    trainers.RUNTIME_FIX,
                )
            )
    support = trainers.TrainerSupport(found[trainers.TFJOB_CRD], found[trainers.TRAINJOB_CRD], kind, known)
    try:
        chosen, _ = trainers.pick(support)
    except ClusterError:
        return out  # no CRD or no runtime: said by its own line
    name = {"tfjob": "TFJob (training operator v1)", "trainjob": "TrainJob (Kubeflow Trainer v2)"}[chosen]
    out.append(Check("training API", True, f"submit and train --engine argo use {name}; -p trainer=... overrides"))
    return out


def _controller_checks(client: ClusterClient, crds: dict[str, bool | None]) -> list[Check]:
    from kubernetes.client.exceptions import ApiException

    out = []
    for what, places in CONTROLLERS:
        if crds.get(_CRD_OF_CONTROLLER.get(what, "")) is False:
            continue  # that API is not installed: its controller is not expected
        found, forbidden = None, False
        for ns, name in places:
            try:
                resp = raw(client.apps.read_namespaced_deployment(name, ns, _preload_content=False))
                dep = json.loads(resp.data)
                resp.release_conn()
            except ApiException as exc:
                forbidden = forbidden or exc.status == 403
                continue
            found = (ns, name, int((dep.get("status") or {}).get("readyReplicas") or 0))
            break
        if found and found[2] > 0:
            out.append(Check(what, True, f"{found[0]}/{found[1]} ready ({found[2]} replica(s))"))
        elif found:
            out.append(
                Check(
                    what,
                    False,
                    f"{found[0]}/{found[1]} has no ready replica",
                    f"kubectl -n {found[0]} describe deployment {found[1]}",
                )
            )
        elif forbidden:
            out.append(
                Check(what, None, "not allowed to look at the controllers' namespaces; ask your admin whether it runs")
            )
        else:
            out.append(
                Check(
                    what,
                    False,
                    "not found in " + ", ".join(f"{n}/{d}" for n, d in places),
                    "install it, or ask your admin where it runs",
                )
            )
    return out


def _object_checks(client: ClusterClient, secret_name: str) -> list[Check]:
    from kubernetes.client.exceptions import ApiException

    out = []
    for what, call, fix in (
        (
            f"ServiceAccount {WORKFLOW_SERVICE_ACCOUNT}",
            lambda: drain(
                client.core.read_namespaced_service_account(
                    WORKFLOW_SERVICE_ACCOUNT, client.namespace, _preload_content=False
                )
            ),
            "mnistkit render --out m -p namespace=NS && kubectl apply -f m/rbac-serviceaccount.yaml "
            "-f m/rbac-role.yaml -f m/rbac-rolebinding.yaml",
        ),
        (
            f"Secret {secret_name}",
            lambda: drain(client.core.read_namespaced_secret(secret_name, client.namespace, _preload_content=False)),
            "create it from the S3 panel, or `mnistkit secret` (reads AWS_* from the environment)",
        ),
    ):
        try:
            call()
            out.append(Check(what, True, f"exists in {client.namespace}"))
        except ApiException as exc:
            if exc.status == 404:
                out.append(Check(what, False, f"missing in {client.namespace}", fix))
            elif exc.status == 403:
                out.append(Check(what, None, "not allowed to read it"))
            else:
                out.append(Check(what, False, f"API error {exc.status} {exc.reason}"))
    return out


def _permission_checks(client: ClusterClient, found: dict[str, bool | None]) -> list[Check]:
    from kubernetes import client as k
    from kubernetes.client.exceptions import ApiException

    api = k.AuthorizationV1Api(client.api_client)
    absent = {crd for crd in _TRAINING_CRDS if found.get(crd) is False}  # no verbs needed on an API that isn't there
    needed = [p for p in USER_PERMISSIONS if f"{p[1]}.{p[0]}" not in absent]
    denied = []
    for group, resource, verb in needed:
        res, _, sub = resource.partition("/")
        review = k.V1SelfSubjectAccessReview(
            spec=k.V1SelfSubjectAccessReviewSpec(
                resource_attributes=k.V1ResourceAttributes(
                    namespace=client.namespace, group=group, resource=res, subresource=sub or None, verb=verb
                )
            )
        )
        try:
            result = api.create_self_subject_access_review(review)
        except ApiException as exc:
            # Every signed-in user may ask (system:basic-user); a refusal means a proxy or an odd server.
            return [
                Check(
                    "your permissions",
                    False,
                    f"{client.server} refused a SelfSubjectAccessReview "
                    f"({exc.status} {exc.reason}), so your permissions in {client.namespace} are unknown",
                    "check that the kubeconfig points at the Kubernetes API server itself",
                )
            ]
        if not (result.status and result.status.allowed):
            denied.append(f"{verb} {resource}" + (f".{group}" if group else ""))
    if denied:
        return [
            Check(
                "your permissions",
                False,
                f"you may not: {', '.join(denied)} (namespace {client.namespace})",
                "use your Kubeflow profile namespace (-n), or ask your admin to bind you the Role in "
                "`mnistkit render`'s rbac-user-role.yaml",
            )
        ]
    return [Check("your permissions", True, f"all {len(needed)} needed verbs allowed in {client.namespace}")]


def doctor(client: ClusterClient, secret_name: str = "aws-creds") -> list[Check]:
    """Run every check against ``client`` (a ``ClusterClient``); never raises for a cluster problem."""
    from kubernetes.client.exceptions import ApiException

    from mnistkit.cluster.errors import is_unreachable

    host = client.server
    try:
        checks, found = _crd_checks(client)
        checks += _trainer_checks(client, found)
        checks += _controller_checks(client, found)
        checks += _object_checks(client, secret_name)
        checks += _permission_checks(client, found)
    except ApiException as exc:
        if exc.status != 401:
            raise
        return [
            Check(
                "API server",
                False,
                f"{host} refused your credentials (401 {exc.reason})",
                "log in again or refresh the token in your kubeconfig",
            )
        ]
    except Exception as exc:
        if not is_unreachable(exc):
            raise
        return [
            Check(
                "API server",
                False,
                f"cannot reach {host}: {type(exc).__name__}",
                "check that the cluster is up and that KUBECONFIG/--context points at it, "
                "or run from a Kubeflow notebook",
            )
        ]
    return [Check("API server", True, f"{host}, namespace {client.namespace}"), *checks]


def format_report(checks: list[Check]) -> str:
    mark = {True: "ok  ", False: "FAIL", None: "??  "}
    lines = []
    for c in checks:
        lines.append(f"[{mark[c.ok]}] {c.name}: {c.detail}")
        if c.fix and c.ok is not True:
            lines.append(f"       fix: {c.fix}")
    bad = sum(c.ok is False for c in checks)
    lines.append("all checks passed" if not bad else f"{bad} problem(s) found")
    return "\n".join(lines)
