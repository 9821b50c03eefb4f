"""The TFJob controller, after training-operator v1.9 (pkg/controller.v1/tensorflow, pkg/controller.v1/common).

Per replica type and index one Pod ``<job>-<type>-<index>`` (type lower-case) with the operator's labels
(``training.kubeflow.org/job-name``, ``replica-type``, ``replica-index``, ``operator-name: tfjob-controller``,
``job-role: master`` on the Chief) and one Service of the same name, and -- when the job has more than one
process -- ``TF_CONFIG`` appended to the ``tensorflow`` container exactly as ``genTFConfigJSONStr`` writes it:
``{"cluster":{"chief":[...],"worker":[...]},"task":{"type":"worker","index":1},"environment":"cloud"}`` with
addresses ``<job>-<type>-<i>.<ns>.svc:<tfjob-port>``, which the rehearsal's DNS (``Addresses``) sends to the
replica's loopback port (the process is given ``127.0.0.1:<port>`` in place of that name).

Status as the operator writes it: ``replicaStatuses.<Type>.{active,succeeded,failed}`` counted from the pods
(Running, Succeeded, Failed), ``conditions`` Created -> Running -> Succeeded/Failed (reasons ``TFJobCreated``,
``TFJobRunning``, ``TFJobSucceeded``, ``TFJobFailed``, ``TFJobRestarting``; its messages), ``startTime``,
``completionTime``. With a Chief the job follows the Chief; without one, worker 0.

Restart policies: ``ExitCode`` (pods run with ``Never``): exit 128+ deletes and recreates the pod
(``Restarting``), 1-127 fails the job; ``OnFailure``/``Always``: the kubelet restarts the container in place;
``Never``: a failed pod fails the job. ``runPolicy.backoffLimit``: the job fails when a replica fails after
``backoffLimit`` restarts in all (recreated pods plus in-place restarts; the real operator counts in-place
restarts of running pods and its work-queue retries, so a corner case may differ).
``activeDeadlineSeconds``: Failed "... active longer than specified deadline". ``cleanPodPolicy`` on finish:
``Running`` deletes running/pending pods, ``All`` every pod, ``None`` none. ``ttlSecondsAfterFinished``: a finished
job is deleted that long after its ``completionTime``, and its pods and Services with it (``CleanupJob``; the
operator skips it while ``runPolicy.suspend`` is true, which the rehearsal does not model: mnistkit never suspends).
"""

from __future__ import annotations

import json
from typing import Any

from mnistkit.rehearsal.jobs import create_pod, has_condition, job_controller, owner_reference, set_condition
from mnistkit.rehearsal.pods import Addresses
from mnistkit.rehearsal.store import ApiError, Obj, StoreBase, now_rfc3339
from mnistkit.rehearsal.ttl import expired, seconds_since

__all__ = ["REPLICA_ORDER", "TFJobController", "tf_config"]

REPLICA_ORDER = ("Chief", "Eval", "Master", "PS", "Worker")  # UpdateJobStatus's iteration order
_CONTAINER, _PORT_NAME, _DEFAULT_PORT = "tensorflow", "tfjob-port", 2222
_L = "training.kubeflow.org/"


def tf_config(job: str, namespace: str, replicas: dict[str, int], rtype: str, index: int, ports: dict[str, int]) -> str:
    """``genTFConfigJSONStr`` (not dynamic-worker): "" when the job is not distributed (one process in all)."""
    if sum(replicas.values()) == 1:
        return ""
    cluster = {
        rt.lower(): [f"{job}-{rt.lower()}-{i}.{namespace}.svc:{ports[rt]}" for i in range(n)]
        for rt, n in replicas.items()
    }
    cfg = {
        "cluster": dict(sorted(cluster.items())),
        "task": {"type": rtype.lower(), "index": index},
        "environment": "cloud",
    }
    return json.dumps(cfg, separators=(",", ":"))


def _port(spec: dict[str, Any]) -> int:
    for c in spec["template"].get("spec", {}).get("containers", []):
        if c.get("name") == _CONTAINER:
            for p in c.get("ports", []):
                if p.get("name") == _PORT_NAME:
                    return int(p["containerPort"])
    return _DEFAULT_PORT


def _exit_code(pod: Obj) -> int | None:
    for cs in pod.get("status", {}).get("containerStatuses", []):
        if cs["name"] == _CONTAINER and "terminated" in cs.get("state", {}):
            return int(cs["state"]["terminated"]["exitCode"])
    return None


