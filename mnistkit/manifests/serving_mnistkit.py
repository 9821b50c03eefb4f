"""Serving a job's export with mnistkit's own server (``-p serving-server=mnistkit``): a Deployment, or a KServe
``InferenceService`` custom predictor speaking the Open Inference Protocol (v2).

``mnistkit serve`` reads ``s3://`` itself and polls the export for new versions, so unlike TF Serving (>= 2.7
has no S3 filesystem: ``manifests/serving.py`` copies one version in an init container, and a new version needs
a restart) the pod has no init container and serves each version as soon as the trainer publishes it. The keys
reach it only through the Secret (``secretKeyRef``). Image: ``docker/serving/Dockerfile``.

The Deployment has TF Serving's ports (gRPC 8500, REST 8501), so ``serving_service`` (and its seed port 9000)
serves either server. The InferenceService runs the same image as its ``kserve-container``; KServe (v0.20) has
no ``protocolVersion`` field for custom containers: the ``PROTOCOL=v2`` variable on the container declares the
protocol. REST listens on 8080, the port KServe expects and exposes as the predictor Service's port 80; gRPC on
8081, named ``grpc`` (KServe gives it ``appProtocol: kubernetes.io/h2c``). Two ports need KServe's raw Deployment
mode: Knative (``Serverless``) takes one port per container. Up to 0.15 it is ``RawDeployment``; 0.16 renamed it
``Standard`` and still accepts the old name, so the rendered ``RawDeployment`` works with both. KServe's defaulting
webhook rewrites it to ``Standard`` on the stored object, so ``kubectl diff`` shows that difference.
"""

from __future__ import annotations

from typing import Any

from mnistkit.manifests.common import (
    container_security,
    pod_security,
    s3_env,
)
from mnistkit.manifests.params import ManifestParams
from mnistkit.manifests.serving import (
    GRPC_PORT,
    INTRA_OP_ARG,
    MODEL_NAME,
    REST_PORT,
    inference_service_metadata,
    serving_deployment,
    serving_resources,
)

__all__ = [
    "mnistkit_serving_deployment",
    "mnistkit_inference_service",
    "serve_args",
    "KSERVE_REST_PORT",
    "KSERVE_GRPC_PORT",
    "POLL_SECONDS",
    "CACHE_DIR",
]

KSERVE_REST_PORT = 8080
KSERVE_GRPC_PORT = 8081
# How often the server lists the export for a new version: one S3 LIST request each time.
POLL_SECONDS = 10
CACHE_DIR = "/tmp/models"
# KServe's annotation for its deployment mode (see the module's docstring).
KSERVE_DEPLOYMENT_MODE = {"serving.kserve.io/deploymentMode": "RawDeployment"}


def serve_args(p: ManifestParams, grpc_port: int, rest_port: int) -> list[str]:
    """``mnistkit serve``'s arguments: the export on S3, TF Serving's flag names."""
    return [
        f"--port={grpc_port}",
        f"--rest_api_port={rest_port}",
        f"--model_name={MODEL_NAME}",
        f"--model_base_path={p.export_dir}",
        f"--file_system_poll_wait_seconds={POLL_SECONDS}",
        f"--model_cache_dir={CACHE_DIR}",
        INTRA_OP_ARG,
        # The server binds 127.0.0.1 by default (it has no authentication). In a pod, loopback is reachable only
        # from the pod itself: the kubelet's probes and the Service come through the pod's IP, so it must listen
        # there. Who may connect is the NetworkPolicy's job (networkpolicy-serving.yaml).
        "--host=0.0.0.0",
    ]


def _probe(path: str, port: int, **timing: int) -> dict[str, Any]:
    return {"httpGet": {"path": path, "port": port}, **timing}


def _container(p: ManifestParams, name: str, grpc_port: int, rest_port: int) -> dict[str, Any]:
    return {
        "name": name,
        "image": p.mnistkit_serving_image,
        "imagePullPolicy": "IfNotPresent",
        "command": ["mnistkit", "serve"],
        "args": serve_args(p, grpc_port, rest_port),
        "env": [*s3_env(p), {"name": "HOME", "value": "/tmp"}],
        # Ready once a version serves (503 before); live while the server answers at all. The first version is
        # downloaded and loaded before the ports open: the startup probe gives that up to 5 minutes.
        "startupProbe": _probe("/v2/health/live", rest_port, periodSeconds=5, failureThreshold=60),
        "readinessProbe": _probe("/v2/health/ready", rest_port, periodSeconds=5),
        "livenessProbe": _probe("/v2/health/live", rest_port, periodSeconds=10, failureThreshold=3),
        "resources": serving_resources(),
        "securityContext": container_security(),
        "volumeMounts": [{"name": "tmp", "mountPath": "/tmp"}],
    }


# The downloaded versions (the current one and the next) live in the cache on this emptyDir.
_VOLUMES = [{"name": "tmp", "emptyDir": {"sizeLimit": "2Gi"}}]


def mnistkit_serving_deployment(p: ManifestParams) -> dict[str, Any]:
    """The serving Deployment with ``mnistkit serve``: same name, labels, ports and Service as TF Serving's."""
    container = _container(p, "mnistkit-serve", GRPC_PORT, REST_PORT)
    container["ports"] = [
        {"name": "grpc", "containerPort": GRPC_PORT},
        {"name": "http", "containerPort": REST_PORT},
    ]
    dep = serving_deployment(p)  # its name, labels, selector and pod metadata (no Istio sidecar): one Service for both
    pod = {"securityContext": pod_security(), "containers": [container], "volumes": _VOLUMES}
    dep["spec"]["template"]["spec"] = pod
    return dep


def mnistkit_inference_service(p: ManifestParams) -> dict[str, Any]:
    """KServe custom predictor: ``mnistkit serve`` as ``kserve-container``, v2 on REST 8080 and gRPC 8081."""
    container = _container(p, "kserve-container", KSERVE_GRPC_PORT, KSERVE_REST_PORT)
    container["env"].append({"name": "PROTOCOL", "value": "v2"})
    container["ports"] = [
        {"name": "http1", "containerPort": KSERVE_REST_PORT, "protocol": "TCP"},
        {"name": "grpc", "containerPort": KSERVE_GRPC_PORT, "protocol": "TCP"},
    ]
    return {
        "apiVersion": "serving.kserve.io/v1beta1",
        "kind": "InferenceService",
        "metadata": inference_service_metadata(p, KSERVE_DEPLOYMENT_MODE),
        "spec": {
            "predictor": {
                "minReplicas": 1,
                "securityContext": pod_security(),
                "containers": [container],
                "volumes": _VOLUMES,
            }
        },
    }
