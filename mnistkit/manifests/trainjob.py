"""The TrainJob (Kubeflow Trainer v2, ``trainer.kubeflow.org/v1alpha1``) of one run, on ``mnistkit-tensorflow``.

``tf-worker`` keeps its TFJob meaning, "workers besides the chief", so a run has the same number of
processes either way: ``numNodes = tf-worker + 1``, and node 0 plays the chief (``trainer/jobset.py``).

Argo conditions. Argo evaluates ``successCondition``/``failureCondition`` as Kubernetes label selectors whose
keys are gjson paths into the TrainJob (argo-workflows ``workflow/executor/resource.go``: ``labels.Parse`` then
``gjsonLabels``; the step fails if ANY failure requirement matches, succeeds if ALL success requirements match).
``labels.Parse`` validates every key as a label key (apimachinery ``content.IsLabelKey``: ``[A-Za-z0-9._-]``, at
most 63 characters after an optional ``prefix/``), so gjson's queries (``conditions.#(type=="Failed")``) cannot
be written: a key can only be a dotted path whose numeric parts index a list. TrainJob's status is::

    conditions: [{type: Suspended|Complete|Failed, status, reason, ...}]   # at most one per type
    jobsStatus: [{name: node, ready, succeeded, failed, active, suspended}] # one per replicated job

Trainer v2.3.0 only ever sets ``Failed`` and ``Complete`` with status True (``trainjob_controller.go``
``setFailedCondition``; the JobSet plugin copies JobSet's conditions only when True), and there are at most three
types, so "a Failed condition at any position" is the OR of positions 0-2, which a failure condition can say.
"Complete at any position" would need an OR in the success condition, which ANDs; so success reads the runtime's
only replicated job instead: ``jobsStatus.0`` is ``node`` and its one Job succeeded (that is exactly when JobSet,
and so the TrainJob, completes: one Job, success policy All). ``name == node`` pins the position.
"""

from __future__ import annotations

from typing import Any

from mnistkit.errors import ConfigError
from mnistkit.manifests.common import labels, metadata, s3_env
from mnistkit.manifests.params import ManifestParams, is_placeholder
from mnistkit.manifests.runtime import NODE, RUNTIME_KINDS, RUNTIME_NAME, TRAINER_API
from trainer.jobset import ENV_NUM_NODES

__all__ = ["trainjob", "num_nodes", "SUCCESS_CONDITION", "FAILURE_CONDITION", "PATCH_MANAGER"]

SUCCESS_CONDITION = f"status.jobsStatus.0.name == {NODE},status.jobsStatus.0.succeeded > 0"
FAILURE_CONDITION = ",".join(
    [f"status.conditions.{i}.type == Failed" for i in range(3)] + ["status.jobsStatus.0.failed > 0"]
)
# runtimePatches are keyed by a manager; Trainer requires a domain-prefixed path.
PATCH_MANAGER = "mnistkit.io/cli"
# What Argo substitutes for numNodes in the workflow's inline TrainJob (an expression tag: parameters are strings).
_NUM_NODES_EXPR = '{{=asInt(workflow.parameters["tf-worker"]) + 1}}'


def num_nodes(p: ManifestParams) -> int | str:
    """``tf-worker + 1``; for a placeholder ``tf-worker``, the Argo expression that computes it."""
    return _NUM_NODES_EXPR if is_placeholder(p.tf_worker) else int(p.tf_worker) + 1


def trainjob(p: ManifestParams, *, runtime_kind: str | None = None) -> dict[str, Any]:
    """The TrainJob for ``p`` (concrete values, or placeholders for the workflow's inline manifest).

    ``runtime_kind`` (default ``p.runtime_kind``): ``ClusterTrainingRuntime`` or the namespaced ``TrainingRuntime``.
    """
    runtime_kind = runtime_kind or p.runtime_kind
    if runtime_kind not in RUNTIME_KINDS:
        raise ConfigError(
            f"runtime_kind must be one of {', '.join(RUNTIME_KINDS)}, got {runtime_kind!r}",
            field="runtime_kind",
            value=runtime_kind,
        )
    nodes = num_nodes(p)
    return {
        "apiVersion": "/".join(TRAINER_API),
        "kind": "TrainJob",
        "metadata": metadata(p.job_name, p, "training"),
        "spec": {
            "runtimeRef": {"name": RUNTIME_NAME, "apiGroup": TRAINER_API[0], "kind": runtime_kind},
            # Trainer fails the TrainJob (reason DeadlineExceeded) and deletes its JobSet after this.
            "activeDeadlineSeconds": p.train_deadline_seconds,
            "trainer": {
                "numNodes": nodes,
                "image": p.tf_model_image,
                "command": ["python", "-m", "trainer.task"],
                # Every --tf-* flag of the trainer (mnistkit.trainspec.FLAGS), as the TFJob passes them.
                "args": p.trainer_flags(),
                # S3 keys by secretKeyRef only; the node count again, because a pod cannot see it otherwise.
                "env": [*s3_env(p), {"name": ENV_NUM_NODES, "value": str(nodes)}],
            },
            # The job's labels on its pods too, so `mnistkit logs/delete` find them as they find a TFJob's.
            "runtimePatches": [
                {
                    "manager": PATCH_MANAGER,
                    "trainingRuntimeSpec": {
                        "template": {
                            "spec": {
                                "replicatedJobs": [
                                    {
                                        "name": NODE,
                                        "template": {
                                            "spec": {"template": {"metadata": {"labels": labels(p, "training")}}}
                                        },
                                    }
                                ]
                            }
                        }
                    },
                }
            ],
        },
    }
