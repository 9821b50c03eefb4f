"""TensorBoard for one job: a Deployment reading ``<model-dir>/logs`` straight from S3, and its Service.

TF 2.21 has no ``s3://`` filesystem, but TensorBoard without TensorFlow falls back to its own stub,
which reads S3 through boto3 (``docker/tensorboard/Dockerfile``: ``pip install tensorboard boto3``).
That stub wants ``S3_ENDPOINT`` as a full URL (``common.s3_env(tensorboard=True)`` sets it so), and
TensorBoard must run with ``--load_fast=false`` (its Rust data server has no S3 support).
Checked by ``tests/cluster/test_cluster_tensorboard.py`` against the embedded S3 server.
"""

from __future__ import annotations

from typing import Any

from mnistkit.manifests.common import (
    container_security,
    metadata,
    pod_metadata,
    pod_security,
    resources,
    s3_env,
    selector,
)
from mnistkit.manifests.params import ManifestParams

__all__ = ["tensorboard_deployment", "tensorboard_service", "TENSORBOARD_PORT"]

TENSORBOARD_PORT = 6006


def tensorboard_deployment(p: ManifestParams) -> dict[str, Any]:
    return {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": metadata(p.tensorboard_name, p, "tensorboard"),
        "spec": {
            "replicas": 1,
            "selector": {"matchLabels": selector(p, "tensorboard")},
            "template": {
                "metadata": pod_metadata(p, "tensorboard"),
                "spec": {
                    "securityContext": pod_security(),
                    "containers": [
                        {
                            "name": "tensorboard",
                            "image": p.tensorboard_image,
                            "imagePullPolicy": "IfNotPresent",
                            "command": ["tensorboard"],
                            "args": [
                                f"--logdir={p.logs_dir}",
                                "--host=0.0.0.0",
                                f"--port={TENSORBOARD_PORT}",
                                "--reload_interval=15",
                                # The Rust data server cannot read s3://; the Python loader can.
                                "--load_fast=false",
                            ],
                            "env": [*s3_env(p, tensorboard=True), {"name": "HOME", "value": "/tmp"}],
                            "ports": [{"name": "http", "containerPort": TENSORBOARD_PORT}],
                            "readinessProbe": {
                                "httpGet": {"path": "/", "port": TENSORBOARD_PORT},
                                "initialDelaySeconds": 5,
                                "periodSeconds": 10,
                            },
                            "resources": resources("100m", "512Mi", "1", "1Gi"),
                            "securityContext": container_security(),
                            "volumeMounts": [{"name": "tmp", "mountPath": "/tmp"}],
                        }
                    ],
                    "volumes": [{"name": "tmp", "emptyDir": {}}],
                },
            },
        },
    }


def tensorboard_service(p: ManifestParams) -> dict[str, Any]:
    return {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": metadata(p.tensorboard_name, p, "tensorboard"),
        "spec": {
            "type": "ClusterIP",
            "selector": selector(p, "tensorboard"),
            "ports": [{"name": "http", "port": 80, "targetPort": TENSORBOARD_PORT, "protocol": "TCP"}],
        },
    }
