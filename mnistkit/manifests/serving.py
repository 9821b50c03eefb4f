"""Serving a job's export: TF Serving fed by an init container, or a KServe ``InferenceService``.

TF Serving >= 2.7 dropped its S3 filesystem, so the Deployment's init container (``amazon/aws-cli``)
copies the newest complete version of ``<model-dir>/export/mnist/`` into an ``emptyDir`` that TF Serving
reads as ``/models/mnist``. A new version reaches the pod only when it restarts (the init container runs
once), e.g. ``kubectl rollout restart deployment/<job>-serving``. Ports: gRPC 8500, REST 8501, and the
seed's 9000 (gRPC) on the Service. KServe's storage initializer reads ``s3://`` itself, configured by the
ServiceAccount's annotations and the Secret it lists (https://kserve.github.io/website/ "Deploy InferenceService with
a saved model on S3").
"""

from __future__ import annotations

from typing import Any

from mnistkit.manifests.common import (
    NO_ISTIO_SIDECAR,
    container_security,
    metadata,
    pod_metadata,
    pod_security,
    resources,
    s3_env,
    selector,
)
from mnistkit.manifests.params import ManifestParams

__all__ = [
    "serving_deployment",
    "serving_service",
    "kserve_service_account",
    "inference_service",
    "GRPC_PORT",
    "REST_PORT",
    "SEED_GRPC_PORT",
    "MODEL_NAME",
    "KSERVE_SERVICE_ACCOUNT",
    "KSERVE_COMPONENT",
    "inference_service_metadata",
    "serving_resources",
    "INTRA_OP_ARG",
]

GRPC_PORT = 8500
REST_PORT = 8501
SEED_GRPC_PORT = 9000
MODEL_NAME = "mnist"
# The serving containers' CPU limit, and one intra-op thread per CPU of it. TensorFlow sizes its intra-op pool by
# the CPUs the process may be scheduled on, which under a CPU limit (a CFS quota) are all the node's cores: on a
# 32-core node a 2-CPU server would split each op over 32 threads and be throttled. TF Serving and `mnistkit
# serve` take the same flag (docs/serving.md: on 2 CPUs, one thread per op serves batch-1 requests cheaper still).
SERVING_CPUS = 2
INTRA_OP_ARG = f"--tensorflow_intra_op_parallelism={SERVING_CPUS}"
KSERVE_SERVICE_ACCOUNT = "mnistkit-kserve-s3"
# An InferenceService's component label. KServe copies the service's labels onto its predictor pods: with the
# Deployment's "serving", the serving Service (and port-forward) would select KServe's pods, on ports they don't
# listen on. Their own component keeps them apart, with their own NetworkPolicy (KServe's ports).
KSERVE_COMPONENT = "serving-kserve"
# Without these labels KServe exposes the unauthenticated server outside the cluster: its Standard (raw) mode
# makes an Ingress or HTTPRoute unless networking.kserve.io/visibility is cluster-local; Knative (Serverless) mode
# reads networking.knative.dev/visibility (KServe v0.20: ingress/kube_ingress_reconciler.go, ingress_reconciler.go).
CLUSTER_LOCAL = {
    "networking.kserve.io/visibility": "cluster-local",
    "networking.knative.dev/visibility": "cluster-local",
}

# Copies the newest *complete* version: a folder named by digits only (TF Serving's own rule; never the
# trainer's `.staging/`) whose saved_model.pb is there (the trainer publishes it last, so a version being
# copied to S3 has none yet). Without one it fails: a clear init error beats a server that answers "no
# versions available" forever. POSIX sh with sed/sort/grep, which the amazon/aws-cli image has.
_SYNC_SCRIPT = """set -eu
extra=""
if [ "${S3_VERIFY_SSL:-1}" = "0" ]; then extra="--no-verify-ssl"; fi
if [ -n "${AWS_ENDPOINT_URL:-}" ]; then extra="$extra --endpoint-url $AWS_ENDPOINT_URL"; fi
versions=$(aws s3 ls $extra "$EXPORT_URL/" | sed -n 's#^ *PRE \\([0-9][0-9]*\\)/$#\\1#p' | sort -rn || true)
for v in $versions; do
  if aws s3 ls $extra "$EXPORT_URL/$v/" | grep -q ' saved_model[.]pb$'; then
    echo "copying version $v from $EXPORT_URL/$v/ to $MODELS_DIR/$v/"
    aws s3 cp $extra --recursive --only-show-errors "$EXPORT_URL/$v/" "$MODELS_DIR/$v/"
    test -f "$MODELS_DIR/$v/saved_model.pb"
    exit 0
  fi
done
echo "no complete version under $EXPORT_URL/ (expected <digits>/saved_model.pb; found: ${versions:-nothing})" >&2
exit 1
"""


