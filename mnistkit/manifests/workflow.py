"""The Argo workflow ``model-train`` (TensorBoard, TFJob, optional serving); ``model-deploy`` is in ``deploy.py``.

``model-train`` keeps the seed's parameters and steps: ``get-workflow-info`` -> ``tensorboard`` ->
``train-model`` -> ``serve-model`` (only when ``model-serving`` is true). What changed and why:

* ``train-model`` creates the TFJob with a successCondition *and* a failureCondition and a deadline;
  the seed had none, so a failed TFJob kept the workflow Running forever.
* Inline manifests come from the same builders as the rendered files (``ManifestParams.placeholders()``),
  so the TFJob the workflow creates is the TFJob ``mnistkit render`` writes and the tests validate.
* The exit handler stops a TFJob that is still running when the workflow did not succeed (keeping the
  failed pods' logs), then a
  ``report`` step prints the outcome and ``{{workflow.failures}}`` and exits 1 on failure, so the
  failure shows in logs and the UI instead of being hidden behind a green exit handler.
* ``-p trainer=trainjob`` swaps the TFJob for a Kubeflow Trainer v2 TrainJob (``train-model-trainjob``, see
  ``manifests/trainjob.py`` for its conditions; ``cleanup-trainjob`` suspends it). Steps pick their variant with
  ``when`` (Argo's govaluate reads bare words as strings).
* ``-p serving-server=mnistkit`` serves with ``mnistkit serve`` (``serve-model-mnistkit``, reading ``s3://`` and
  loading new versions itself) instead of TF Serving fed by an init container (``serve-model``); both behind
  the same Service. ``model-deploy`` takes the same choice as its own parameter.
* Every created object gets an owner reference to the workflow (``setOwnerReference``): deleting the
  workflow garbage-collects its TFJob, TensorBoard and serving objects.
"""

from __future__ import annotations

from dataclasses import replace
from typing import Any

from mnistkit.manifests.argo import MNISTKIT_WHEN, TFSERVING_WHEN, pod_security, resource_template
from mnistkit.manifests.common import JOB_LABEL, NO_ISTIO_SIDECAR, PART_OF, container_security, resources
from mnistkit.manifests.params import ManifestParams
from mnistkit.manifests.rbac import WORKFLOW_SERVICE_ACCOUNT
from mnistkit.manifests.serving import serving_deployment, serving_service
from mnistkit.manifests.serving_mnistkit import mnistkit_serving_deployment
from mnistkit.manifests.tensorboard import tensorboard_deployment, tensorboard_service
from mnistkit.manifests.tfjob import FAILURE_CONDITION, SUCCESS_CONDITION, tfjob
from mnistkit.manifests.trainjob import FAILURE_CONDITION as TRAINJOB_FAILURE
from mnistkit.manifests.trainjob import SUCCESS_CONDITION as TRAINJOB_SUCCESS
from mnistkit.manifests.trainjob import trainjob

__all__ = ["model_train_workflow", "TRAIN_STEPS", "REPORT_IMAGE"]

TRAIN_STEPS = ("get-workflow-info", "tensorboard", "train-model", "serve-model")
REPORT_IMAGE = "docker.io/library/busybox:1.36"


def _train_template(
    name: str,
    job: dict[str, Any],
    p: ManifestParams,
    conditions: tuple[str, str] = (SUCCESS_CONDITION, FAILURE_CONDITION),
) -> dict[str, Any]:
    return resource_template(
        name,
        "create",
        job,
        resource={"successCondition": conditions[0], "failureCondition": conditions[1]},
        # Past the TFJob's own deadline: if the operator's Failed status never shows up in
        # replicaStatuses (deadline or backoff failures), this still ends the step.
        activeDeadlineSeconds=p.train_deadline_seconds + 600,
        outputs={"parameters": [{"name": "tfjob-name", "valueFrom": {"jsonPath": "{.metadata.name}"}}]},
    )


