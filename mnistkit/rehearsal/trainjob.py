"""The TrainJob controller, after Kubeflow Trainer v2.3.0 on JobSet v0.12 and the Kubernetes Job controller.

What Trainer does with a TrainJob on a runtime without a framework policy (``PlainML``): the runtime's JobSet
template (``ClusterTrainingRuntime``, or a ``TrainingRuntime`` in the TrainJob's namespace; ``spec.runtimeRef``),
``spec.runtimePatches`` merged into it (replicated jobs by name, pod-template labels), and for the replicated job
labelled ``trainer.kubeflow.org/trainjob-ancestor-step: trainer``: ``parallelism = completions =
spec.trainer.numNodes``, and in its container ``node`` the TrainJob's image, command, args and env (upserted).

What JobSet and the Job controller do with that: per replicated job and replica index one Indexed Job
``<trainjob>-<rjob>-<jobIndex>`` whose pod ``i`` carries JobSet's labels and annotations
(``jobset.sigs.k8s.io/jobset-name``, ``replicatedjob-name``, ``job-index``), ``batch.kubernetes.io/job-name`` and
``job-completion-index``, the env ``JOB_COMPLETION_INDEX``, and the DNS name ``<job>-<i>.<subdomain>``
(``network.enableDNSHostnames``; subdomain = the JobSet's name). The rehearsal's DNS is the env
``MNISTKIT_TF_HOST_MAP``: each such name -> a loopback port (``Addresses``), read by ``trainer/jobset.py``.

Failures as the Job controller handles them: ``podFailurePolicy`` rules in order (``FailJob`` on exit codes
``In``/``NotIn``, ``Ignore``, ``Count``; exit code 0 never matches), then ``backoffLimit`` (failed pods counted;
one more than the limit fails the Job); a failed pod that does not fail the Job is replaced, same index. A
failed Job deletes its running pods; JobSet (no failurePolicy) fails with it; all Jobs complete -> Completed.

Status as Trainer writes it: ``conditions`` (``metav1.Condition``: ``Complete``/``Failed`` copied from JobSet's
``Completed``/``Failed`` only when True, with JobSet's reasons ``AllJobsCompleted``/``FailedJobs``;
``Suspended`` True/False; ``Failed`` with ``DeadlineExceeded`` once ``activeDeadlineSeconds`` passed since
creation, after which the JobSet and its pods are deleted), and ``jobsStatus`` per replicated job (counts of
Jobs: ``ready``, ``succeeded``, ``failed``, ``active``, ``suspended``). ``spec.suspend`` deletes running pods.
JobSet's ``ttlSecondsAfterFinished``: that long after Complete/Failed, the JobSet's pods are deleted (the TrainJob
and its status stay). Not emulated: initializer jobs, JobSet ``failurePolicy``/restarts, pod conditions
(``DisruptionTarget``: nothing here evicts a pod).
"""

from __future__ import annotations

import copy
import json
import uuid
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from mnistkit.rehearsal.jobs import create_pod, job_controller
from mnistkit.rehearsal.pods import Addresses
from mnistkit.rehearsal.store import Obj, ObjectStore, now_rfc3339
from mnistkit.rehearsal.ttl import expired, seconds_since
from trainer.jobset import DEFAULT_TF_PORT, ENV_COMPLETION_INDEX, ENV_HOST_MAP

if TYPE_CHECKING:
    from mnistkit._types import JsonValue

__all__ = ["TrainJobController", "merge_named"]

_ANCESTOR = "trainer.kubeflow.org/trainjob-ancestor-step"
_JS = "jobset.sigs.k8s.io/"
_BATCH = "batch.kubernetes.io/"
_NODE = "node"
_JOB_KEYS = ("ready", "succeeded", "failed", "active", "suspended")
_COUNTED = "rehearsal.mnistkit.io/counted"  # on a failed pod the Job controller has handled: "true" if counted


