"""``TF_CONFIG`` from what a JobSet gives each pod, so the same trainer runs under a Kubeflow Trainer v2 TrainJob.

A TFJob (training-operator v1) writes ``TF_CONFIG`` into every pod. Trainer v2 has no TensorFlow policy: its
``PlainML`` plugin only sets the pod count from ``TrainJob.spec.trainer.numNodes`` and adds
``spec.trainer.env``. What every pod does get, from JobSet (v0.12) and the Job controller:

* ``JOB_COMPLETION_INDEX``: the pod's index in its Indexed Job (the Job controller sets it).
* The JobSet name, the replicated job's name and the Job's index within it, as pod annotations
  ``jobset.sigs.k8s.io/jobset-name``, ``jobset.sigs.k8s.io/replicatedjob-name`` and
  ``jobset.sigs.k8s.io/job-index``; the ``mnistkit-tensorflow`` runtime passes them in through the downward API
  (``JOBSET_NAME``, ``JOBSET_REPLICATED_JOB``, ``JOBSET_JOB_INDEX``). Trainer names the JobSet after the TrainJob.
* A stable DNS name (``network.enableDNSHostnames``): the Job ``<jobset>-<rjob>-<jobindex>`` (jobset's
  ``placement.GenJobName``) gives its pod ``<index>`` the hostname ``<job>-<index>``, under the headless Service
  ``<subdomain>``, which defaults to the JobSet's name (jobset ``GetSubdomain``; Trainer's ``IdentifyPodNetwork``
  builds the same ``%s-%s-%d-%d.%s`` endpoints). The downward API cannot read ``spec.subdomain``, so a runtime that
  sets ``network.subdomain`` must also set ``JOBSET_SUBDOMAIN``.
* The node count is not visible to a pod, so the TrainJob passes ``numNodes`` again as ``MNISTKIT_NUM_NODES``.

Off-cluster (``mnistkit rehearse``, tests) nothing resolves those names, so ``MNISTKIT_TF_HOST_MAP`` (JSON
``{"<JobSet DNS name>": "host:port"}``) may map each of them to a loopback address; a name that is not one
JobSet would assign is an error, so the mapping can only rename what JobSet really gives.

Every node is a TF ``worker``; worker 0 plays the chief (``trainer.task.ClusterInfo.is_chief``), as in
``mnistkit train --engine local``. Stdlib only: the trainer imports it before TensorFlow.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, MutableMapping

__all__ = [
    "ENV_COMPLETION_INDEX",
    "ENV_JOBSET_NAME",
    "ENV_REPLICATED_JOB",
    "ENV_JOB_INDEX",
    "ENV_SUBDOMAIN",
    "ENV_NUM_NODES",
    "ENV_TF_PORT",
    "ENV_HOST_MAP",
    "ANNOTATION_OF_ENV",
    "DEFAULT_TF_PORT",
    "JobSetError",
    "worker_hosts",
    "tf_config_from_env",
    "set_tf_config_from_jobset",
]

ENV_COMPLETION_INDEX = "JOB_COMPLETION_INDEX"
ENV_JOBSET_NAME = "JOBSET_NAME"
ENV_REPLICATED_JOB = "JOBSET_REPLICATED_JOB"
ENV_JOB_INDEX = "JOBSET_JOB_INDEX"
ENV_SUBDOMAIN = "JOBSET_SUBDOMAIN"
ENV_NUM_NODES = "MNISTKIT_NUM_NODES"
ENV_TF_PORT = "MNISTKIT_TF_PORT"
ENV_HOST_MAP = "MNISTKIT_TF_HOST_MAP"
DEFAULT_TF_PORT = 2222
# The pod annotations JobSet writes (api/jobset/v1alpha2/jobset_types.go), read through the downward API.
ANNOTATION_OF_ENV = {
    ENV_JOBSET_NAME: "jobset.sigs.k8s.io/jobset-name",
    ENV_REPLICATED_JOB: "jobset.sigs.k8s.io/replicatedjob-name",
    ENV_JOB_INDEX: "jobset.sigs.k8s.io/job-index",
}


class JobSetError(ValueError):
    """The JobSet environment is incomplete or inconsistent; the message names the variable and its value."""


def worker_hosts(jobset: str, replicated_job: str, job_index: int, num_nodes: int, subdomain: str = "") -> list[str]:
    """The DNS names JobSet gives the ``num_nodes`` pods of one Indexed Job, index order."""
    sub = subdomain or jobset
    return [f"{jobset}-{replicated_job}-{job_index}-{i}.{sub}" for i in range(num_nodes)]


def _int(env: Mapping[str, str], name: str, *, minimum: int, default: str | None = None) -> int:
    raw = env.get(name, default)
    try:
        value = int(str(raw).strip())
    except ValueError:
        raise JobSetError(f"{name} must be an integer, got {raw!r}") from None
    if value < minimum:
        raise JobSetError(f"{name} must be >= {minimum}, got {raw!r}")
    return value


def _host_map(raw: str, hosts: list[str]) -> dict[str, str]:
    if not raw.strip():
        return {}
    try:
        mapping = json.loads(raw)
    except ValueError:
        raise JobSetError(f"{ENV_HOST_MAP} must be a JSON object of hostname -> host:port") from None
    if not isinstance(mapping, dict) or not all(isinstance(v, str) and ":" in v for v in mapping.values()):
        raise JobSetError(f"{ENV_HOST_MAP} must be a JSON object of hostname -> host:port")
    unknown = sorted(set(mapping) - set(hosts))
    if unknown:
        raise JobSetError(
            f"{ENV_HOST_MAP} names {', '.join(unknown)}, which JobSet does not assign here "
            f"(its hostnames: {', '.join(hosts)})"
        )
    return {str(k): str(v) for k, v in mapping.items()}


def tf_config_from_env(env: Mapping[str, str]) -> str | None:
    """``TF_CONFIG`` (JSON) for this pod, or ``None`` when ``env`` is not a JobSet pod's (no ``JOBSET_NAME``)."""
    jobset = env.get(ENV_JOBSET_NAME, "").strip()
    if not jobset:
        return None
    missing = [n for n in (ENV_REPLICATED_JOB, ENV_COMPLETION_INDEX) if not env.get(n, "").strip()]
    if missing:
        raise JobSetError(f"{ENV_JOBSET_NAME}={jobset!r} is set but {', '.join(missing)} is not")
    num_nodes = _int(env, ENV_NUM_NODES, minimum=1, default="1")
    index = _int(env, ENV_COMPLETION_INDEX, minimum=0)
    if index >= num_nodes:
        raise JobSetError(f"{ENV_COMPLETION_INDEX}={index} is not below {ENV_NUM_NODES}={num_nodes}")
    job_index = _int(env, ENV_JOB_INDEX, minimum=0, default="0")
    port = _int(env, ENV_TF_PORT, minimum=1, default=str(DEFAULT_TF_PORT))
    hosts = worker_hosts(
        jobset, env[ENV_REPLICATED_JOB].strip(), job_index, num_nodes, env.get(ENV_SUBDOMAIN, "").strip()
    )
    addresses = [f"{h}:{port}" for h in hosts]
    mapping = _host_map(env.get(ENV_HOST_MAP, ""), hosts)
    cfg = {
        "cluster": {"worker": [mapping.get(h, a) for h, a in zip(hosts, addresses)]},
        "task": {"type": "worker", "index": index},
    }
    return json.dumps(cfg, separators=(",", ":"))


def set_tf_config_from_jobset(environ: MutableMapping[str, str]) -> bool:
    """Set ``TF_CONFIG`` from the JobSet env when it is unset (TFJob's and the local engine's win); True if set."""
    if environ.get("TF_CONFIG"):
        return False
    tf_config = tf_config_from_env(environ)
    if tf_config is None:
        return False
    environ["TF_CONFIG"] = tf_config  # MultiWorkerMirroredStrategy reads it from the environment
    return True
