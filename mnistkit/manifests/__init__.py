"""Kubernetes manifests for mnistkit, built by pure functions: ``ManifestParams`` -> JSON-ready dict, no I/O.

Why plain dicts and not hera (Argo's Python SDK): hera 7 is not installed here and would be a heavy
dependency for ~10 objects; its objects would still have to be turned into dicts to be checked
against the official JSON Schemas, compared with golden files, and sent through the ``kubernetes``
client's ``CustomObjectsApi`` (which takes dicts). Plain dicts keep the manifests readable next to the
Argo/Kubeflow docs they follow, keep ``import mnistkit.manifests`` cheap, and the schema tests in strict
mode (closed objects) catch the typos a typed SDK would.

``all_manifests(params)`` is what ``mnistkit render`` writes: one object per file, YAML. With ``-p trainer=trainjob``
the TFJob is replaced by a Trainer v2 TrainJob plus the ``mnistkit-tensorflow`` runtime it runs on. With
``-p serving-server=mnistkit`` the serving Deployment and the InferenceService run ``mnistkit serve``
(``manifests/serving_mnistkit.py``) instead of TF Serving, and KServe's storage ServiceAccount is not needed.
"""

from __future__ import annotations

from typing import Any

import yaml

from mnistkit.manifests.credentials import POD_DEFAULT_LABEL, aws_secret, pod_default
from mnistkit.manifests.deploy import model_deploy_template
from mnistkit.manifests.netpol import network_policies
from mnistkit.manifests.params import PARAMETER_NAMES, ManifestParams
from mnistkit.manifests.rbac import role, role_binding, service_account, user_role
from mnistkit.manifests.runtime import training_runtime
from mnistkit.manifests.serving import (
    inference_service,
    kserve_service_account,
    serving_deployment,
    serving_service,
)
from mnistkit.manifests.serving_mnistkit import mnistkit_inference_service, mnistkit_serving_deployment
from mnistkit.manifests.tensorboard import tensorboard_deployment, tensorboard_service
from mnistkit.manifests.tfjob import tfjob
from mnistkit.manifests.trainjob import trainjob
from mnistkit.manifests.workflow import model_train_workflow

__all__ = [
    "ManifestParams",
    "PARAMETER_NAMES",
    "POD_DEFAULT_LABEL",
    "all_manifests",
    "to_yaml",
    "aws_secret",
    "pod_default",
    "tfjob",
    "trainjob",
    "training_runtime",
    "tensorboard_deployment",
    "tensorboard_service",
    "serving_deployment",
    "serving_service",
    "inference_service",
    "kserve_service_account",
    "mnistkit_serving_deployment",
    "mnistkit_inference_service",
    "service_account",
    "role",
    "role_binding",
    "user_role",
    "model_train_workflow",
    "model_deploy_template",
    "network_policies",
]


def all_manifests(p: ManifestParams | None = None) -> dict[str, dict[str, Any]]:
    """``{file name: manifest}`` for every manifest ``mnistkit render`` writes (never a Secret)."""
    p = (p or ManifestParams()).validate()
    if p.trainer == "trainjob":  # Kubeflow Trainer v2: the TrainJob and the runtime it needs (cluster-wide or not)
        training = {
            "trainjob.yaml": trainjob(p),
            "training-runtime.yaml": training_runtime(p),
            "training-runtime-namespaced.yaml": training_runtime(p, kind="TrainingRuntime"),
        }
    else:
        training = {"tfjob.yaml": tfjob(p)}
    if p.serving_server == "mnistkit":  # mnistkit serve reads s3:// itself: no init container, no KServe storage SA
        serving = {
            "serving-deployment.yaml": mnistkit_serving_deployment(p),
            "inferenceservice.yaml": mnistkit_inference_service(p),
        }
    else:
        serving = {
            "serving-deployment.yaml": serving_deployment(p),
            "kserve-serviceaccount.yaml": kserve_service_account(p),
            "inferenceservice.yaml": inference_service(p),
        }
    return {
        "model-train.yaml": model_train_workflow(p),
        "model-deploy.yaml": model_deploy_template(p),
        **training,
        "tensorboard-deployment.yaml": tensorboard_deployment(p),
        "tensorboard-service.yaml": tensorboard_service(p),
        **serving,
        "serving-service.yaml": serving_service(p),
        "rbac-serviceaccount.yaml": service_account(p),
        "rbac-role.yaml": role(p),
        "rbac-rolebinding.yaml": role_binding(p),
        "rbac-user-role.yaml": user_role(p),
        "poddefault.yaml": pod_default(p),
        **network_policies(p),
    }


class _Dumper(yaml.SafeDumper):
    """Multi-line strings (inline manifests, scripts) as ``|`` blocks: readable in review and in Argo's UI."""


def _str(dumper: yaml.SafeDumper, data: str) -> yaml.Node:
    style = "|" if "\n" in data else None
    return dumper.represent_scalar("tag:yaml.org,2002:str", data, style=style)


_Dumper.add_representer(str, _str)


def to_yaml(obj: dict[str, Any]) -> str:
    return yaml.dump(obj, Dumper=_Dumper, sort_keys=False, default_flow_style=False, width=120)