def _report_template() -> dict[str, Any]:
    script = (
        'echo "workflow $WORKFLOW_NAME finished: $WORKFLOW_STATUS"\n'
        'if [ "$WORKFLOW_STATUS" != "Succeeded" ]; then\n'
        '  echo "failed steps: $WORKFLOW_FAILURES" >&2\n'
        "  exit 1\n"
        "fi\n"
    )
    return {
        "name": "report",
        "container": {
            "image": REPORT_IMAGE,
            "command": ["/bin/sh", "-c", script],
            # Through env, not the script text: failures are JSON with quotes that would break the shell.
            "env": [
                {"name": "WORKFLOW_NAME", "value": "{{workflow.name}}"},
                {"name": "WORKFLOW_STATUS", "value": "{{workflow.status}}"},
                {"name": "WORKFLOW_FAILURES", "value": "{{workflow.failures}}"},
            ],
            "resources": resources("10m", "16Mi", "100m", "32Mi"),
            "securityContext": container_security(read_only_root=True),
        },
    }


def model_train_workflow(p: ManifestParams | None = None, *, name: str | None = None) -> dict[str, Any]:
    """The ``model-train`` Workflow with ``p`` as its default arguments.

    ``name=None`` gives ``generateName: model-train-`` (for ``argo submit`` of the rendered file);
    ``mnistkit submit`` passes the job name so a retried create can never make a second workflow.
    """
    p = (p or ManifestParams()).validate()
    ph = ManifestParams.placeholders()
    ph = replace(
        ph,
        train_deadline_seconds=p.train_deadline_seconds,
        backoff_limit=p.backoff_limit,
        ttl_seconds_after_finished=p.ttl_seconds_after_finished,
        aws_cli_image=p.aws_cli_image,
        runtime_kind=p.runtime_kind,
    )
    meta: dict[str, Any] = {"labels": dict(PART_OF)}
    if name:
        meta["name"] = name
        meta["labels"][JOB_LABEL] = p.job_name
    else:
        meta["generateName"] = "model-train-"
    meta["namespace"] = p.namespace
    serving_when = "{{workflow.parameters.model-serving}} == true"
    trainjob_when = "{{workflow.parameters.trainer}} == trainjob"
    tfjob_when = "{{workflow.parameters.trainer}} != trainjob"
    tfjob_ref = {
        "apiVersion": "kubeflow.org/v1",
        "kind": "TFJob",
        "metadata": {"name": ph.job_name, "namespace": ph.namespace},
    }
    trainjob_ref = {
        "apiVersion": "trainer.kubeflow.org/v1alpha1",
        "kind": "TrainJob",
        "metadata": {"name": ph.job_name, "namespace": ph.namespace},
    }
    return {
        "apiVersion": "argoproj.io/v1alpha1",
        "kind": "Workflow",
        "metadata": meta,
        "spec": {
            "entrypoint": "model-train",
            "onExit": "exit-handler",
            "serviceAccountName": WORKFLOW_SERVICE_ACCOUNT,
            # Training deadline plus room for TensorBoard, serving and the exit handler.
            "activeDeadlineSeconds": p.train_deadline_seconds + 1800,
            "securityContext": pod_security(),
            "podMetadata": {"annotations": dict(NO_ISTIO_SIDECAR)},
            "arguments": {"parameters": [{"name": k, "value": v} for k, v in p.parameters().items()]},
            "templates": [
                {
                    "name": "model-train",
                    "steps": [
                        [{"name": "get-workflow-info", "template": "get-workflow-info"}],
                        [
                            {"name": "tensorboard", "template": "tensorboard"},
                            {"name": "tensorboard-service", "template": "tensorboard-service"},
                        ],
                        # Two variants, one runs: a TFJob with a zero-replica Worker spec would give
                        # TF_CONFIG an empty worker list, so tf-worker=0 gets a Chief-only TFJob.
                        # -p trainer=trainjob: a Trainer v2 TrainJob of tf-worker + 1 nodes instead.
                        [
                            {
                                "name": "train-model",
                                "template": "train-model",
                                "when": f"{tfjob_when} && {{{{workflow.parameters.tf-worker}}}} != 0",
                            },
                            {
                                "name": "train-model-single",
                                "template": "train-model-single",
                                "when": f"{tfjob_when} && {{{{workflow.parameters.tf-worker}}}} == 0",
                            },
                            {"name": "train-model-trainjob", "template": "train-model-trainjob", "when": trainjob_when},
                        ],
                        [
                            {
                                "name": "serve-model",
                                "template": "serve-model",
                                "when": f"{serving_when} && {TFSERVING_WHEN}",
                            },
                            {
                                "name": "serve-model-mnistkit",
                                "template": "serve-model-mnistkit",
                                "when": f"{serving_when} && {MNISTKIT_WHEN}",
                            },
                            {"name": "serve-model-service", "template": "serve-model-service", "when": serving_when},
                        ],
                    ],
                },
                resource_template(
                    "get-workflow-info",
                    "get",
                    {
                        "apiVersion": "argoproj.io/v1alpha1",
                        "kind": "Workflow",
                        "metadata": {"name": "{{workflow.name}}", "namespace": "{{workflow.namespace}}"},
                    },
                    outputs={
                        "parameters": [
                            {"name": "workflow-uid", "valueFrom": {"jsonPath": "{.metadata.uid}"}},
                            {"name": "created", "valueFrom": {"jsonPath": "{.metadata.creationTimestamp}"}},
                        ]
                    },
                ),
                resource_template("tensorboard", "apply", tensorboard_deployment(ph)),
                resource_template("tensorboard-service", "apply", tensorboard_service(ph)),
                _train_template("train-model", tfjob(ph), p),
                _train_template("train-model-single", tfjob(replace(ph, tf_worker="0")), p),
                _train_template("train-model-trainjob", trainjob(ph), p, (TRAINJOB_SUCCESS, TRAINJOB_FAILURE)),
                resource_template("serve-model", "apply", serving_deployment(ph)),
                resource_template("serve-model-mnistkit", "apply", mnistkit_serving_deployment(ph)),
                resource_template("serve-model-service", "apply", serving_service(ph)),
                {
                    "name": "exit-handler",
                    "steps": [
                        # continueOn: no TFJob yet (an early failure) must not skip the report.
                        [
                            {
                                "name": "cleanup",
                                "template": "cleanup",
                                "when": f"{{{{workflow.status}}}} != Succeeded && {tfjob_when}",
                                "continueOn": {"failed": True, "error": True},
                            },
                            {
                                "name": "cleanup-trainjob",
                                "template": "cleanup-trainjob",
                                "when": f"{{{{workflow.status}}}} != Succeeded && {trainjob_when}",
                                "continueOn": {"failed": True, "error": True},
                            },
                        ],
                        [{"name": "report", "template": "report"}],
                    ],
                },
                # Stop, don't delete: a 1 s deadline makes the operator fail the TFJob and remove its
                # *running* pods (cleanPodPolicy Running), while failed pods and their logs stay for
                # `mnistkit logs` until ttlSecondsAfterFinished.
                resource_template(
                    "cleanup",
                    "patch",
                    {**tfjob_ref, "spec": {"runPolicy": {"activeDeadlineSeconds": 1}}},
                    resource={"mergeStrategy": "merge"},
                ),
                # A TrainJob's deadline is immutable: suspend it instead, which deletes its running pods
                # (the JobSet's Jobs are suspended) and keeps failed pods and their logs.
                resource_template(
                    "cleanup-trainjob",
                    "patch",
                    {**trainjob_ref, "spec": {"suspend": True}},
                    resource={"mergeStrategy": "merge"},
                ),
                _report_template(),
            ],
        },
    }
