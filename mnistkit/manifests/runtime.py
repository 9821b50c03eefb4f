"""The TensorFlow runtime for Kubeflow Trainer v2 that nobody ships: ``mnistkit-tensorflow``.

Trainer v2 (``trainer.kubeflow.org/v1alpha1``) ships runtimes for torch, deepspeed, jax, mlx, mpi and xgboost, and
none for TensorFlow (kubeflow/trainer#2443). This one is a JobSet template with one replicated job ``node`` of
``numNodes`` pods and no framework policy, so Trainer's ``PlainML`` plugin handles it: it sets the pod count from
``TrainJob.spec.trainer.numNodes`` and adds ``spec.trainer.env`` to the container named ``node``, and the JobSet
plugin puts ``spec.trainer.image/command/args`` there. Nothing writes ``TF_CONFIG``; the trainer builds it from
the JobSet env this template passes in (``trainer/jobset.py``).

Failure handling mirrors the TFJob's ``restartPolicy: ExitCode``: a node that exits 1-127 (a bug, bad data, the
trainer's own exits 2 and 3) fails the Job at once (``podFailurePolicy`` ``FailJob``), so the JobSet and the
TrainJob fail; a node killed by a signal (137 SIGKILL/OOM, 143 SIGTERM) is recreated with the same index and
hostname, at most ``backoffLimit`` times, and resumes from its S3 backup; an evicted or preempted pod
(``DisruptionTarget``) does not count.

``ClusterTrainingRuntime`` needs a cluster admin; ``TrainingRuntime`` (namespaced, same spec) does not. A
TrainJob picks one with ``spec.runtimeRef.kind``.
"""

from __future__ import annotations

from typing import Any

from mnistkit.manifests.common import COMPONENT_LABEL, PART_OF, container_security, pod_security, resources
from mnistkit.manifests.params import ManifestParams
from trainer.jobset import ANNOTATION_OF_ENV, DEFAULT_TF_PORT

__all__ = [
    "RUNTIME_NAME",
    "RUNTIME_KINDS",
    "TRAINER_API",
    "NODE",
    "ANCESTOR_LABEL",
    "training_runtime",
]

TRAINER_API = ("trainer.kubeflow.org", "v1alpha1")
RUNTIME_NAME = "mnistkit-tensorflow"
RUNTIME_KINDS = ("ClusterTrainingRuntime", "TrainingRuntime")
# Trainer's constants.Node: the replicated job and container that PlainML and the JobSet plugin fill in.
NODE = "node"
# Marks the replicated job that `TrainJob.spec.trainer` configures (Trainer's constants.LabelTrainJobAncestor).
ANCESTOR_LABEL = "trainer.kubeflow.org/trainjob-ancestor-step"
_SIGNAL_EXITS = [137, 143]  # SIGKILL (also the OOM killer), SIGTERM: restart the pod, like TFJob's ExitCode policy


def _pod_template(p: ManifestParams) -> dict[str, Any]:
    downward = [
        {"name": env, "valueFrom": {"fieldRef": {"fieldPath": f"metadata.annotations['{annotation}']"}}}
        for env, annotation in ANNOTATION_OF_ENV.items()
    ]
    return {
        "metadata": {
            "labels": {**PART_OF, COMPONENT_LABEL: "training"},
            # Istio's sidecar never exits, so with it a finished node would stay Running and the Job never completes.
            "annotations": {"sidecar.istio.io/inject": "false"},
        },
        "spec": {
            "restartPolicy": "Never",  # podFailurePolicy requires it; the Job controller recreates failed pods
            "securityContext": pod_security(),
            "containers": [
                {
                    "name": NODE,
                    "image": p.tf_model_image,  # the default; each TrainJob sets spec.trainer.image
                    "imagePullPolicy": "IfNotPresent",
                    "command": ["python", "-m", "trainer.task"],
                    # JOB_COMPLETION_INDEX comes from the Job controller; S3 settings from the TrainJob.
                    "env": [*downward, {"name": "TF_CPP_MIN_LOG_LEVEL", "value": "2"}],
                    "ports": [{"name": "tf", "containerPort": DEFAULT_TF_PORT}],
                    "resources": resources("1", "2Gi", "2", "4Gi"),
                    "securityContext": container_security(),
                    "volumeMounts": [{"name": "work", "mountPath": "/tmp"}],
                }
            ],
            "volumes": [{"name": "work", "emptyDir": {"sizeLimit": "2Gi"}}],
        },
    }


def training_runtime(p: ManifestParams, *, kind: str = "ClusterTrainingRuntime") -> dict[str, Any]:
    """``mnistkit-tensorflow`` as a ``ClusterTrainingRuntime`` (default) or a namespaced ``TrainingRuntime``."""
    if kind not in RUNTIME_KINDS:
        raise ValueError(f"kind must be one of {RUNTIME_KINDS}, got {kind!r}")
    metadata: dict[str, Any] = {
        "name": RUNTIME_NAME,
        "labels": {**PART_OF, "trainer.kubeflow.org/framework": "tensorflow"},
    }
    if kind == "TrainingRuntime":
        metadata["namespace"] = p.namespace
    job = {
        "backoffLimit": p.backoff_limit,
        "podFailurePolicy": {
            "rules": [
                {"action": "Ignore", "onPodConditions": [{"type": "DisruptionTarget", "status": "True"}]},
                {
                    "action": "FailJob",
                    "onExitCodes": {"containerName": NODE, "operator": "NotIn", "values": _SIGNAL_EXITS},
                },
            ]
        },
        "template": _pod_template(p),
    }
    return {
        "apiVersion": "/".join(TRAINER_API),
        "kind": kind,
        "metadata": metadata,
        "spec": {
            # No framework policy (torch, mpi, jax, ...): Trainer's PlainML plugin runs it.
            "mlPolicy": {"numNodes": 1},
            "template": {
                "spec": {
                    # Stable DNS names <jobset>-node-0-<index>.<jobset> for TF_CONFIG; not-ready pods resolve too,
                    # so a node can reach a peer that is still starting (the trainer's watchdog bounds the wait).
                    "network": {"enableDNSHostnames": True, "publishNotReadyAddresses": True},
                    # Finished pods (and their logs) stay this long; the TrainJob and its status stay after.
                    "ttlSecondsAfterFinished": p.ttl_seconds_after_finished,
                    "replicatedJobs": [
                        {
                            "name": NODE,
                            "replicas": 1,
                            "template": {"metadata": {"labels": {ANCESTOR_LABEL: "trainer"}}, "spec": job},
                        }
                    ],
                }
            },
        },
    }
