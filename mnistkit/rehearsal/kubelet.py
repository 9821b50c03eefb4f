"""The rehearsal's kubelet: every Pod object becomes local processes, and their fate becomes the Pod's status.

Init containers run one after another, each to exit 0, before the main containers start together
(``Init:N/M``, then ``Running``). ``restartPolicy``: ``Never`` (what the training operator sets for
``ExitCode``) ends the pod ``Succeeded`` when every container exits 0, else ``Failed``; ``OnFailure``
restarts a failed container in place and ``Always`` any exited one (``restartCount``; back-off 1, 2, 4 ... 10 s).
A killed process reports exit code 128 + signal, as container runtimes do. A readiness ``httpGet`` probe is
asked on the local port; other containers are ready while running. Deleting the Pod object sends SIGTERM to
its processes (SIGKILL after 5 s). Logs: ``<workdir>/pods/<namespace>/<pod>/<container>.log``.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import threading
import time
import urllib.request
from pathlib import Path
from typing import Any

from mnistkit.engines.owner import die_with_owner, kill_at_exit
from mnistkit.errors import MnistkitError
from mnistkit.rehearsal.pods import PORTS_ANNOTATION, Addresses, ProcessPlan, plan_container, ports_annotation
from mnistkit.rehearsal.store import Obj, StoreBase, now_rfc3339

__all__ = ["Kubelet"]

_GRACE_SECONDS = 5.0


class _Stopped(Exception):
    """The pod was deleted (or the rehearsal closed) before this container started."""


def _exit_code(rc: int) -> int:
    return 128 - rc if rc < 0 else rc


class _PodRun:
    def __init__(self, kubelet: Kubelet, pod: Obj) -> None:
        self.k, self.pod = kubelet, pod
        self.ns, self.name, self.uid = (
            pod["metadata"].get("namespace", ""),
            pod["metadata"]["name"],
            pod["metadata"]["uid"],
        )
        self.dir = kubelet.workdir / "pods" / self.ns / self.name
        self.procs: dict[str, subprocess.Popen[bytes]] = {}
        self.stopping = threading.Event()
        self.lock = threading.Lock()
        self.thread = threading.Thread(target=self._run, daemon=True, name=f"pod-{self.name}")
        kill_at_exit(self)

    # ---- status ------------------------------------------------------------------------------
    def _status(self, **fields: Any) -> None:
        def fn(o: Obj) -> None:
            if o["metadata"]["uid"] == self.uid:
                o.setdefault("status", {}).update(fields)

        self.k.store.update("Pod", self.ns, self.name, fn)

    def _container_status(self, key: str, name: str, **fields: Any) -> None:
        def fn(o: Obj) -> None:
            if o["metadata"]["uid"] != self.uid:
                return
            items = o.setdefault("status", {}).setdefault(key, [])
            cur = next((c for c in items if c["name"] == name), None)
            if cur is None:
                image = next((c.get("image", "") for c in self._all_containers() if c["name"] == name), "")
                # Fields a real kubelet always writes (the kubernetes client requires image and imageID).
                cur = {
                    "name": name,
                    "ready": False,
                    "restartCount": 0,
                    "state": {},
                    "image": image,
                    "imageID": f"rehearsal://{image}",
                    "containerID": f"rehearsal://{self.uid}/{name}",
                }
                items.append(cur)
            cur.update(fields)

        self.k.store.update("Pod", self.ns, self.name, fn)

    # ---- processes ---------------------------------------------------------------------------
    def _start(self, plan: ProcessPlan) -> subprocess.Popen[bytes]:
        with self.lock:  # kill() holds it too: no process starts after the pod was told to stop
            if self.stopping.is_set():
                raise _Stopped
            log = (self.dir / f"{plan.name}.log").open("ab")
            try:
                # Own process group (a pod's processes are signalled together); dies with the rehearsal even
                # when that is SIGKILLed (the starting thread waits on the process, so only the owner's death
                # fires PR_SET_PDEATHSIG), and is killed at a clean exit (kill_at_exit).
                proc = subprocess.Popen(
                    plan.argv,
                    env=plan.env,
                    cwd=plan.cwd,
                    stdout=log,
                    stderr=subprocess.STDOUT,
                    stdin=subprocess.DEVNULL,
                    start_new_session=True,
                    preexec_fn=die_with_owner(),
                )
            finally:
                log.close()
            self.procs[plan.name] = proc
            return proc

    def _kill_group(self) -> None:
        """SIGKILL every process of the pod at once (the interpreter is exiting)."""
        self.stopping.set()
        for p in list(self.procs.values()):
            _signal(p, signal.SIGKILL)

    def kill(self) -> None:
        with self.lock:
            self.stopping.set()
            procs = [p for p in self.procs.values() if p.poll() is None]
        for p in procs:
            _signal(p, signal.SIGTERM)
        deadline = time.monotonic() + _GRACE_SECONDS
        for p in procs:
            try:
                p.wait(max(0.0, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                _signal(p, signal.SIGKILL)
                p.wait()

    def _run_once(self, plan: ProcessPlan, key: str) -> int:
        """Run one container to its exit (restarting it per restartPolicy); returns its last exit code."""
        policy = self.pod["spec"].get("restartPolicy", "Always")
        restarts, backoff = 0, 1.0
        while True:
            proc = self._start(plan)
            self._container_status(
                key,
                plan.name,
                state={"running": {"startedAt": now_rfc3339()}},
                ready=key == "containerStatuses" and not self._probe_of(plan),
            )
            if key == "containerStatuses" and self._probe_of(plan):
                threading.Thread(target=self._readiness, args=(plan, proc), daemon=True).start()
            code = _exit_code(proc.wait())
            term = {"exitCode": code, "reason": "Completed" if code == 0 else "Error", "finishedAt": now_rfc3339()}
            self._container_status(key, plan.name, state={"terminated": term}, ready=False)
            if self.stopping.is_set():
                return code
            again = policy == "Always" or (policy == "OnFailure" and code != 0)
            if key == "initContainerStatuses" and code == 0 or not again:
                return code
            restarts += 1
            self._container_status(
                key,
                plan.name,
                restartCount=restarts,
                lastState={"terminated": term},
                state={"waiting": {"reason": "CrashLoopBackOff"}},
            )
            if self.stopping.wait(backoff):
                return code
            backoff = min(backoff * 2, 10.0)

    def _probe_of(self, plan: ProcessPlan) -> dict[str, Any] | None:
        c = next(c for c in self._all_containers() if c["name"] == plan.name)
        return (c.get("readinessProbe") or {}).get("httpGet")

    def _readiness(self, plan: ProcessPlan, proc: subprocess.Popen[bytes]) -> None:
        probe = self._probe_of(plan) or {}
        port = plan.ports.get(int(probe.get("port", 0)), probe.get("port"))
        url = f"http://127.0.0.1:{port}{probe.get('path', '/')}"
        while proc.poll() is None and not self.stopping.is_set():
            try:
                with urllib.request.urlopen(url, timeout=2) as resp:
                    if 200 <= resp.status < 400:
                        self._container_status("containerStatuses", plan.name, ready=True)
                        return
            except OSError:
                pass
            self.stopping.wait(0.5)

    def _all_containers(self) -> list[dict[str, Any]]:
        spec = self.pod["spec"]
        return list(spec.get("initContainers", [])) + list(spec.get("containers", []))

    def _run(self) -> None:
        try:
            self._run_pod()
        except _Stopped:
            pass
        except MnistkitError as exc:
            reason = "CreateContainerConfigError" if type(exc).__name__ == "ConfigError" else "RehearsalError"
            self._status(phase="Pending", reason=reason, message=str(exc))
        except Exception as exc:  # noqa: BLE001 - a pod's failure must not take the rehearsal down
            self._status(phase="Failed", reason="RehearsalError", message=f"{type(exc).__name__}: {exc}")

    def _run_pod(self) -> None:
        self.dir.mkdir(parents=True, exist_ok=True)
        spec = self.pod["spec"]
        volumes: dict[str, str] = {}
        for v in spec.get("volumes", []):
            if "emptyDir" not in v:
                raise MnistkitError(f"volume {v['name']!r}: only emptyDir is emulated", field="volumes")
            path = self.dir / "volumes" / v["name"]
            path.mkdir(parents=True, exist_ok=True)
            volumes[v["name"]] = str(path)
        home = self.dir / "home"
        home.mkdir(exist_ok=True)
        plans = {
            key: [
                plan_container(self.k.store, self.k.addresses, self.pod, c, volumes, str(home))
                for c in spec.get(key, [])
            ]
            for key in ("initContainers", "containers")
        }
        ann = ports_annotation(plans["containers"])
        self.k.store.update(
            "Pod",
            self.ns,
            self.name,
            lambda o: (
                o["metadata"].setdefault("annotations", {}).__setitem__(PORTS_ANNOTATION, ann)
                if o["metadata"]["uid"] == self.uid
                else None
            ),
        )
        self._status(phase="Pending", podIP="127.0.0.1", hostIP="127.0.0.1", startTime=now_rfc3339())
        for plan in plans["initContainers"]:
            if self._run_once(plan, "initContainerStatuses") != 0 or self.stopping.is_set():
                self._status(phase="Failed", reason="Init:Error", message=f"init container {plan.name} failed")
                return
        codes: dict[str, int] = {}
        threads = [
            threading.Thread(
                target=lambda p=p: codes.__setitem__(p.name, self._run_once(p, "containerStatuses")), daemon=True
            )
            for p in plans["containers"]
        ]
        for t in threads:
            t.start()
        self._status(phase="Running")
        for t in threads:
            t.join()
        if self.stopping.is_set():
            return
        ok = all(c == 0 for c in codes.values())
        self._status(phase="Succeeded" if ok else "Failed")


def _signal(proc: subprocess.Popen[bytes], sig: int) -> None:
    try:
        os.killpg(proc.pid, sig)
    except (ProcessLookupError, PermissionError):
        pass


class Kubelet:
    def __init__(self, store: StoreBase, addresses: Addresses, workdir: Path) -> None:
        self.store, self.addresses, self.workdir = store, addresses, workdir
        self.runs: dict[str, _PodRun] = {}  # pod uid -> run

    def sync(self) -> None:
        """Start pods that appeared; stop the processes of pods that were deleted."""
        pods = {p["metadata"]["uid"]: p for p in self.store.list("Pod")}
        for uid, pod in pods.items():
            if uid not in self.runs:
                run = _PodRun(self, pod)
                self.runs[uid] = run
                run.thread.start()
        for uid, run in list(self.runs.items()):
            if uid not in pods and not run.stopping.is_set():
                threading.Thread(target=run.kill, daemon=True).start()

    def log_path(self, namespace: str, pod: str, container: str) -> Path:
        return self.workdir / "pods" / namespace / pod / f"{container}.log"

    def shutdown(self) -> None:
        runs = list(self.runs.values())
        threads = [threading.Thread(target=r.kill, daemon=True) for r in runs]
        for t in threads:
            t.start()
        for t in threads:
            t.join(_GRACE_SECONDS + 5)
        for r in self.runs.values():
            r.thread.join(2)

    def cleanup_volumes(self) -> None:
        for r in self.runs.values():
            shutil.rmtree(r.dir / "volumes", ignore_errors=True)
