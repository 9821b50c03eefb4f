"""Which Kubeflow training API a cluster offers: TFJob (training-operator v1) or TrainJob (Trainer v2).

``mnistkit submit`` and ``train --engine argo`` pick the one that exists unless told (``-p trainer=...``):
TFJob when ``tfjobs.kubeflow.org`` is installed (the seed's, so a cluster with both keeps today's behaviour),
else TrainJob when ``trainjobs.trainer.kubeflow.org`` is, on the ``mnistkit-tensorflow`` runtime: the
``ClusterTrainingRuntime`` if there is one, else a namespaced ``TrainingRuntime`` of that name. What cannot be
looked at (403) counts as unknown and leaves the default.

Why not the Kubeflow SDK (``pip install kubeflow``, ``TrainerClient``) for this and for list/wait/logs: kubeflow
0.5.0 (2026-08, checked from its wheel's metadata) pins ``kubernetes<36`` while mnistkit's ``[cluster]`` extra runs
``kubernetes`` 37 (``>=30,<38``), so installing it would downgrade the client everything else uses. Its API also
covers TrainJobs only: mnistkit's jobs are Argo workflows whose ``wait``/``logs``/``delete`` must handle the workflow,
a TFJob or a TrainJob alike, and ``get_job_logs`` reads one step's pod per call. So the few calls needed go through
``CustomObjectsApi`` like the rest of ``mnistkit.cluster``. The runtime keeps the SDK's conventions (the
``trainer.kubeflow.org/framework`` label, the ``node`` job and container), so ``TrainerClient().list_jobs()``,
``get_job_logs()`` and ``wait_for_job_status()`` work on mnistkit's TrainJobs for those who install it.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from mnistkit.cluster.objects import drain
from mnistkit.errors import ClusterError

if TYPE_CHECKING:
    from mnistkit.cluster.client import ClusterClient

__all__ = [
    "TFJOB_CRD",
    "TRAINJOB_CRD",
    "RUNTIME_FIX",
    "TrainerSupport",
    "crd_installed",
    "runtime_kind",
    "probe",
    "pick",
]

TFJOB_CRD = "tfjobs.kubeflow.org"
TRAINJOB_CRD = "trainjobs.trainer.kubeflow.org"
RUNTIME_FIX = (
    "mnistkit render --out m -p trainer=trainjob && kubectl apply -f m/training-runtime.yaml "
    "(cluster admin), or kubectl apply -f m/training-runtime-namespaced.yaml (your namespace)"
)


@dataclass(frozen=True)
class TrainerSupport:
    """``True``/``False``: installed or not; ``None``: not allowed to look."""

    tfjob: bool | None
    trainjob: bool | None
    runtime: str | None = None  # the kind holding mnistkit-tensorflow ("ClusterTrainingRuntime"/"TrainingRuntime")
    runtime_known: bool = True  # False when a 403 hid it


def _status(exc: Exception) -> int | None:
    return getattr(exc, "status", None)


def crd_installed(client: ClusterClient, name: str) -> bool | None:
    """Whether the CRD ``name`` exists; ``None`` when reading CRDs is forbidden. Other API errors raise."""
    from kubernetes import client as k
    from kubernetes.client.exceptions import ApiException

    try:
        # Raw (_preload_content=False gives the urllib3 response): only existence matters, and a full CRD need not
        # fit the client's models. Read and drop the body so the connection goes back to the pool clean.
        drain(k.ApiextensionsV1Api(client.api_client).read_custom_resource_definition(name, _preload_content=False))
        return True
    except ApiException as exc:
        if exc.status == 404:
            return False
        if exc.status == 403:
            return None
        raise


def runtime_kind(client: ClusterClient) -> tuple[str | None, bool]:
    """(kind of the ``mnistkit-tensorflow`` runtime found, or None; whether the answer is known)."""
    from kubernetes.client.exceptions import ApiException

    from mnistkit.manifests.runtime import RUNTIME_NAME, TRAINER_API

    known = True
    lookups = (
        (
            "ClusterTrainingRuntime",
            lambda: client.custom.get_cluster_custom_object(*TRAINER_API, "clustertrainingruntimes", RUNTIME_NAME),
        ),
        (
            "TrainingRuntime",
            lambda: client.custom.get_namespaced_custom_object(
                *TRAINER_API, client.namespace, "trainingruntimes", RUNTIME_NAME
            ),
        ),
    )
    for kind, get in lookups:
        try:
            get()
            return kind, True
        except ApiException as exc:
            if exc.status == 403:
                known = False
            elif exc.status != 404:
                raise
    return None, known


def probe(client: ClusterClient) -> TrainerSupport:
    """Look at the cluster once: which CRDs, and (with Trainer v2) where the runtime is."""
    tfjob, trainjob = crd_installed(client, TFJOB_CRD), crd_installed(client, TRAINJOB_CRD)
    if trainjob is False:
        return TrainerSupport(tfjob, trainjob)
    kind, known = runtime_kind(client)
    return TrainerSupport(tfjob, trainjob, kind, known)


def pick(support: TrainerSupport, requested: str | None = None) -> tuple[str, str]:
    """(trainer, runtime kind) for a submission: ``requested`` if given, else what the cluster has.

    Raises ``ClusterError`` when the cluster clearly cannot run it (no CRD, no runtime), naming the fix.
    """
    trainer = requested
    if trainer is None:
        if support.tfjob is False and support.trainjob is False:
            raise ClusterError(
                f"neither {TFJOB_CRD} (Kubeflow training operator v1) nor {TRAINJOB_CRD} (Kubeflow Trainer v2) "
                "is installed here; `mnistkit doctor` says how to install one",
                field="trainer",
                value="",
            )
        trainer = "trainjob" if support.tfjob is not True and support.trainjob is True else "tfjob"
    kind = support.runtime or "ClusterTrainingRuntime"
    if trainer == "trainjob":
        if support.trainjob is False:
            raise ClusterError(
                f"trainer=trainjob but {TRAINJOB_CRD} is not installed; use -p trainer=tfjob "
                "or install Kubeflow Trainer v2",
                field="trainer",
                value=trainer,
            )
        if support.runtime is None and support.runtime_known and support.trainjob is True:
            raise ClusterError(
                f"the mnistkit-tensorflow training runtime is missing: {RUNTIME_FIX}", field="trainer", value=trainer
            )
    return trainer, kind
