"""TF_CONFIG from a JobSet pod's environment (trainer/jobset.py), against the names JobSet and Trainer really use.

Expected hostnames are copied from upstream tests, not derived from our own format string:
* kubeflow/trainer v2.3.0 ``pkg/runtime/core/trainingruntime_test.go`` (MPI hostfile of a TrainJob ``test-job``
  on the runtime's ``node`` replicated job): ``test-job-node-0-0.test-job``, ``test-job-node-0-1.test-job``.
* kubernetes-sigs/jobset v0.12.0 ``test/e2e/e2e_test.go``: ``<js>-<rjob>-<jobIdx>-0.<subdomain>``, where the
  subdomain is the JobSet's name unless ``network.subdomain`` is set.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from mnistkit.trainspec import READY_LINE
from trainer.jobset import (
    ANNOTATION_OF_ENV,
    JobSetError,
    set_tf_config_from_jobset,
    tf_config_from_env,
    worker_hosts,
)
from trainer.task import cluster_info

from helpers.paths import ROOT


def _env(index: int, nodes: int = 2, **extra: str) -> dict[str, str]:
    return {
        "JOBSET_NAME": "test-job",
        "JOBSET_REPLICATED_JOB": "node",
        "JOBSET_JOB_INDEX": "0",
        "JOB_COMPLETION_INDEX": str(index),
        "MNISTKIT_NUM_NODES": str(nodes),
        **extra,
    }


def test_worker_hosts_match_trainers_endpoints() -> None:
    assert worker_hosts("test-job", "node", 0, 2) == ["test-job-node-0-0.test-job", "test-job-node-0-1.test-job"]
    # jobset e2e: a JobSet with network.subdomain "network-subdomain"
    assert worker_hosts("js", "rjob", 1, 1, "network-subdomain") == ["js-rjob-1-0.network-subdomain"]


@pytest.mark.parametrize("index", [0, 1, 2])
def test_tf_config_lists_every_node_and_this_pods_index(index: int) -> None:
    cfg = json.loads(tf_config_from_env(_env(index, nodes=3)) or "")
    assert cfg == {
        "cluster": {
            "worker": [
                "test-job-node-0-0.test-job:2222",
                "test-job-node-0-1.test-job:2222",
                "test-job-node-0-2.test-job:2222",
            ]
        },
        "task": {"type": "worker", "index": index},
    }
    info = cluster_info(json.dumps(cfg))
    assert info.is_chief == (index == 0)  # node 0 plays the chief, as with the local engine
    assert info.address == f"test-job-node-0-{index}.test-job:2222"  # its own hostname, so it binds its own port


def test_subdomain_and_port_overrides() -> None:
    cfg = json.loads(tf_config_from_env(_env(0, nodes=1, JOBSET_SUBDOMAIN="svc", MNISTKIT_TF_PORT="3333")) or "")
    assert cfg["cluster"]["worker"] == ["test-job-node-0-0.svc:3333"]


def test_not_a_jobset_pod_gives_none_and_keeps_an_existing_tf_config() -> None:
    assert tf_config_from_env({"JOB_COMPLETION_INDEX": "0"}) is None
    environ = {**_env(1), "TF_CONFIG": '{"cluster": {"chief": ["a:1"]}, "task": {"type": "chief", "index": 0}}'}
    before = dict(environ)
    assert set_tf_config_from_jobset(environ) is False and environ == before  # a TFJob's TF_CONFIG wins
    environ = _env(1)
    assert set_tf_config_from_jobset(environ) is True
    assert json.loads(environ["TF_CONFIG"])["task"] == {"type": "worker", "index": 1}


@pytest.mark.parametrize(
    ("changes", "names"),
    [
        ({"JOB_COMPLETION_INDEX": ""}, "JOB_COMPLETION_INDEX"),
        ({"JOB_COMPLETION_INDEX": "2"}, "JOB_COMPLETION_INDEX=2"),
        ({"JOB_COMPLETION_INDEX": "x"}, "JOB_COMPLETION_INDEX"),
        ({"MNISTKIT_NUM_NODES": "0"}, "MNISTKIT_NUM_NODES"),
        ({"JOBSET_REPLICATED_JOB": ""}, "JOBSET_REPLICATED_JOB"),
    ],
)
def test_inconsistent_env_is_a_clear_error(changes: dict[str, str], names: str) -> None:
    with pytest.raises(JobSetError, match=names):
        tf_config_from_env({**_env(0), **changes})


def test_the_runtime_passes_the_annotations_jobset_writes() -> None:
    from mnistkit.manifests import ManifestParams
    from mnistkit.manifests.runtime import training_runtime

    c = training_runtime(ManifestParams())["spec"]["template"]["spec"]["replicatedJobs"][0]["template"]["spec"][
        "template"
    ]["spec"]["containers"][0]
    refs = {e["name"]: e["valueFrom"]["fieldRef"]["fieldPath"] for e in c["env"] if "valueFrom" in e}
    assert refs == {n: f"metadata.annotations['{a}']" for n, a in ANNOTATION_OF_ENV.items()}
    assert ANNOTATION_OF_ENV == {
        "JOBSET_NAME": "jobset.sigs.k8s.io/jobset-name",
        "JOBSET_REPLICATED_JOB": "jobset.sigs.k8s.io/replicatedjob-name",
        "JOBSET_JOB_INDEX": "jobset.sigs.k8s.io/job-index",
    }


def test_trainer_exits_2_naming_the_variable_on_a_broken_jobset_env(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    from trainer import task

    monkeypatch.delenv("TF_CONFIG", raising=False)
    for k, v in _env(5, nodes=2).items():
        monkeypatch.setenv(k, v)
    assert task.main(["--tf-model-type=small", "--tf-train-steps=1"]) == 2
    assert "JOB_COMPLETION_INDEX=5" in capsys.readouterr().err


def test_host_map_renames_only_the_hostnames_jobset_assigns() -> None:
    hosts = {"test-job-node-0-0.test-job": "127.0.0.1:4000", "test-job-node-0-1.test-job": "127.0.0.1:4001"}
    cfg = json.loads(tf_config_from_env(_env(1, MNISTKIT_TF_HOST_MAP=json.dumps(hosts))) or "")
    assert cfg["cluster"]["worker"] == ["127.0.0.1:4000", "127.0.0.1:4001"] and cfg["task"]["index"] == 1
    with pytest.raises(JobSetError, match="test-job-node-0-7.test-job, which JobSet does not assign"):
        tf_config_from_env(_env(0, MNISTKIT_TF_HOST_MAP=json.dumps({"test-job-node-0-7.test-job": "127.0.0.1:1"})))
    with pytest.raises(JobSetError, match="MNISTKIT_TF_HOST_MAP"):
        tf_config_from_env(_env(0, MNISTKIT_TF_HOST_MAP="[1]"))


@pytest.mark.slow
def test_two_nodes_train_together_from_the_jobset_env_alone(tmp_path: Path) -> None:
    """Two `python -m trainer.task` processes with only what a TrainJob's pods get (no TF_CONFIG), their JobSet
    hostnames mapped to loopback: they form one MultiWorkerMirroredStrategy group and node 0 exports."""
    from mnistkit.embedded_s3 import free_port

    name, n = "mnist-tj", 2
    hosts = worker_hosts(name, "node", 0, n)
    host_map = {h: f"127.0.0.1:{free_port()}" for h in hosts}
    procs = []
    for i in range(n):
        env = {k: v for k, v in os.environ.items() if k != "TF_CONFIG"}
        env.update(
            {
                "JOBSET_NAME": name,
                "JOBSET_REPLICATED_JOB": "node",
                "JOBSET_JOB_INDEX": "0",
                "JOB_COMPLETION_INDEX": str(i),
                "MNISTKIT_NUM_NODES": str(n),
                "MNISTKIT_TF_HOST_MAP": json.dumps(host_map),
                "MNISTKIT_WORK_DIR": str(tmp_path / f"work-{i}"),
            }
        )
        log = (tmp_path / f"node-{i}.log").open("wb")
        procs.append(
            subprocess.Popen(
                [
                    sys.executable,
                    "-m",
                    "trainer.task",
                    "--tf-model-type=small",
                    "--tf-train-steps=40",
                    f"--tf-model-dir={tmp_path / 'model'}",
                    "--tf-peer-timeout=120",
                ],
                stdout=log,
                stderr=subprocess.STDOUT,
                env=env,
                cwd=str(ROOT),
            )
        )
    try:
        codes = [p.wait(timeout=480) for p in procs]
    finally:
        for p in procs:
            if p.poll() is None:
                p.kill()
    logs = "\n".join((tmp_path / f"node-{i}.log").read_text() for i in range(n))
    assert codes == [0, 0], logs[-3000:]
    result = json.loads((tmp_path / "work-0" / "result.json").read_text())  # node 0 is the chief
    assert result["workers"] == 2, result  # one group of two, not two single-node runs
    assert all(f"worker {i}: {READY_LINE} (2 worker(s))" in logs for i in range(n))  # one group of two
    assert (tmp_path / "model" / "export" / "mnist" / str(result["version"]) / "saved_model.pb").is_file()
