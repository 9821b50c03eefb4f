"""The Kubernetes engine: each training is an Argo ``model-train`` workflow that runs a Kubeflow TFJob or TrainJob.

Same ``Engine``/``Job`` interface as the local engine, so panels and notebooks switch with one word.
``TrainConfig.workers`` counts all processes: the TFJob gets one Chief and ``workers - 1`` Workers, a Trainer v2
TrainJob ``workers`` nodes. Which one: ``trainer=`` ("tfjob"/"trainjob"), else what the cluster has.
Metrics come from ``<model-dir>/metrics.jsonl`` on S3 (the chief syncs it while training) when an
``S3Config`` is given; logs from the TFJob pods.
"""

from __future__ import annotations

import json
import os
from typing import TYPE_CHECKING, Any

from mnistkit.cluster.identity import default_job_name
from mnistkit.config import S3Config, TrainConfig
from mnistkit.engines.base import Engine, EpochMetrics, Job, JobState
from mnistkit.errors import MnistkitError
from mnistkit.manifests.params import ManifestParams
from mnistkit.trainspec import RunLayout, parse_metrics

if TYPE_CHECKING:
    from mnistkit.cluster.client import ClusterClient

__all__ = ["ArgoEngine", "ArgoJob"]

_PHASES = {
    "": JobState.PENDING,
    "Pending": JobState.PENDING,
    "Running": JobState.RUNNING,
    "Succeeded": JobState.SUCCEEDED,
    "Failed": JobState.FAILED,
    "Error": JobState.FAILED,
}


class ArgoJob(Job):
    def __init__(self, engine: ArgoEngine, name: str, params: ManifestParams) -> None:
        self.engine, self.name, self.params = engine, name, params

    @property
    def tensorboard_url(self) -> str | None:
        """The job's in-cluster TensorBoard Service through this notebook's server proxy, or None outside a hub.

        The user's browser cannot reach ``*.svc.cluster.local``; the notebook server can, and
        jupyter-server-proxy forwards ``<prefix>/proxy/<host>:<port>/`` for hosts its allowlist admits
        (the mnistkit notebook image admits only the TensorBoard and serving Services of the user's own
        namespace). ``mnistkit.tensorboard.show(job)`` embeds it.
        """
        from mnistkit.tensorboard import notebook_base_url

        prefix = notebook_base_url()
        if not prefix:
            return None
        host = f"{self.params.tensorboard_name}.{self.params.namespace}.svc.cluster.local"
        return f"{prefix}/proxy/{host}:80/"

    def _wf(self) -> dict[str, Any]:
        return self.engine.client.workflow(self.name)

    @staticmethod
    def _state_of(wf: dict[str, Any]) -> JobState:
        phase = (wf.get("status") or {}).get("phase", "")
        state = _PHASES.get(phase, JobState.RUNNING)
        if state.done and state is not JobState.SUCCEEDED and wf.get("spec", {}).get("shutdown"):
            return JobState.STOPPED
        return state

    def state(self) -> JobState:
        return self._state_of(self._wf())

    def steps(self) -> tuple[tuple[str, str, str], ...]:
        """The workflow's steps as ``(name, phase, message)``, in the order they started (``mnistkit get``'s)."""
        from mnistkit.cluster.info import WorkflowInfo

        return WorkflowInfo.from_object(self._wf()).nodes

    def _read(self, name: str) -> str | None:
        """``<model-dir>/<name>`` from S3 (the chief syncs it there), or None when absent/unreachable."""
        s3cfg = self.engine.s3
        if s3cfg is None:
            return None
        from mnistkit import s3
        from mnistkit.config import split_s3_url

        bucket, prefix = split_s3_url(self.model_dir, "model_dir")
        try:
            body = s3.make_client(s3cfg, max_attempts=2).get_object(Bucket=bucket, Key=f"{prefix}/{name}")
            return str(body["Body"].read().decode())
        except Exception:  # noqa: BLE001 - not written yet (or not reachable): nothing so far
            return None

    @property
    def message(self) -> str:
        """Argo's status message (why it failed), empty while all is well."""
        return str((self._wf().get("status") or {}).get("message") or "")

    @message.setter
    def message(self, text: str) -> None:  # the workflow's status says it; nothing to keep here
        pass

    def result(self) -> dict[str, Any]:
        """The trainer's ``result.json`` (test accuracy, exported version) once the chief wrote it."""
        text = self._read(RunLayout.RESULT)
        try:
            return dict(json.loads(text)) if text else {}
        except ValueError:
            return {}

    def metrics(self) -> list[EpochMetrics]:
        return parse_metrics(self._read(RunLayout.METRICS) or "")

    def logs(self, tail: int | None = None) -> str:
        return self.engine.client.logs(self.name, tail=tail)

    def wait(self, timeout: float | None = None) -> JobState:
        self.engine.client.wait(self.name, timeout=timeout)
        return self.state()

    def stop(self) -> None:
        self.engine.client.stop(self.name)

    def delete(self) -> None:
        self.engine.client.delete(self.name)

    @property
    def model_dir(self) -> str:
        return self.params.model_dir

    @property
    def logdir(self) -> str:
        return RunLayout(self.model_dir).logs

    @property
    def export_dir(self) -> str:
        return self.params.export_dir