@job_controller
class TFJobController:
    kind = "TFJob"

    def __init__(self, store: StoreBase, addresses: Addresses) -> None:
        self.store, self.addresses = store, addresses
        self.restarts: dict[str, int] = {}  # job uid -> pods recreated

    def _local_tf_config(self, text: str, ns: str) -> str:
        """TF_CONFIG with each ``<pod>.<ns>.svc:<port>`` replaced by the loopback address the DNS gives it."""
        if not text:
            return text
        cfg = json.loads(text)
        for rt, addrs in cfg["cluster"].items():
            cfg["cluster"][rt] = [
                f"127.0.0.1:{self.addresses.local(ns, a.split('.')[0], int(a.rsplit(':', 1)[1]))}" for a in addrs
            ]
        return json.dumps(cfg, separators=(",", ":"))

    def reconcile(self, job: Obj) -> None:
        meta, spec = job["metadata"], job.get("spec", {})
        name, ns, uid = meta["name"], meta.get("namespace", ""), meta["uid"]
        status: dict[str, Any] = json.loads(json.dumps(job.get("status") or {}))
        old = json.dumps(status, sort_keys=True)
        run_policy = spec.get("runPolicy", {})
        replicas = {rt: s for rt in REPLICA_ORDER if (s := spec.get("tfReplicaSpecs", {}).get(rt)) is not None}
        pods = [
            p
            for p in self.store.list("Pod", ns, {_L + "job-name": name})
            if any(r.get("uid") == uid for r in p["metadata"].get("ownerReferences", []))
        ]
        if not status.get("conditions"):
            set_condition(status, "Created", "TFJobCreated", f"TFJob {name} is created.")
        status.setdefault("startTime", now_rfc3339())
        if has_condition(status, "Succeeded") or has_condition(status, "Failed"):
            self._clean(run_policy, pods, status)
            if has_condition(status, "Succeeded"):
                for rs in status.get("replicaStatuses", {}).values():
                    rs["succeeded"] = rs.get("succeeded", 0) + rs.pop("active", 0)
            self._save(ns, name, status, old)
            if expired(status.get("completionTime"), run_policy.get("ttlSecondsAfterFinished")):
                self.store.delete("TFJob", ns, name)  # CleanupJob: its pods and Services go with it
            return None
        deadline = run_policy.get("activeDeadlineSeconds")
        if deadline is not None and seconds_since(status["startTime"]) >= int(deadline):
            status.setdefault("completionTime", now_rfc3339())
            set_condition(
                status,
                "Failed",
                "TFJobFailed",
                f"Job {name} has failed because it was active longer than specified deadline",
            )
            self._clean(run_policy, pods, status)
            return self._save(ns, name, status, old)
        backoff = run_policy.get("backoffLimit")
        counts = {n: int(s.get("replicas", 1)) for n, s in replicas.items()}
        ports = {n: _port(s) for n, s in replicas.items()}
        status["replicaStatuses"] = {}
        for rt, rspec in replicas.items():
            rs = status["replicaStatuses"].setdefault(rt, {})
            policy = rspec.get("restartPolicy", "Never")
            for i in range(counts[rt]):
                pod_name = f"{name}-{rt.lower()}-{i}"
                pod = next((p for p in pods if p["metadata"]["name"] == pod_name), None)
                if pod is None:
                    self._create(job, rt, i, rspec, counts, ports)
                    continue
                phase = pod.get("status", {}).get("phase")
                in_place = sum(c.get("restartCount", 0) for c in pod.get("status", {}).get("containerStatuses", []))
                if phase == "Failed":
                    code = _exit_code(pod)
                    retry = policy in ("OnFailure", "Always") or (policy == "ExitCode" and (code or 0) >= 128)
                    if retry and backoff is not None and self.restarts.get(uid, 0) + in_place >= int(backoff):
                        status.setdefault("completionTime", now_rfc3339())
                        set_condition(
                            status,
                            "Failed",
                            "TFJobFailed",
                            f"Job {name} has failed because it has reached the specified backoff limit",
                        )
                    elif retry:
                        self.store.delete("Pod", ns, pod_name)
                        self.restarts[uid] = self.restarts.get(uid, 0) + 1
                        set_condition(
                            status,
                            "Restarting",
                            "TFJobRestarting",
                            f"job {name} is restarting because {rt} replica(s) failed.",
                        )
                        continue
                    elif policy == "ExitCode":
                        set_condition(
                            status,
                            "Failed",
                            "TFJobFailed",
                            f'job "{name}" is failing because "{rt}" replica(s) failed.',
                        )
                key = {"Running": "active", "Succeeded": "succeeded", "Failed": "failed"}.get(phase or "")
                if key:
                    rs[key] = rs.get(key, 0) + 1
        self._update_status(name, ns, replicas, counts, status)
        if has_condition(status, "Failed"):
            status.setdefault("completionTime", now_rfc3339())
            self._clean(run_policy, self.store.list("Pod", ns, {_L + "job-name": name}), status)
        self._save(ns, name, status, old)

    def _update_status(
        self, name: str, ns: str, replicas: dict[str, Any], counts: dict[str, int], status: dict[str, Any]
    ) -> None:
        """``UpdateJobStatus``: the Chief (or Master) decides; without one, worker 0; any failed replica fails."""
        restarting = any(c.get("type") == "Restarting" for c in status.get("conditions", []))
        chief = "Chief" if "Chief" in replicas else ("Master" if "Master" in replicas else None)
        for rt in replicas:
            rs = status["replicaStatuses"][rt]
            expected = counts[rt] - rs.get("succeeded", 0)
            if rt == chief or (chief is None and rt == "Worker"):
                if rs.get("active", 0) > 0:
                    set_condition(status, "Running", "TFJobRunning", f"TFJob {ns}/{name} is running.")
                if expected == 0 or (chief is None and rs.get("succeeded", 0) > 0):
                    status.setdefault("completionTime", now_rfc3339())
                    set_condition(status, "Succeeded", "TFJobSucceeded", f"TFJob {ns}/{name} successfully completed.")
            if rs.get("failed", 0) > 0:
                if restarting:
                    set_condition(
                        status,
                        "Restarting",
                        "TFJobRestarting",
                        f"job {name} is restarting because {rt} replica(s) failed.",
                    )
                else:
                    set_condition(
                        status,
                        "Failed",
                        "TFJobFailed",
                        f"TFJob {ns}/{name} has failed because {rs['failed']} {rt} replica(s) failed.",
                    )

    def _create(
        self, job: Obj, rt: str, index: int, rspec: dict[str, Any], counts: dict[str, int], ports: dict[str, int]
    ) -> None:
        name, ns = job["metadata"]["name"], job["metadata"].get("namespace", "")
        pod_name = f"{name}-{rt.lower()}-{index}"
        labels = {
            _L + "operator-name": "tfjob-controller",
            _L + "job-name": name,
            _L + "replica-type": rt.lower(),
            _L + "replica-index": str(index),
        }
        if rt in ("Chief", "Master"):
            labels[_L + "job-role"] = "master"
        text = self._local_tf_config(tf_config(name, ns, counts, rt, index, ports), ns)
        policy = rspec.get("restartPolicy", "Never")
        create_pod(
            self.store,
            job,
            pod_name,
            rspec["template"],
            labels,
            env={_CONTAINER: {"TF_CONFIG": text}} if text else None,
            restart_policy="Never" if policy == "ExitCode" else policy,
        )
        svc = {
            "apiVersion": "v1",
            "kind": "Service",
            "metadata": {
                "name": pod_name,
                "namespace": ns,
                "labels": labels,
                "ownerReferences": [owner_reference(job)],
            },
            "spec": {
                "clusterIP": "None",
                "selector": labels,
                "ports": [{"name": _PORT_NAME, "port": ports[rt], "targetPort": ports[rt]}],
            },
        }
        try:
            self.store.create(svc)
        except ApiError as exc:
            if exc.code != 409:
                raise

    def _clean(self, run_policy: dict[str, Any], pods: list[Obj], status: dict[str, Any]) -> None:
        policy = run_policy.get("cleanPodPolicy", "Running")
        for pod in pods:
            phase = pod.get("status", {}).get("phase")
            if policy == "All" or (policy == "Running" and phase in ("Running", "Pending")):
                self.store.delete("Pod", pod["metadata"].get("namespace", ""), pod["metadata"]["name"])

    def _save(self, ns: str, name: str, status: dict[str, Any], old: str) -> None:
        if json.dumps(status, sort_keys=True) != old:
            self.store.update("TFJob", ns, name, lambda o: o.__setitem__("status", status))
