"""The cluster client behind ``mnistkit submit/list/get/logs/delete`` and the Argo engine.

Submitting is the ``argo submit -p ...`` equivalent through the Kubernetes API (``CustomObjectsApi``),
with two guarantees a notebook on a flaky connection needs:

* Deterministic names: the workflow is named after the job, so a retried create can never make a
  second workflow. Each submission carries a random ``mnistkit.io/submission`` annotation; a 409 is
  answered by reading the existing workflow: ours (our earlier attempt whose response was lost) is
  success, anyone else's is a clear "name taken" error with a fresh name to use.
* Nothing leaks: the S3 Secret is created from an ``S3Config`` and its values never reach a log,
  an exception or a return value.
"""

from __future__ import annotations

import builtins  # `list` below is a method; annotations after it need the builtin
import functools
import hashlib
import json
import time
import uuid
from collections.abc import Iterator
from contextlib import AbstractContextManager
from typing import TYPE_CHECKING, Any, cast

from mnistkit.cluster.errors import explain, explained, unknown_resource
from mnistkit.cluster.identity import default_job_name
from mnistkit.cluster.info import TERMINAL_PHASES, WorkflowInfo
from mnistkit.cluster.objects import annotations_of, labels_of, name_of
from mnistkit.config import S3Config
from mnistkit.errors import ClusterError
from mnistkit.manifests.common import COMPONENT_LABEL, JOB_LABEL
from mnistkit.manifests.params import ManifestParams
from mnistkit.manifests.workflow import model_train_workflow

if TYPE_CHECKING:
    from kubernetes.client import ApiClient, V1Pod

    from mnistkit._types import KubeBody
    from mnistkit.cluster.watch import WatchStats

__all__ = ["ClusterClient", "WorkflowInfo", "TERMINAL_PHASES", "SUBMISSION_ANNOTATION"]

ARGO = ("argoproj.io", "v1alpha1")
_COMPLETION_INDEX = "batch.kubernetes.io/job-completion-index"  # a JobSet (TrainJob) pod's node index
SUBMISSION_ANNOTATION = "mnistkit.io/submission"
SPEC_DIGEST_ANNOTATION = "mnistkit.io/spec-digest"


