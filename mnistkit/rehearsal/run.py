"""``mnistkit rehearse``: the exact objects ``submit`` (and ``deploy``) send, run on this machine.

``rehearse_training`` creates the ``aws-creds`` Secret from the S3 settings and the ``model-train`` Workflow
``mnistkit submit`` would create (``ManifestParams`` from the seed's variables and ``-p``), then follows it
to its end, printing every step's phase change; ``rehearse_deploy`` does the same for ``model-deploy``
(``mnistkit deploy``) and returns the local serving ports.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass

from mnistkit.config import S3Config, split_s3_url
from mnistkit.manifests import (
    ManifestParams,
    aws_secret,
    model_deploy_template,
    model_train_workflow,
    training_runtime,
)
from mnistkit.manifests.deploy import deploy_parameters, model_deploy_workflow
from mnistkit.manifests.serving import GRPC_PORT, REST_PORT
from mnistkit.rehearsal.cluster import Rehearsal
from mnistkit.rehearsal.images import RehearsalError
from mnistkit.rehearsal.jobs import JOB_CONTROLLERS
from mnistkit.rehearsal.report import step_phases
from mnistkit.rehearsal.store import Obj

__all__ = ["DONE_PHASES", "Outcome", "exported_versions", "rehearse_deploy", "rehearse_training"]

DONE_PHASES = ("Succeeded", "Failed", "Error")
JOB_KINDS = {"tfjob": "TFJob", "trainjob": "TrainJob"}  # -p trainer -> the job kind model-train creates


@dataclass
class Outcome:
    workflow: Obj
    seconds: float

    @property
    def phase(self) -> str:
        return str((self.workflow.get("status") or {}).get("phase", ""))


def _follow(r: Rehearsal, ns: str, name: str, timeout: float, say: Callable[[str], None]) -> Outcome:
    t0, seen = time.monotonic(), set()

    def progress(wf: Obj) -> bool:
        for step, phase, message in step_phases(wf):
            if (step, phase) not in seen:
                seen.add((step, phase))
                say(f"  {step:<28} {phase}" + (f"  ({message})" if message and phase != "Running" else ""))
        return (wf.get("status") or {}).get("phase") in DONE_PHASES

    try:
        wf = r.wait("Workflow", ns, name, progress, timeout)
    except TimeoutError:
        raise RehearsalError(
            f"workflow {name} did not finish within {timeout:.0f} s (--timeout); its steps so far are printed above",
            field="timeout",
            value=timeout,
        ) from None
    return Outcome(wf, time.monotonic() - t0)


def _secret(r: Rehearsal, s3: S3Config, p: ManifestParams) -> None:
    if s3.access_key_id and r.store.get("Secret", p.namespace, p.aws_secret) is None:
        r.store.create(aws_secret(s3, name=p.aws_secret, namespace=p.namespace))


def _runtime(r: Rehearsal, p: ManifestParams) -> None:
    """trainer=trainjob: the mnistkit-tensorflow runtime, installed once in a cluster (docs/cluster.md)."""
    runtime = training_runtime(p, kind=p.runtime_kind)
    ns = runtime["metadata"].get("namespace", "")
    if p.trainer == "trainjob" and r.store.get(runtime["kind"], ns, runtime["metadata"]["name"]) is None:
        r.store.create(runtime)


def rehearse_training(
    r: Rehearsal, s3: S3Config, p: ManifestParams, *, timeout: float, say: Callable[[str], None] = print
) -> Outcome:
    kind = JOB_KINDS.get(p.trainer, p.trainer)
    if kind not in JOB_CONTROLLERS:
        raise RehearsalError(
            f"-p trainer={p.trainer} creates a {kind}, which the rehearsal does not run yet "
            f"(it runs: {', '.join(JOB_CONTROLLERS)}); rehearse with -p trainer=tfjob",
            field="trainer",
            value=p.trainer,
        )
    _secret(r, s3, p)
    _runtime(r, p)
    wf = model_train_workflow(p, name=p.job_name)
    r.store.create(wf)
    say(f"workflow {p.job_name} submitted to the rehearsal (namespace {p.namespace})")
    return _follow(r, p.namespace, p.job_name, timeout, say)


def rehearse_deploy(
    r: Rehearsal, p: ManifestParams, *, timeout: float, say: Callable[[str], None] = print
) -> tuple[Outcome, dict[str, int]]:
    """Run ``model-deploy`` for the training ``p.job_name``; returns the outcome and ``{"grpc"|"rest": port}``."""
    template = model_deploy_template(p)
    if r.store.get("WorkflowTemplate", p.namespace, "model-deploy") is None:
        r.store.create(template)
    workflow = model_deploy_workflow(p.job_name, p.namespace, p.job_name, deploy_parameters(p))
    name = workflow["metadata"]["name"]
    r.store.create(workflow)
    say(f"workflow {name} (model-deploy) submitted to the rehearsal")
    outcome = _follow(r, p.namespace, name, timeout, say)
    ports: dict[str, int] = {}
    if outcome.phase == "Succeeded":
        try:
            r.wait(
                "Deployment",
                p.namespace,
                p.serving_name,
                lambda d: (d.get("status") or {}).get("readyReplicas", 0) >= 1,
                timeout,
            )
        except TimeoutError:
            raise RehearsalError(
                f"serving Deployment {p.serving_name} not ready within {timeout:.0f} s: see its pod's logs",
                field="timeout",
                value=timeout,
            ) from None
        for key, port in (("grpc", GRPC_PORT), ("rest", REST_PORT)):
            local = r.addresses.service(r.store, p.namespace, p.serving_name, port)
            if local is not None:
                ports[key] = local
    return outcome, ports


def exported_versions(s3: S3Config, export_dir: str) -> list[int]:
    from mnistkit import s3 as s3mod

    bucket, prefix = split_s3_url(export_dir, "export_dir")
    return s3mod.list_model_versions(s3mod.make_client(s3, max_attempts=2), bucket, prefix)