def merge_named(base: JsonValue, patch: JsonValue) -> JsonValue:
    """A strategic merge for what runtime patches touch: dicts merged, lists of named dicts merged by name."""
    if isinstance(base, dict) and isinstance(patch, dict):
        out = dict(base)
        for k, v in patch.items():
            out[k] = merge_named(base[k], v) if k in base else copy.deepcopy(v)
        return out
    if (
        isinstance(base, list)
        and isinstance(patch, list)
        and all(isinstance(x, dict) and "name" in x for x in base + patch)
    ):
        out_list = [dict(x) for x in base]
        for item in patch:
            i = next((n for n, x in enumerate(out_list) if x["name"] == item["name"]), None)
            if i is None:
                out_list.append(copy.deepcopy(item))
            else:
                out_list[i] = merge_named(out_list[i], item)
        return out_list
    return copy.deepcopy(patch)


def _set(status: dict[str, Any], ctype: str, value: str, reason: str, message: str) -> None:
    """``meta.SetStatusCondition``: one condition per type; the transition time moves only when status does."""
    conds = status.setdefault("conditions", [])
    cur = next((c for c in conds if c["type"] == ctype), None)
    if cur is None:
        conds.append(
            {"type": ctype, "status": value, "reason": reason, "message": message, "lastTransitionTime": now_rfc3339()}
        )
        return
    if cur["status"] != value:
        cur["lastTransitionTime"] = now_rfc3339()
    cur.update(status=value, reason=reason, message=message)


def _finished_at(status: dict[str, Any]) -> str | None:
    """When the Complete or Failed condition turned True (JobSet's ``jobSetFinishTime``)."""
    done = (c for c in status.get("conditions", []) if c["type"] in ("Complete", "Failed") and c["status"] == "True")
    return next((c.get("lastTransitionTime") for c in done), None)


def _true(status: dict[str, Any], ctype: str) -> bool:
    return any(c["type"] == ctype and c["status"] == "True" for c in status.get("conditions", []))


def _exit_code(pod: Obj, container: str | None) -> int | None:
    for cs in pod.get("status", {}).get("containerStatuses", []):
        if container in (None, cs["name"]) and "terminated" in cs.get("state", {}):
            return int(cs["state"]["terminated"]["exitCode"])
    return None


def _annotate(key: str, value: str) -> Callable[[Obj], None]:
    def fn(obj: Obj) -> None:
        obj["metadata"].setdefault("annotations", {})[key] = value

    return fn


def _policy_action(rules: list[dict[str, Any]], pod: Obj) -> str:
    """The podFailurePolicy action for a failed pod: FailJob, Ignore or Count (no rule matched: Count)."""
    for rule in rules:
        req = rule.get("onExitCodes")
        if req is None:
            continue  # onPodConditions: no pod here gets DisruptionTarget
        code = _exit_code(pod, req.get("containerName"))
        if code is None or code == 0:
            continue
        if (code in req.get("values", [])) == (req.get("operator") == "In"):
            return str(rule["action"])
    return "Count"


