"""The Argo ``model-deploy`` WorkflowTemplate (serve a finished ``model-train`` workflow's export) and the
Workflow that runs it for one training (``mnistkit deploy``, the rehearsal's ``--deploy``)."""

from __future__ import annotations

from dataclasses import replace
from typing import Any

from mnistkit.manifests.argo import MNISTKIT_WHEN, TFSERVING_WHEN, pod_security, resource_template
from mnistkit.manifests.common import JOB_LABEL, NO_ISTIO_SIDECAR, PART_OF
from mnistkit.manifests.params import ManifestParams
from mnistkit.manifests.rbac import WORKFLOW_SERVICE_ACCOUNT
from mnistkit.manifests.serving import serving_deployment, serving_service
from mnistkit.manifests.serving_mnistkit import mnistkit_serving_deployment

__all__ = [
    "model_deploy_template",
    "model_deploy_workflow",
    "deploy_parameters",
    "DEPLOY_PARAMETERS_FROM_TRAINING",
    "DEPLOY_PARAMETERS",
]

# Parameters model-deploy reads from the finished model-train workflow.
DEPLOY_PARAMETERS_FROM_TRAINING = (
    "job-name",
    "namespace",
    "s3-train-base-url",
    "aws-endpoint-url",
    "s3-endpoint",
    "aws-region",
    "s3-use-https",
    "s3-verify-ssl",
    "aws-secret",
)
# model-deploy's own parameters (besides train-workflow): which server serves the export, and the images.
DEPLOY_PARAMETERS = ("serving-server", "serving-image", "mnistkit-serving-image")


def model_deploy_template(p: ManifestParams | None = None) -> dict[str, Any]:
    """``model-deploy``: serve the export of a finished ``model-train`` workflow, given its name.

    ``argo submit --from workflowtemplate/model-deploy -p train-workflow=<name>`` (or ``mnistkit deploy``).
    It waits until that workflow Succeeded (failing if it Failed), reads its parameters (job name, S3
    settings) and applies the serving Deployment and Service. Its own parameters choose the server
    (``serving-server``: ``tfserving`` or ``mnistkit``) and the images.
    """
    p = (p or ManifestParams()).validate()
    ph = ManifestParams.placeholders()
    inputs = {n: f"{{{{inputs.parameters.{n}}}}}" for n in DEPLOY_PARAMETERS_FROM_TRAINING}
    ph = replace(
        ph,
        job_name=inputs["job-name"],
        namespace=inputs["namespace"],
        s3_train_base_url=inputs["s3-train-base-url"],
        aws_endpoint_url=inputs["aws-endpoint-url"],
        s3_endpoint=inputs["s3-endpoint"],
        aws_region=inputs["aws-region"],
        s3_use_https=inputs["s3-use-https"],
        s3_verify_ssl=inputs["s3-verify-ssl"],
        aws_secret=inputs["aws-secret"],
        aws_cli_image=p.aws_cli_image,
    )
    outputs = [
        {"name": n, "valueFrom": {"jsonPath": f'{{.spec.arguments.parameters[?(@.name=="{n}")].value}}'}}
        for n in DEPLOY_PARAMETERS_FROM_TRAINING
    ]
    step_args = {
        "parameters": [
            {"name": n, "value": f"{{{{steps.wait-for-training.outputs.parameters.{n}}}}}"}
            for n in DEPLOY_PARAMETERS_FROM_TRAINING
        ]
    }
    inputs_decl = {"parameters": [{"name": n} for n in DEPLOY_PARAMETERS_FROM_TRAINING]}
    return {
        "apiVersion": "argoproj.io/v1alpha1",
        "kind": "WorkflowTemplate",
        "metadata": {"name": "model-deploy", "namespace": p.namespace, "labels": dict(PART_OF)},
        "spec": {
            "entrypoint": "model-deploy",
            "serviceAccountName": WORKFLOW_SERVICE_ACCOUNT,
            "activeDeadlineSeconds": 3600,
            "securityContext": pod_security(),
            "podMetadata": {"annotations": dict(NO_ISTIO_SIDECAR)},
            "arguments": {
                "parameters": [
                    {"name": "train-workflow", "value": "", "description": "name of a finished model-train workflow"},
                    *({"name": k, "value": v} for k, v in deploy_parameters(p).items()),
                ]
            },
            "templates": [
                {
                    "name": "model-deploy",
                    "steps": [
                        [{"name": "wait-for-training", "template": "wait-for-training"}],
                        [
                            {
                                "name": "serve-model",
                                "template": "serve-model",
                                "arguments": step_args,
                                "when": TFSERVING_WHEN,
                            },
                            {
                                "name": "serve-model-mnistkit",
                                "template": "serve-model-mnistkit",
                                "arguments": step_args,
                                "when": MNISTKIT_WHEN,
                            },
                            {"name": "serve-model-service", "template": "serve-model-service", "arguments": step_args},
                        ],
                    ],
                },
                resource_template(
                    "wait-for-training",
                    "get",
                    {
                        "apiVersion": "argoproj.io/v1alpha1",
                        "kind": "Workflow",
                        "metadata": {"name": "{{workflow.parameters.train-workflow}}"},
                    },
                    resource={
                        "successCondition": "status.phase == Succeeded",
                        "failureCondition": "status.phase in (Failed, Error)",
                    },
                    activeDeadlineSeconds=3000,
                    outputs={"parameters": outputs},
                ),
                {**resource_template("serve-model", "apply", serving_deployment(ph)), "inputs": inputs_decl},
                {
                    **resource_template("serve-model-mnistkit", "apply", mnistkit_serving_deployment(ph)),
                    "inputs": inputs_decl,
                },
                {**resource_template("serve-model-service", "apply", serving_service(ph)), "inputs": inputs_decl},
            ],
        },
    }


def deploy_parameters(p: ManifestParams) -> dict[str, str]:
    """``{"serving-server": ..., ...}``: the ``DEPLOY_PARAMETERS`` of ``p``, as a deploy Workflow passes them."""
    values = p.parameters()
    return {name: values[name] for name in DEPLOY_PARAMETERS}


def model_deploy_workflow(
    train_workflow: str, namespace: str, job: str, parameters: dict[str, str] | None = None
) -> dict[str, Any]:
    """The Workflow that runs ``model-deploy`` for ``train_workflow``: named ``<train-workflow>-deploy`` (a
    retry cannot deploy twice) and labelled with the job, as ``mnistkit deploy`` and the rehearsal create it."""
    args = {"train-workflow": train_workflow, **(parameters or {})}
    return {
        "apiVersion": "argoproj.io/v1alpha1",
        "kind": "Workflow",
        "metadata": {
            "name": f"{train_workflow}-deploy"[:63].rstrip("-"),
            "namespace": namespace,
            "labels": {**PART_OF, JOB_LABEL: job},
        },
        "spec": {
            "workflowTemplateRef": {"name": "model-deploy"},
            "arguments": {"parameters": [{"name": k, "value": v} for k, v in args.items()]},
        },
    }
