"""S3 credentials in the cluster: the ``aws-creds`` Secret (built in memory, never rendered) and a PodDefault.

``mnistkit render`` never writes a Secret: ``aws_secret`` is called by ``mnistkit.cluster`` to create it
through the API. Notebook pods labelled ``mnistkit-s3: "true"`` get the keys as environment variables
from Kubeflow's PodDefault admission webhook, again only by ``secretKeyRef``.
"""

from __future__ import annotations

from typing import Any

from mnistkit.config import S3Config
from mnistkit.errors import ConfigError
from mnistkit.manifests.common import SECRET_KEY_ID, SECRET_KEY_SECRET, s3_env
from mnistkit.manifests.params import ManifestParams

__all__ = ["aws_secret", "pod_default", "POD_DEFAULT_LABEL"]

POD_DEFAULT_LABEL = "mnistkit-s3"


def aws_secret(s3: S3Config, name: str = "aws-creds", namespace: str = "kubeflow") -> dict[str, Any]:
    """The Secret with the seed's keys, plus KServe's default key names so an InferenceService can use it."""
    if not s3.access_key_id:
        raise ConfigError("the S3 settings have no access key to store in a Secret", field="access_key_id")
    return {
        "apiVersion": "v1",
        "kind": "Secret",
        "type": "Opaque",
        "metadata": {"name": name, "namespace": namespace, "labels": {"app.kubernetes.io/part-of": "mnistkit"}},
        "stringData": {
            SECRET_KEY_ID: s3.access_key_id,
            SECRET_KEY_SECRET: s3.secret_access_key,
            "AWS_ACCESS_KEY_ID": s3.access_key_id,
            "AWS_SECRET_ACCESS_KEY": s3.secret_access_key,
        },
    }


def pod_default(p: ManifestParams) -> dict[str, Any]:
    env = [e for e in s3_env(p) if e["name"] != "AWS_DEFAULT_REGION"]
    env.append({"name": "BUCKET_NAME", "value": p.s3_train_base_url.split("/")[2]})
    return {
        "apiVersion": "kubeflow.org/v1alpha1",
        "kind": "PodDefault",
        "metadata": {
            "name": "mnistkit-s3",
            "namespace": p.namespace,
            "labels": {"app.kubernetes.io/part-of": "mnistkit"},
        },
        "spec": {
            "desc": "mnistkit: S3 settings and the aws-creds keys",
            "selector": {"matchLabels": {POD_DEFAULT_LABEL: "true"}},
            "env": env,
        },
    }
