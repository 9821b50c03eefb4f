"""The TFJob (``kubeflow.org/v1``): one Chief plus ``tf-worker`` Workers, each running ``python -m trainer.task``.

Restart policy ``ExitCode``: exit codes 1-127 (a bug, bad data, the trainer's own error exits 2 and 3)
fail the job at once, so the workflow's failureCondition (``replicaStatuses.<type>.failed > 0``) sees
it; 128+ (SIGKILL/OOM, a preempted node) restart the pod, at most ``backoffLimit`` times, and the restarted
worker resumes from its S3 backup. ``activeDeadlineSeconds`` bounds a hung job.
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
)
from mnistkit.manifests.params import ManifestParams, is_placeholder

__all__ = ["tfjob", "REPLICA_TYPES", "SUCCESS_CONDITION", "FAILURE_CONDITION"]

REPLICA_TYPES = ("Chief", "Worker")
# Argo resource conditions: label-selector syntax over gjson paths. Success needs every requirement;
# failure fires on ANY one (argo-workflows workflow/executor/resource.go, matchConditions).
SUCCESS_CONDITION = "status.replicaStatuses.Chief.succeeded > 0"
FAILURE_CONDITION = "status.replicaStatuses.Chief.failed > 0,status.replicaStatuses.Worker.failed > 0"


def _replica(p: ManifestParams, replicas: int | str) -> dict[str, Any]:
    return {
        "replicas": replicas,
        "restartPolicy": "ExitCode",
        "template": {
            "metadata": pod_metadata(p, "training"),
            "spec": {
                "securityContext": pod_security(),
                "containers": [
                    {
                        # TFJob requires the container to be called "tensorflow".
                        "name": "tensorflow",
                        "image": p.tf_model_image,
                        "imagePullPolicy": "IfNotPresent",
                        "command": ["python", "-m", "trainer.task"],
                        "args": p.trainer_flags(),
                        "env": [*s3_env(p), {"name": "TF_CPP_MIN_LOG_LEVEL", "value": "2"}],
                        "ports": [{"name": "tfjob-port", "containerPort": 2222}],
                        "resources": resources("1", "2Gi", "2", "4Gi"),
                        "securityContext": container_security(),
                        "volumeMounts": [{"name": "work", "mountPath": "/tmp"}],
                    }
                ],
                "volumes": [{"name": "work", "emptyDir": {"sizeLimit": "2Gi"}}],
            },
        },
    }


def tfjob(p: ManifestParams) -> dict[str, Any]:
    """The TFJob for ``p`` (concrete values, or placeholders for the workflow's inline manifest)."""
    workers: int | str = p.tf_worker if is_placeholder(p.tf_worker) else int(p.tf_worker)
    specs: dict[str, Any] = {"Chief": _replica(p, 1)}
    if workers != 0:
        specs["Worker"] = _replica(p, workers)
    return {
        "apiVersion": "kubeflow.org/v1",
        "kind": "TFJob",
        "metadata": metadata(p.job_name, p, "training"),
        "spec": {
            "runPolicy": {
                # Running: stop worker pods once the chief is done; finished pods stay for `mnistkit logs`.
                "cleanPodPolicy": "Running",
                "backoffLimit": p.backoff_limit,
                "activeDeadlineSeconds": p.train_deadline_seconds,
                "ttlSecondsAfterFinished": p.ttl_seconds_after_finished,
            },
            "tfReplicaSpecs": specs,
        },
    }