def serving_deployment(p: ManifestParams) -> dict[str, Any]:
    return {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": metadata(p.serving_name, p, "serving"),
        "spec": {
            "replicas": 1,
            "selector": {"matchLabels": selector(p, "serving")},
            "template": {
                "metadata": pod_metadata(p, "serving"),
                "spec": {
                    "securityContext": pod_security(),
                    "initContainers": [
                        {
                            "name": "fetch-model",
                            "image": p.aws_cli_image,
                            "command": ["/bin/sh", "-c", _SYNC_SCRIPT],
                            "env": [
                                *s3_env(p),
                                {"name": "EXPORT_URL", "value": p.export_dir},
                                {"name": "MODELS_DIR", "value": f"/models/{MODEL_NAME}"},
                                {"name": "HOME", "value": "/tmp"},
                            ],
                            "resources": resources("100m", "256Mi", "1", "512Mi"),
                            "securityContext": container_security(),
                            "volumeMounts": [
                                {"name": "models", "mountPath": "/models"},
                                {"name": "tmp", "mountPath": "/tmp"},
                            ],
                        }
                    ],
                    "containers": [
                        {
                            "name": "tf-serving",
                            "image": p.serving_image,
                            "imagePullPolicy": "IfNotPresent",
                            "command": ["tensorflow_model_server"],
                            "args": [
                                f"--port={GRPC_PORT}",
                                f"--rest_api_port={REST_PORT}",
                                f"--model_name={MODEL_NAME}",
                                f"--model_base_path=/models/{MODEL_NAME}",
                                INTRA_OP_ARG,
                            ],
                            "ports": [
                                {"name": "grpc", "containerPort": GRPC_PORT},
                                {"name": "http", "containerPort": REST_PORT},
                            ],
                            "readinessProbe": {
                                "httpGet": {"path": f"/v1/models/{MODEL_NAME}", "port": REST_PORT},
                                "initialDelaySeconds": 5,
                                "periodSeconds": 10,
                            },
                            "resources": serving_resources(),
                            "securityContext": container_security(),
                            "volumeMounts": [{"name": "models", "mountPath": "/models", "readOnly": True}],
                        }
                    ],
                    "volumes": [
                        {"name": "models", "emptyDir": {"sizeLimit": "2Gi"}},
                        {"name": "tmp", "emptyDir": {}},
                    ],
                },
            },
        },
    }


def serving_resources() -> dict[str, Any]:
    """What a serving container requests, and its limits (``SERVING_CPUS``)."""
    return resources("500m", "1Gi", str(SERVING_CPUS), "2Gi")


def serving_service(p: ManifestParams) -> dict[str, Any]:
    return {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": metadata(p.serving_name, p, "serving"),
        "spec": {
            "type": "ClusterIP",
            "selector": selector(p, "serving"),
            "ports": [
                {"name": "grpc", "port": GRPC_PORT, "targetPort": GRPC_PORT, "protocol": "TCP"},
                {"name": "http", "port": REST_PORT, "targetPort": REST_PORT, "protocol": "TCP"},
                {"name": "grpc-seed", "port": SEED_GRPC_PORT, "targetPort": GRPC_PORT, "protocol": "TCP"},
            ],
        },
    }


def kserve_service_account(p: ManifestParams) -> dict[str, Any]:
    """The ServiceAccount KServe's storage initializer reads S3 settings and the Secret from."""
    return {
        "apiVersion": "v1",
        "kind": "ServiceAccount",
        "metadata": {
            "name": KSERVE_SERVICE_ACCOUNT,
            "namespace": p.namespace,
            "labels": {"app.kubernetes.io/part-of": "mnistkit"},
            "annotations": {
                "serving.kserve.io/s3-endpoint": p.s3_endpoint,
                "serving.kserve.io/s3-usehttps": p.s3_use_https,
                "serving.kserve.io/s3-region": p.aws_region,
                "serving.kserve.io/s3-verifyssl": p.s3_verify_ssl,
                "serving.kserve.io/s3-useanoncredential": "false",
            },
        },
        "secrets": [{"name": p.aws_secret}],
    }


def inference_service(p: ManifestParams) -> dict[str, Any]:
    """KServe alternative to the Deployment: its storage initializer downloads ``storageUri`` itself."""
    return {
        "apiVersion": "serving.kserve.io/v1beta1",
        "kind": "InferenceService",
        "metadata": inference_service_metadata(p, {}),
        "spec": {
            "predictor": {
                "serviceAccountName": KSERVE_SERVICE_ACCOUNT,
                "model": {
                    "modelFormat": {"name": "tensorflow"},
                    "storageUri": p.export_dir,
                    "resources": serving_resources(),
                },
            }
        },
    }


def inference_service_metadata(p: ManifestParams, annotations: dict[str, str]) -> dict[str, Any]:
    """An InferenceService's metadata: its own component label, cluster-local only, no Istio sidecar."""
    meta = metadata(p.job_name, p, KSERVE_COMPONENT)
    meta["labels"].update(CLUSTER_LOCAL)
    meta["annotations"] = {**NO_ISTIO_SIDECAR, **annotations}
    return meta