class ArgoEngine(Engine):
    """``ArgoEngine(namespace=..., s3=S3Config(...), params=ManifestParams(tf_model_image=...), trainer=None)``.

    ``trainer=None``: ``params.trainer`` if it says "trainjob", else the training API the cluster has.
    """

    name = "argo"

    def __init__(
        self,
        client: ClusterClient | None = None,
        *,
        namespace: str | None = None,
        s3: S3Config | None = None,
        params: ManifestParams | None = None,
        trainer: str | None = None,
        **connect_kwargs: Any,
    ) -> None:
        if client is None:
            from mnistkit.cluster.client import ClusterClient

            client = ClusterClient.connect(namespace, **connect_kwargs)
        self.client = client
        if s3 is None and any(os.environ.get(k) for k in ("AWS_ENDPOINT_URL", "S3_ENDPOINT", "BUCKET_NAME")):
            # The same S3 settings the notebook uses (keys too, for reading metrics; never sent to the cluster).
            s3 = S3Config.from_env()
        self.s3 = s3
        base = params or (ManifestParams.from_s3(s3) if s3 else ManifestParams.from_env(os.environ))
        requested = trainer or (base.trainer if base.trainer != ManifestParams.trainer else None)
        self.base = client.with_trainer(client.params_for(base), requested)

    def submit(self, config: TrainConfig, job_name: str | None = None) -> ArgoJob:
        params = ManifestParams.from_train_config(config, self.base)
        params = params.with_parameters({"job-name": job_name or default_job_name()})
        if config.model_dir or config.export_dir:
            raise MnistkitError(
                "on the cluster the model dir is <s3-train-base-url>/<job-name>; set s3_train_base_url instead",
                field="model_dir",
                value=config.model_dir or config.export_dir,
            )
        self.client.submit(params)
        return ArgoJob(self, params.job_name, params)

    def submit_params(self, params: ManifestParams) -> ArgoJob:
        """Submit exactly these parameters (what a notebook rendered and showed), in this engine's namespace."""
        params = self.client.params_for(params)
        self.client.submit(params)
        return ArgoJob(self, params.job_name, params)

    def _params_of(self, wf: dict[str, Any]) -> ManifestParams:
        values = {p["name"]: p.get("value", "") for p in wf["spec"]["arguments"]["parameters"]}
        known = {k: v for k, v in values.items() if k in ManifestParams().parameters()}
        return ManifestParams().with_parameters(known)

    def get(self, job_name: str) -> ArgoJob:
        wf = self.client.workflow(job_name)
        return ArgoJob(self, job_name, self._params_of(wf))

    def list(self) -> list[ArgoJob]:
        return [self.get(i.name) for i in self.client.list()]
