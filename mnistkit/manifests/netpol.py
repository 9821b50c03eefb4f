"""NetworkPolicies: the trainer port only from the same job's pods; TensorBoard and serving only from the namespace.

TensorFlow's gRPC port (2222 in a TFJob) takes graphs from anyone without authentication, and a trainer holds the
S3 keys; TensorBoard and the model server have no authentication either. Without a policy every pod in the
cluster can reach them. Each policy selects one component's pods and admits ingress only on its ports, from:

* training: pods carrying the same job's training labels (the job's other workers);
* TensorBoard and serving: any pod of the same namespace (the user's notebook, the workflow's steps).

KServe copies an InferenceService's labels onto its predictor pods, whose component is therefore ``serving-kserve``
(not the Deployment's ``serving``): their own policy admits KServe's ports, REST 8080 (both predictors) and the
custom predictor's gRPC 8081, from the namespace. Traffic through KServe's or Knative's gateways (Knative's
activator, in Serverless mode) comes from another namespace and needs a rule of your own.

Policies need a CNI that enforces them (Calico, Cilium...); apply them with the rest: ``kubectl apply -f``.
"""

from __future__ import annotations

from typing import Any

from mnistkit.manifests.common import metadata, selector
from mnistkit.manifests.params import ManifestParams
from mnistkit.manifests.serving import GRPC_PORT, KSERVE_COMPONENT, REST_PORT
from mnistkit.manifests.serving_mnistkit import KSERVE_GRPC_PORT, KSERVE_REST_PORT
from mnistkit.manifests.tensorboard import TENSORBOARD_PORT
from trainer.jobset import DEFAULT_TF_PORT

__all__ = ["TRAINER_PORT", "network_policies"]

TRAINER_PORT = DEFAULT_TF_PORT  # the TFJob's tfjob-port and the TrainJob runtime's tf port


def _policy(p: ManifestParams, component: str, ports: list[int], peers: dict[str, Any]) -> dict[str, Any]:
    return {
        "apiVersion": "networking.k8s.io/v1",
        "kind": "NetworkPolicy",
        "metadata": metadata(f"{p.job_name}-{component}", p, component),
        "spec": {
            "podSelector": {"matchLabels": selector(p, component)},
            "policyTypes": ["Ingress"],
            "ingress": [{"from": [peers], "ports": [{"protocol": "TCP", "port": port} for port in ports]}],
        },
    }


def network_policies(p: ManifestParams) -> dict[str, dict[str, Any]]:
    """``{file name: NetworkPolicy}`` for the job's training, TensorBoard and serving pods."""
    same_namespace: dict[str, Any] = {"podSelector": {}}  # no namespaceSelector: this namespace only
    return {
        "networkpolicy-training.yaml": _policy(
            p, "training", [TRAINER_PORT], {"podSelector": {"matchLabels": selector(p, "training")}}
        ),
        "networkpolicy-tensorboard.yaml": _policy(p, "tensorboard", [TENSORBOARD_PORT], same_namespace),
        "networkpolicy-serving.yaml": _policy(p, "serving", [GRPC_PORT, REST_PORT], same_namespace),
        "networkpolicy-serving-kserve.yaml": _policy(
            p, KSERVE_COMPONENT, [KSERVE_REST_PORT, KSERVE_GRPC_PORT], same_namespace
        ),
    }