@job_controller
class TrainJobController:
    kind = "TrainJob"

    def __init__(self, store: ObjectStore, addresses: Addresses) -> None:
        self.store, self.addresses = store, addresses
        self.failed_jobs: dict[str, str] = {}  # "<trainjob uid>/<job name>" -> why it failed (the Job's condition)

    # ---- the JobSet Trainer would build ----------------------------------------------------------
    def _jobset_spec(self, tj: Obj) -> dict[str, Any] | None:
        ref, ns = tj["spec"].get("runtimeRef", {}), tj["metadata"].get("namespace", "")
        kind = ref.get("kind", "ClusterTrainingRuntime")
        runtime = self.store.get(kind, "" if kind == "ClusterTrainingRuntime" else ns, ref.get("name", ""))
        if runtime is None:
            return None
        spec = copy.deepcopy(runtime["spec"]["template"]["spec"])
        for patch in tj["spec"].get("runtimePatches", []):
            rjobs = (((patch.get("trainingRuntimeSpec") or {}).get("template") or {}).get("spec") or {}).get(
                "replicatedJobs", []
            )
            spec["replicatedJobs"] = merge_named(spec["replicatedJobs"], rjobs)
        trainer = tj["spec"].get("trainer") or {}
        nodes = int(trainer.get("numNodes") or (runtime["spec"].get("mlPolicy") or {}).get("numNodes") or 1)
        for rjob in spec["replicatedJobs"]:
            job = rjob["template"]["spec"]
            if (rjob["template"].get("metadata") or {}).get("labels", {}).get(_ANCESTOR) != "trainer":
                continue
            job["parallelism"] = job["completions"] = nodes
            for c in job["template"]["spec"]["containers"]:
                if c["name"] != _NODE:
                    continue
                for key in ("image", "command", "args"):
                    if trainer.get(key):
                        c[key] = copy.deepcopy(trainer[key])
                env = {e["name"]: e for e in c.get("env", [])}
                env.update({e["name"]: e for e in trainer.get("env", [])})  # apply.UpsertEnvVars
                c["env"] = list(env.values())
        return spec

    # ---- reconcile -------------------------------------------------------------------------------
    def reconcile(self, tj: Obj) -> None:
        meta, spec = tj["metadata"], tj.get("spec", {})
        name, ns, uid = meta["name"], meta.get("namespace", ""), meta["uid"]
        status: dict[str, Any] = json.loads(json.dumps(tj.get("status") or {}))
        old = json.dumps(status, sort_keys=True)
        pods = [
            p
            for p in self.store.list("Pod", ns, {_JS + "jobset-name": name})
            if any(r.get("uid") == uid for r in p["metadata"].get("ownerReferences", []))
        ]
        if spec.get("suspend"):
            _set(status, "Suspended", "True", "Suspended", "TrainJob is suspended")
            self._delete_running(pods)
        elif _true(status, "Suspended"):
            _set(status, "Suspended", "False", "Resumed", "TrainJob is resumed")
        finished = _true(status, "Complete") or _true(status, "Failed")
        deadline = spec.get("activeDeadlineSeconds")
        if not finished and deadline and not spec.get("suspend") and self._age(tj, status) >= int(deadline):
            _set(status, "Failed", "True", "DeadlineExceeded", "TrainJob exceeded its active deadline")
            for pod in pods:  # the JobSet is deleted, and its Jobs and pods with it
                self.store.delete("Pod", ns, pod["metadata"]["name"])
            return self._save(ns, name, status, old)
        js = self._jobset_spec(tj)
        if finished and js is not None and expired(_finished_at(status), js.get("ttlSecondsAfterFinished")):
            for pod in pods:  # JobSet's TTL: the JobSet goes, its Jobs and pods with it; the TrainJob stays
                self.store.delete("Pod", ns, pod["metadata"]["name"])
        if js is None or finished:
            return self._save(ns, name, status, old)
        outcomes: dict[str, dict[str, int]] = {}
        for rjob in js["replicatedJobs"]:
            counts = outcomes.setdefault(rjob["name"], dict.fromkeys(_JOB_KEYS, 0))
            for job_index in range(int(rjob.get("replicas", 1))):
                for key, add in self._job(tj, js, rjob, job_index, pods, suspended=bool(spec.get("suspend"))).items():
                    counts[key] += add
        status["jobsStatus"] = [{"name": n, **c} for n, c in outcomes.items()]
        if any(c["failed"] for c in outcomes.values()):
            _set(status, "Failed", "True", "FailedJobs", "jobset failed due to one or more job failures")
        elif all(
            c["succeeded"] == sum(int(r.get("replicas", 1)) for r in js["replicatedJobs"] if r["name"] == n)
            for n, c in outcomes.items()
        ):
            _set(status, "Complete", "True", "AllJobsCompleted", "jobset completed successfully")
        self._save(ns, name, status, old)

    def _age(self, tj: Obj, status: dict[str, Any]) -> float:
        resumed = next(
            (c for c in status.get("conditions", []) if c["type"] == "Suspended" and c["status"] == "False"), None
        )
        return seconds_since(resumed["lastTransitionTime"] if resumed else tj["metadata"]["creationTimestamp"])

    def _job(
        self, tj: Obj, js: dict[str, Any], rjob: dict[str, Any], job_index: int, pods: list[Obj], suspended: bool
    ) -> dict[str, int]:
        """One Indexed Job of the JobSet, as the Job controller runs it; returns how JobSet counts it
        (``calculateReplicatedJobStatuses``: ready when succeeded + ready pods cover the Job, active with an
        active pod, suspended, succeeded, failed)."""
        name, ns, uid = tj["metadata"]["name"], tj["metadata"].get("namespace", ""), tj["metadata"]["uid"]
        job_name = f"{name}-{rjob['name']}-{job_index}"
        spec = rjob["template"]["spec"]
        n = int(spec.get("completions") or spec.get("parallelism") or 1)
        mine = [p for p in pods if p["metadata"]["labels"].get(_BATCH + "job-name") == job_name]
        if f"{uid}/{job_name}" in self.failed_jobs:
            return {"failed": 1}
        rules = (spec.get("podFailurePolicy") or {}).get("rules", [])
        counted = sum(1 for p in mine if p["metadata"].get("annotations", {}).get(_COUNTED) == "true")
        done = active = ready = 0
        for i in range(n):
            of_index = [p for p in mine if p["metadata"]["labels"].get(_BATCH + "job-completion-index") == str(i)]
            if any(p.get("status", {}).get("phase") == "Succeeded" for p in of_index):
                done += 1
                continue
            live = [p for p in of_index if p.get("status", {}).get("phase") not in ("Succeeded", "Failed")]
            if live:
                active += 1
                ready += any(cs.get("ready") for p in live for cs in p.get("status", {}).get("containerStatuses", []))
                continue
            for pod in of_index:  # failed pods not handled yet: the pod failure policy, then the backoff limit
                if pod["metadata"].get("annotations", {}).get(_COUNTED) is not None:
                    continue
                action = _policy_action(rules, pod)
                mark = str(action == "Count").lower()
                self.store.update("Pod", ns, pod["metadata"]["name"], _annotate(_COUNTED, mark))
                if action == "FailJob":
                    return self._fail(uid, job_name, mine, f"pod {pod['metadata']['name']} matched a FailJob rule")
                counted += action == "Count"
            if counted > int(spec.get("backoffLimit", 6)):
                return self._fail(uid, job_name, mine, "BackoffLimitExceeded")
            if not suspended:
                self._create(tj, js, rjob, job_index, i)  # the same index again: same hostname, resumes from backup
                active += 1
        if done == n:
            return {"succeeded": 1}
        return {"ready": int(done + ready >= n), "active": int(active > 0), "suspended": int(suspended)}

    def _fail(self, uid: str, job_name: str, pods: list[Obj], why: str) -> dict[str, int]:
        self.failed_jobs[f"{uid}/{job_name}"] = why
        self._delete_running(pods)  # a failed Job terminates its running pods
        return {"failed": 1}

    def _delete_running(self, pods: list[Obj]) -> None:
        for pod in pods:
            if pod.get("status", {}).get("phase") in ("Pending", "Running", None):
                self.store.delete("Pod", pod["metadata"].get("namespace", ""), pod["metadata"]["name"])

    def _create(self, tj: Obj, js: dict[str, Any], rjob: dict[str, Any], job_index: int, index: int) -> None:
        name, ns = tj["metadata"]["name"], tj["metadata"].get("namespace", "")
        job_name = f"{name}-{rjob['name']}-{job_index}"
        subdomain = (js.get("network") or {}).get("subdomain") or name
        spec = rjob["template"]["spec"]
        n = int(spec.get("completions") or 1)
        template = copy.deepcopy(spec["template"])
        marks = {
            _JS + "jobset-name": name,
            _JS + "replicatedjob-name": rjob["name"],
            _JS + "job-index": str(job_index),
            _BATCH + "job-name": job_name,
            _BATCH + "job-completion-index": str(index),
        }
        template.setdefault("metadata", {}).setdefault("annotations", {}).update(marks)
        host = f"{job_name}-{index}"
        template["spec"].update(hostname=host, subdomain=subdomain)
        # The cluster DNS name of every node of this Job -> its loopback port (the rehearsal's DNS).
        dns = {
            f"{job_name}-{i}.{subdomain}": f"127.0.0.1:{self.addresses.local(ns, f'{job_name}-{i}', DEFAULT_TF_PORT)}"
            for i in range(n)
        }
        env = {ENV_COMPLETION_INDEX: str(index), ENV_HOST_MAP: json.dumps(dns, separators=(",", ":"))}
        create_pod(
            self.store,
            tj,
            f"{host}-{uuid.uuid4().hex[:5]}",
            template,
            marks,
            env={c["name"]: env for c in template["spec"].get("containers", [])},
        )

    def _save(self, ns: str, name: str, status: dict[str, Any], old: str) -> None:
        if json.dumps(status, sort_keys=True) != old:
            self.store.update("TrainJob", ns, name, lambda o: o.__setitem__("status", status))
