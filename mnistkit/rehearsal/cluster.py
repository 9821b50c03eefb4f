"""``Rehearsal``: one machine playing the cluster -- the object store, Argo, the job operators, Deployments, kubelet.

A controller thread reconciles on every change of the store (and at least every 0.5 s, for deadlines and TTLs):
each Workflow object gets a ``WorkflowRun`` (and is deleted when its ``ttlStrategy`` says so, ``ttl.py``), each
object of a registered job kind (``jobs.JOB_CONTROLLERS``: TFJob, TrainJob), each Deployment and each KServe
InferenceService (custom predictors) is reconciled, and the kubelet starts and stops the pods' processes.
Anything that writes to ``store`` -- ``mnistkit rehearse``, or the Kubernetes API test double -- sees the cluster
react.

    with Rehearsal(workdir) as r:
        r.store.create(secret); r.store.create(workflow)
        r.wait("Workflow", ns, name, lambda wf: wf["status"]["phase"] in ("Succeeded", "Failed"), 600)
"""

from __future__ import annotations

import tempfile
import threading
from collections.abc import Callable
from pathlib import Path
from types import TracebackType

import mnistkit.rehearsal.tfjob
import mnistkit.rehearsal.trainjob  # noqa: F401 - registers the TrainJob controller (Kubeflow Trainer v2)
from mnistkit.rehearsal.deployments import DeploymentController, InferenceServiceController
from mnistkit.rehearsal.jobs import JOB_CONTROLLERS, JobController
from mnistkit.rehearsal.kubelet import Kubelet
from mnistkit.rehearsal.pods import Addresses
from mnistkit.rehearsal.store import Obj, ObjectStore, StoreBase
from mnistkit.rehearsal.ttl import expire_workflows
from mnistkit.rehearsal.workflow import WorkflowRun

__all__ = ["Rehearsal"]


class Rehearsal:
    def __init__(self, workdir: str | Path | None = None, *, store: StoreBase | None = None, poll: float = 1.0) -> None:
        self._tmp: tempfile.TemporaryDirectory[str] | None = None
        if not workdir:
            self._tmp = tempfile.TemporaryDirectory(prefix="mnistkit-rehearsal-")
            workdir = self._tmp.name
        self.workdir = Path(workdir)
        self.workdir.mkdir(parents=True, exist_ok=True)
        self.store = store or ObjectStore()
        self.addresses = Addresses()
        self.kubelet = Kubelet(self.store, self.addresses, self.workdir)
        self.controllers: dict[str, JobController] = {
            k: make(self.store, self.addresses) for k, make in JOB_CONTROLLERS.items()
        }
        self.controllers["Deployment"] = DeploymentController(self.store, self.addresses)
        self.controllers["InferenceService"] = InferenceServiceController(self.store, self.addresses)
        self.workflows: dict[str, WorkflowRun] = {}  # workflow uid -> run
        self.poll = poll
        self.errors: list[str] = []
        self._stop = threading.Event()
        self._reconcile_lock = threading.Lock()
        self._thread = threading.Thread(target=self._loop, daemon=True, name="rehearsal-controllers")

    # ---- lifecycle -----------------------------------------------------------------------------
    def start(self) -> Rehearsal:
        self._thread.start()
        return self

    def close(self) -> None:
        self._stop.set()
        with self.store.changed:
            self.store.changed.notify_all()
        self._thread.join(10)
        for wf in list(self.store.list("Workflow")):
            self.store.update(
                "Workflow",
                wf["metadata"].get("namespace", ""),
                wf["metadata"]["name"],
                lambda o: o.setdefault("spec", {}).__setitem__("shutdown", "Terminate"),
            )
        self.kubelet.shutdown()
        for run in self.workflows.values():
            run.thread.join(5)
        if self._tmp is not None:
            self._tmp.cleanup()

    def __enter__(self) -> Rehearsal:
        return self.start()

    def __exit__(self, et: type[BaseException] | None, ev: BaseException | None, tb: TracebackType | None) -> None:
        self.close()

    # ---- the controllers ------------------------------------------------------------------------
    def reconcile_once(self) -> None:
        with self._reconcile_lock:  # the loop and a caller must not both start the same pod
            self._reconcile()

    def _reconcile(self) -> None:
        expire_workflows(self.store)  # Argo's TTL (spec.ttlStrategy)
        for wf in self.store.list("Workflow"):
            uid = wf["metadata"]["uid"]
            if uid not in self.workflows and not (wf.get("status") or {}).get("phase"):
                ns, name = wf["metadata"].get("namespace", ""), wf["metadata"]["name"]
                self.workflows[uid] = WorkflowRun(self.store, ns, name, poll=self.poll).start()
        for kind, controller in self.controllers.items():
            try:
                objects = self.store.list(kind)
            except Exception as exc:  # noqa: BLE001 - a backend without this kind must not stop the others
                self._error(f"{kind}: {type(exc).__name__}: {exc}")
                continue
            for obj in objects:
                try:
                    controller.reconcile(obj)
                except Exception as exc:  # noqa: BLE001 - one bad object must not stop the others
                    self._error(f"{kind} {obj['metadata']['name']}: {type(exc).__name__}: {exc}")
        self.kubelet.sync()

    def _error(self, msg: str) -> None:
        if msg not in self.errors:
            self.errors.append(msg)

    def _loop(self) -> None:
        try:
            self._loop_forever()
        except Exception as exc:
            self._error(f"controller loop stopped: {type(exc).__name__}: {exc}")
            raise

    def _loop_forever(self) -> None:
        seen = -1
        while not self._stop.is_set():
            version = self._version()
            if version != seen:
                seen = version
                self.reconcile_once()
                continue
            with self.store.changed:
                self.store.changed.wait(0.5)
            if self._version() == seen:
                self.reconcile_once()  # clocks: deadlines, back-offs

    def _version(self) -> int:
        return self.store.version

    # ---- waiting and reading ----------------------------------------------------------------------
    def wait(self, kind: str, namespace: str, name: str, predicate: Callable[[Obj], bool], timeout: float) -> Obj:
        """The object once ``predicate(object)`` holds; TimeoutError naming it otherwise."""
        found: list[Obj] = []

        def check() -> bool:
            obj = self.store.get(kind, namespace, name)
            if obj is not None and predicate(obj):
                found.append(obj)
                return True
            return False

        if not self.store.wait_for(check, timeout):
            raise TimeoutError(f"{kind} {namespace}/{name} did not reach the expected state in {timeout:.0f} s")
        return found[0]

    def logs(self, namespace: str, pod: str, container: str | None = None) -> str:
        obj = self.store.get("Pod", namespace, pod)
        names = [container] if container else [c["name"] for c in (obj or {}).get("spec", {}).get("containers", [])]
        out = []
        for c in names:
            path = self.kubelet.log_path(namespace, pod, c)
            if path.exists():
                out.append(path.read_text(errors="replace"))
        return "".join(out)
