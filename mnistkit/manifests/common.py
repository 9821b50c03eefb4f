"""Pieces every manifest shares: labels, S3 environment (keys only through ``secretKeyRef``), pod security.

Labels are how ``mnistkit delete`` finds everything a job created: ``mnistkit.io/job=<job-name>`` on the
workflow, the TFJob (and so its pods), and the TensorBoard and serving Deployments and Services.
"""

from __future__ import annotations

from typing import Any

from mnistkit.manifests.params import ManifestParams

__all__ = [
    "JOB_LABEL",
    "COMPONENT_LABEL",
    "PART_OF",
    "SECRET_KEY_ID",
    "SECRET_KEY_SECRET",
    "labels",
    "selector",
    "metadata",
    "pod_metadata",
    "NO_ISTIO_SIDECAR",
    "s3_env",
    "pod_security",
    "container_security",
    "resources",
]

JOB_LABEL = "mnistkit.io/job"
COMPONENT_LABEL = "app.kubernetes.io/component"
PART_OF = {"app.kubernetes.io/part-of": "mnistkit"}
# The seed's Secret keys (kept so existing `aws-creds` Secrets keep working).
SECRET_KEY_ID = "awsAccessKeyID"
SECRET_KEY_SECRET = "awsSecretAccessKey"
NON_ROOT_UID = 1000
# Every pod that talks to S3 as soon as it starts (trainer, TensorBoard, the serving init container, Argo's
# step pods) runs without Istio's sidecar: until the sidecar is ready the pod has no network, and a sidecar
# never exits, so a finished pod (a TFJob replica, a workflow step) would stay Running forever.
NO_ISTIO_SIDECAR = {"sidecar.istio.io/inject": "false"}


def labels(p: ManifestParams, component: str | None = None) -> dict[str, str]:
    out = {**PART_OF, JOB_LABEL: p.job_name, **dict(p.extra_labels)}
    if component:
        out[COMPONENT_LABEL] = component
    return out


def selector(p: ManifestParams, component: str) -> dict[str, str]:
    """A Deployment's/Service's pod selector: the component's labels without ``part-of`` (shared by all)."""
    return {k: v for k, v in labels(p, component).items() if k != "app.kubernetes.io/part-of"}


def metadata(name: str, p: ManifestParams, component: str | None = None, **extra: Any) -> dict[str, Any]:
    return {"name": name, "namespace": p.namespace, "labels": labels(p, component), **extra}


def pod_metadata(p: ManifestParams, component: str) -> dict[str, Any]:
    """A pod template's metadata: the component's labels, and no Istio sidecar."""
    return {"labels": labels(p, component), "annotations": dict(NO_ISTIO_SIDECAR)}


def s3_env(p: ManifestParams, *, tensorboard: bool = False) -> list[dict[str, Any]]:
    """The seed's S3 variables. Keys come from the Secret named by ``aws-secret``, never as values.

    TensorBoard's TF-free S3 reader takes ``S3_ENDPOINT`` as a full URL (boto3's endpoint_url), while
    TensorFlow's old reader took ``host:port``; hence the ``tensorboard`` switch.
    """

    def from_secret(name: str, key: str) -> dict[str, Any]:
        return {"name": name, "valueFrom": {"secretKeyRef": {"name": p.aws_secret, "key": key}}}

    return [
        from_secret("AWS_ACCESS_KEY_ID", SECRET_KEY_ID),
        from_secret("AWS_SECRET_ACCESS_KEY", SECRET_KEY_SECRET),
        {"name": "AWS_ENDPOINT_URL", "value": p.aws_endpoint_url},
        {"name": "S3_ENDPOINT", "value": p.aws_endpoint_url if tensorboard else p.s3_endpoint},
        {"name": "AWS_REGION", "value": p.aws_region},
        {"name": "AWS_DEFAULT_REGION", "value": p.aws_region},
        {"name": "S3_USE_HTTPS", "value": p.s3_use_https},
        {"name": "S3_VERIFY_SSL", "value": p.s3_verify_ssl},
    ]


def pod_security(uid: int = NON_ROOT_UID) -> dict[str, Any]:
    return {
        "runAsNonRoot": True,
        "runAsUser": uid,
        "runAsGroup": uid,
        "fsGroup": uid,
        "seccompProfile": {"type": "RuntimeDefault"},
    }


def container_security(read_only_root: bool = False) -> dict[str, Any]:
    return {
        "allowPrivilegeEscalation": False,
        "readOnlyRootFilesystem": read_only_root,
        "capabilities": {"drop": ["ALL"]},
    }


def resources(cpu: str, memory: str, cpu_limit: str | None = None, memory_limit: str | None = None) -> dict[str, Any]:
    return {
        "requests": {"cpu": cpu, "memory": memory},
        "limits": {"cpu": cpu_limit or cpu, "memory": memory_limit or memory},
    }