class ClusterClient:
    """One namespace of one cluster. Build with ``ClusterClient.connect()`` or from a ``Connection``."""

    def __init__(self, api_client: ApiClient, namespace: str) -> None:
        from kubernetes import client

        self.api_client = api_client
        self.namespace = namespace
        self.custom = client.CustomObjectsApi(api_client)
        self.core = client.CoreV1Api(api_client)
        self.apps = client.AppsV1Api(api_client)

    @classmethod
    def connect(cls, namespace: str | None = None, **kwargs: Any) -> ClusterClient:
        from mnistkit.cluster.connect import connect

        conn = connect(namespace, **kwargs)
        return cls(conn.api_client, conn.namespace)

    # ---- helpers -------------------------------------------------------------------------------
    @property
    def server(self) -> str:
        """The API server's address, for messages."""
        return str(getattr(getattr(self.api_client, "configuration", None), "host", "") or "(unknown server)")

    def _api_error(self, exc: Exception, what: str, field: str, value: str, target: str = "") -> ClusterError:
        """One sentence for an API failure while ``what`` (see ``mnistkit.cluster.errors.explain``)."""
        err = explain(
            exc, server=self.server, namespace=self.namespace, action=what, target=target, field=field, value=value
        )
        return err or ClusterError(f"{what} failed: {type(exc).__name__}: {exc}", field=field, value=value)

    def explained(
        self, what: str, target: str = "", field: str = "job_name", value: str | None = None
    ) -> AbstractContextManager[None]:
        """A context manager: API failures inside become one ``ClusterError`` sentence naming server/object."""
        return explained(
            server=self.server, namespace=self.namespace, action=what, target=target, field=field, value=value
        )

    def _wf_call(self, method: str, *args: Any, **kwargs: Any) -> dict[str, Any]:  # the JSON body
        return getattr(self.custom, method)(ARGO[0], ARGO[1], self.namespace, "workflows", *args, **kwargs)

    def with_trainer(self, params: ManifestParams, trainer: str | None = None) -> ManifestParams:
        """``params`` for the training API this cluster has (``trainer`` forces one: "tfjob" or "trainjob").

        Picks TFJob when its CRD exists, else a Trainer v2 TrainJob on the mnistkit-tensorflow runtime (cluster-wide
        or namespaced, whichever is installed); see ``mnistkit.cluster.trainers``.
        """
        from dataclasses import replace

        from mnistkit.cluster import trainers

        if trainer is not None:
            params = params.with_parameters({"trainer": trainer})  # validates the name before asking the cluster
        chosen, kind = trainers.pick(trainers.probe(self), trainer)
        return replace(params.with_parameters({"trainer": chosen}), runtime_kind=kind)

    # ---- submit --------------------------------------------------------------------------------
    def params_for(self, params: ManifestParams | None = None, **parameters: str) -> ManifestParams:
        """Parameters for this namespace (the workflow's objects live where the workflow does)."""
        p = params or ManifestParams()
        pairs = {"namespace": self.namespace, **{k.replace("_", "-"): v for k, v in parameters.items()}}
        return p.with_parameters(pairs)

    def submit(self, params: ManifestParams, *, attempts: int = 4, backoff: float = 0.2) -> str:
        """Create the ``model-train`` workflow named after ``params.job_name``; returns the name.

        Retries lost responses and connection errors; never creates two workflows.
        """
        import urllib3
        from kubernetes.client.exceptions import ApiException

        p = params.validate()
        if p.namespace != self.namespace:
            p = p.with_parameters({"namespace": self.namespace})
        body = model_train_workflow(p, name=p.job_name)
        token = uuid.uuid4().hex
        body["metadata"]["annotations"] = {SUBMISSION_ANNOTATION: token}
        last: Exception | None = None
        for attempt in range(attempts):
            try:
                self._wf_call("create_namespaced_custom_object", body)
                return p.job_name
            except ApiException as exc:
                if exc.status == 409:
                    existing = self._get_workflow_or_none(p.job_name)
                    if existing and existing["metadata"].get("annotations", {}).get(SUBMISSION_ANNOTATION) == token:
                        return p.job_name  # our own earlier attempt: its response was lost
                    raise ClusterError(
                        f"job name {p.job_name!r} is taken in namespace {self.namespace!r}; "
                        f"pick another, e.g. --job-name {default_job_name()}",
                        field="job_name",
                        value=p.job_name,
                    ) from None
                if exc.status is not None and exc.status < 500 and exc.status != 429:
                    raise self._api_error(
                        exc, f"creating workflow {p.job_name!r} (workflows.argoproj.io)", "job_name", p.job_name
                    ) from None
                last = exc
            except (urllib3.exceptions.HTTPError, ConnectionError, OSError) as exc:
                last = exc
            time.sleep(backoff * 2**attempt)
        assert last is not None
        raise self._api_error(last, f"submitting {p.job_name!r} ({attempts} attempts)", "job_name", p.job_name)

    def deploy(self, train_workflow: str, parameters: dict[str, str] | None = None) -> str:
        """Serve a finished ``model-train`` workflow's export: runs the ``model-deploy`` WorkflowTemplate.

        Creates the template when the namespace lacks it; the deploy workflow is named
        ``<train-workflow>-deploy`` (so a retry cannot deploy twice) and labelled with the job, so
        ``delete`` removes it with the rest. ``parameters``: model-deploy's own (``DEPLOY_PARAMETERS``:
        ``serving-server``, the images), checked as ``-p`` values are; each defaults to the training workflow's
        (an image from a private registry stays), ``serving-server`` to ``tfserving`` if the training has none.
        """
        from mnistkit.manifests.deploy import DEPLOY_PARAMETERS

        given = dict(parameters or {})
        unknown = sorted(set(given) - set(DEPLOY_PARAMETERS))
        if unknown:
            raise ClusterError(
                f"deploy takes the parameters {', '.join(DEPLOY_PARAMETERS)}, not {', '.join(unknown)}",
                field="parameter",
                value=unknown[0],
            )
        wf = self.workflow(train_workflow)
        trained = {p["name"]: p.get("value", "") for p in wf.get("spec", {}).get("arguments", {}).get("parameters", [])}
        for name in DEPLOY_PARAMETERS:
            if trained.get(name):
                given.setdefault(name, trained[name])
        given.setdefault("serving-server", ManifestParams().serving_server)
        checked = ManifestParams().with_parameters(given).parameters()  # a bad value names its parameter
        values = {name: checked[name] for name in given}
        job = WorkflowInfo.from_object(wf).job_name or train_workflow
        with self.explained(f"deploying {train_workflow!r}", value=train_workflow):
            self._ensure_deploy_template()
            return self._create_deploy_workflow(train_workflow, job, values)

    def _ensure_deploy_template(self) -> str:
        """Create ``model-deploy``, or upgrade the namespace's copy when it is not this release's; says which."""
        from kubernetes.client.exceptions import ApiException

        from mnistkit.manifests.deploy import model_deploy_template

        template = model_deploy_template(ManifestParams().with_parameters({"namespace": self.namespace}))
        # A digest of what we would send, kept on the object: the server may default fields in the spec,
        # so comparing specs would upgrade on every deploy.
        digest = hashlib.sha256(json.dumps(template["spec"], sort_keys=True).encode()).hexdigest()[:16]
        template["metadata"]["annotations"] = {SPEC_DIGEST_ANNOTATION: digest}
        try:
            self.custom.create_namespaced_custom_object(*ARGO, self.namespace, "workflowtemplates", template)
            return "created"
        except ApiException as exc:
            if exc.status != 409:
                raise
        existing = cast(  # a dict (the client types custom objects as object)
            dict[str, Any],
            self.custom.get_namespaced_custom_object(*ARGO, self.namespace, "workflowtemplates", "model-deploy"),
        )
        if (existing["metadata"].get("annotations") or {}).get(SPEC_DIGEST_ANNOTATION) == digest:
            return "current"
        # Replace with its resourceVersion: if someone changed it meanwhile, the server says 409, not overwrite.
        template["metadata"]["resourceVersion"] = existing["metadata"]["resourceVersion"]
        self.custom.replace_namespaced_custom_object(
            *ARGO, self.namespace, "workflowtemplates", "model-deploy", template
        )
        return "upgraded"

    def _create_deploy_workflow(self, train_workflow: str, job: str, parameters: dict[str, str]) -> str:
        from kubernetes.client.exceptions import ApiException

        from mnistkit.manifests.deploy import model_deploy_workflow

        body = model_deploy_workflow(train_workflow, self.namespace, job, parameters)
        name = body["metadata"]["name"]
        try:
            self._wf_call("create_namespaced_custom_object", body)
        except ApiException as exc:
            if exc.status != 409:
                raise self._api_error(exc, f"creating workflow {name}", "job_name", train_workflow) from None
        return name

    # ---- read ----------------------------------------------------------------------------------
    def _get_workflow_or_none(self, name: str) -> dict[str, Any] | None:
        from kubernetes.client.exceptions import ApiException

        for attempt in range(4):
            try:
                return self._wf_call("get_namespaced_custom_object", name)
            except ApiException as exc:
                if exc.status == 404 and not unknown_resource(exc):
                    return None
                raise self._api_error(
                    exc, f"reading workflow {name!r}", "job_name", name, target=f"workflow {name!r}"
                ) from None
            except Exception as exc:  # noqa: BLE001 - a dropped connection: GET is safe to retry
                if attempt == 3:
                    raise self._api_error(exc, f"reading workflow {name!r}", "job_name", name) from None
                time.sleep(0.1 * 2**attempt)
        return None

    def workflow(self, name: str) -> dict[str, Any]:
        wf = self._get_workflow_or_none(name)
        if wf is None:
            raise ClusterError(f"no workflow {name!r} in namespace {self.namespace!r}", field="job_name", value=name)
        return wf

    def get(self, name: str) -> WorkflowInfo:
        return WorkflowInfo.from_object(self.workflow(name))

    def list(self, all_workflows: bool = False) -> list[WorkflowInfo]:
        """mnistkit's workflows (``all_workflows``: every workflow in the namespace), newest first."""
        selector = "" if all_workflows else "app.kubernetes.io/part-of=mnistkit"
        with self.explained("listing workflows (workflows.argoproj.io)", field="namespace", value=self.namespace):
            items = self._wf_call("list_namespaced_custom_object", label_selector=selector)["items"]
        infos = [WorkflowInfo.from_object(w) for w in items]
        return sorted(infos, key=lambda i: (i.started, i.name), reverse=True)

    # ---- watch ---------------------------------------------------------------------------------
    def watch(self, name: str, timeout: float | None = None, stats: WatchStats | None = None) -> Iterator[WorkflowInfo]:
        """Yield the workflow each time it changes, until it is done (or ``timeout``)."""
        from mnistkit.cluster.watch import follow

        list_fn = functools.partial(
            self.custom.list_namespaced_custom_object, ARGO[0], ARGO[1], self.namespace, "workflows"
        )
        events = follow(list_fn, field_selector=f"metadata.name={name}", timeout=timeout, stats=stats)
        with self.explained(f"watching workflow {name!r}", target=f"workflow {name!r}", value=name):
            yield from self._phases(name, events)

    @staticmethod
    def _phases(name: str, events: Iterator[tuple[str, dict[str, Any]]]) -> Iterator[WorkflowInfo]:
        last_phase = None
        for kind, obj in events:
            if kind == "DELETED":
                raise ClusterError(f"workflow {name!r} was deleted while being watched", field="job_name", value=name)
            info = WorkflowInfo.from_object(obj)
            if info.phase != last_phase or kind != "SYNC":
                yield info
            last_phase = info.phase
            if info.done:
                return

    def wait(self, name: str, timeout: float | None = None, stats: WatchStats | None = None) -> WorkflowInfo:
        """Block until the workflow is done; returns its last state (maybe not done, after ``timeout``)."""
        info = None
        for info in self.watch(name, timeout=timeout, stats=stats):
            if info.done:
                return info
        return info or self.get(name)

    # ---- logs ----------------------------------------------------------------------------------
    def pods(self, job_name: str, component: str = "training") -> builtins.list[V1Pod]:
        selector = f"{JOB_LABEL}={job_name},{COMPONENT_LABEL}={component}"
        with self.explained(f"listing the {component} pods of job {job_name!r}", value=job_name):
            return list(self.core.list_namespaced_pod(self.namespace, label_selector=selector).items)

    @staticmethod
    def _role(pod: V1Pod) -> tuple[int, str, str]:
        """(0 for the chief, ``chief-0``/``worker-1``/``node-0`` or the pod name, container) of a training pod."""
        labels, notes = labels_of(pod), annotations_of(pod)
        index = labels.get(_COMPLETION_INDEX) or notes.get(_COMPLETION_INDEX)
        if index is not None:  # a TrainJob node (JobSet pod); node 0 plays the chief
            return (0 if index == "0" else 1, f"node-{index}", "node")
        rtype, idx = labels.get("training.kubeflow.org/replica-type"), labels.get("training.kubeflow.org/replica-index")
        return (0 if rtype == "chief" else 1, f"{rtype}-{idx}" if rtype else name_of(pod), "tensorflow")

    def logs(self, job_name: str, tail: int | None = None) -> str:
        """The training pods' logs (TFJob or TrainJob), each line prefixed with ``[chief-0]``/``[worker-1]``
        (``[node-0]``/``[node-1]`` for a TrainJob), chief first."""
        from kubernetes.client.exceptions import ApiException

        out: list[str] = []
        for pod in sorted(self.pods(job_name), key=lambda pod: (self._role(pod)[0], name_of(pod))):
            _, tag, container = self._role(pod)
            kwargs: dict[str, Any] = {"container": container}
            if tail is not None:
                kwargs["tail_lines"] = tail
            try:
                text = self.core.read_namespaced_pod_log(name_of(pod), self.namespace, **kwargs)
            except ApiException as exc:
                text = f"(no log: {exc.status} {exc.reason})\n"
            out += [f"[{tag}] {line}" for line in str(text).splitlines()]
        return "\n".join(out) + ("\n" if out else "")

    # ---- delete (mnistkit.cluster.teardown) ----------------------------------------------------
    def delete(self, job_name: str) -> dict[str, int]:
        """Tear down everything the job created: workflow, TFJob or TrainJob (and pods), TensorBoard, serving.

        Exports on S3 stay. Returns how many objects of each kind were deleted.
        """
        from mnistkit.cluster.teardown import delete_job

        return delete_job(self, job_name)

    def leftovers(self, job_name: str) -> builtins.list[str]:
        """Objects still labelled with the job (pods included): empty after a complete teardown."""
        from mnistkit.cluster.teardown import leftovers

        return leftovers(self, job_name)

    def stop(self, name: str) -> None:
        """``argo stop``: Argo stops the steps and still runs the exit handler (which deletes the TFJob)."""
        with self.explained(f"stopping workflow {name!r}", target=f"workflow {name!r}", value=name):
            self._wf_call("patch_namespaced_custom_object", name, {"spec": {"shutdown": "Stop"}})

    # ---- secret --------------------------------------------------------------------------------
    def ensure_secret(self, s3: S3Config, name: str = "aws-creds") -> str:
        """Create (or replace) the S3 Secret from ``s3``; returns ``"created"`` or ``"updated"``.

        The values travel only in the request body; errors name the Secret, never its contents.
        """
        from kubernetes.client.exceptions import ApiException

        from mnistkit.manifests.credentials import aws_secret

        body: KubeBody = aws_secret(s3, name=name, namespace=self.namespace)  # a dict body: the client accepts one
        with self.explained(f"creating Secret {name!r}", field="secret", value=name):
            try:
                self.core.create_namespaced_secret(self.namespace, body)
                return "created"
            except ApiException as exc:
                if exc.status != 409:
                    raise
        with self.explained(f"updating Secret {name!r}", target=f"Secret {name!r}", field="secret", value=name):
            self.core.replace_namespaced_secret(name, self.namespace, body)
            return "updated"
