"""``mnistkit rehearse``: the rendered workflow run for real on this machine (issue 12).

Fast tests drive the rehearsal's controllers with ``/bin/sh`` containers (the busybox row of the image
table): the TFJob operator (TF_CONFIG, ExitCode restarts, backoffLimit, status), the Argo interpreter
(when, outputs, retries, deadline, exit handler) and a model-train workflow whose trainer fails. The slow test
trains once: ``mnistkit data upload``, then ``mnistkit rehearse --deploy`` with the seed's S3 variables, then
``mnistkit predict`` through the rehearsed serving. Figures are printed as ``FIGURE ...`` lines.
"""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from helpers.rehearse import predict, rehearse_deploy
from mnistkit.config import S3Config
from mnistkit.manifests import ManifestParams
from mnistkit.rehearsal.cluster import Rehearsal
from mnistkit.rehearsal.images import RehearsalError, resolve
from mnistkit.rehearsal.run import rehearse_training
from mnistkit.trainspec import READY_LINE

NS = "kubeflow-user-jane"
SH = "docker.io/library/busybox:1.36"
DONE = ("Succeeded", "Failed", "Error")


@pytest.fixture
def rehearsal(tmp_path: Path) -> Iterator[Rehearsal]:
    with Rehearsal(tmp_path / "rehearsal", poll=0.2) as r:
        yield r


def _container(script: str, name: str = "tensorflow") -> dict[str, Any]:
    return {
        "name": name,
        "image": SH,
        "command": ["/bin/sh", "-c", script],
        "ports": [{"name": "tfjob-port", "containerPort": 2222}],
    }


def _tfjob(name: str, chief: str, worker: str | None, *, policy: str = "ExitCode", backoff: int = 3) -> dict[str, Any]:
    specs: dict[str, Any] = {
        "Chief": {"replicas": 1, "restartPolicy": policy, "template": {"spec": {"containers": [_container(chief)]}}}
    }
    if worker is not None:
        specs["Worker"] = {
            "replicas": 1,
            "restartPolicy": policy,
            "template": {"spec": {"containers": [_container(worker)]}},
        }
    return {
        "apiVersion": "kubeflow.org/v1",
        "kind": "TFJob",
        "metadata": {"name": name, "namespace": NS},
        "spec": {"runPolicy": {"cleanPodPolicy": "Running", "backoffLimit": backoff}, "tfReplicaSpecs": specs},
    }


def _finished(job: dict[str, Any]) -> bool:
    return any(
        c["type"] in ("Succeeded", "Failed") and c["status"] == "True"
        for c in (job.get("status") or {}).get("conditions", [])
    )


def _types(job: dict[str, Any]) -> list[tuple[str, str]]:
    return [(c["type"], c["status"]) for c in job["status"]["conditions"]]


# ---- the image table --------------------------------------------------------------------------------
def test_unknown_image_or_command_is_a_clear_error() -> None:
    assert resolve("docker.io/tensorflow/serving:2.18.0", ["tensorflow_model_server"])[0][1:] == [
        "-m",
        "mnistkit",
        "serve",
    ]
    assert resolve("registry.example.com:5000/mnistkit/trainer:9", ["python"])[0] == [sys.executable]
    with pytest.raises(RehearsalError, match="image 'quay.io/someone/else:1' has no local stand-in"):
        resolve("quay.io/someone/else:1", ["run"])
    with pytest.raises(RehearsalError, match="no local program for command 'bash'"):
        resolve("busybox", ["bash"])


def test_a_job_kind_without_a_controller_is_refused_before_anything_runs(
    rehearsal: Rehearsal, s3_config: S3Config, monkeypatch: pytest.MonkeyPatch
) -> None:
    from mnistkit.rehearsal.jobs import JOB_CONTROLLERS

    monkeypatch.delitem(JOB_CONTROLLERS, "TrainJob")  # as before the TrainJob controller existed
    p = ManifestParams.from_s3(s3_config).with_parameters({"job-name": "mnist-tj", "trainer": "trainjob"})
    with pytest.raises(RehearsalError, match="creates a TrainJob, which the rehearsal does not run yet"):
        rehearse_training(rehearsal, s3_config, p, timeout=10, say=lambda _: None)
    assert rehearsal.store.list() == []


def test_rehearse_refuses_exposed_trainer_ports_unless_told(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    from mnistkit.cli import main
    from mnistkit.engines import exposure

    monkeypatch.delenv(exposure.ALLOW_ENV, raising=False)
    monkeypatch.setattr(exposure, "exposed_addresses", lambda: ["192.0.2.7"])
    assert main(["rehearse", "-p", "tf-worker=1"]) == 1
    err = capsys.readouterr().err
    assert "192.0.2.7" in err and "--allow-exposed-workers" in err and "Traceback" not in err


def test_pod_env_volumes_and_a_missing_secret(rehearsal: Rehearsal, tmp_path: Path) -> None:
    import base64

    out = tmp_path / "env"
    rehearsal.store.create(
        {
            "apiVersion": "v1",
            "kind": "ConfigMap",
            "metadata": {"name": "cfg", "namespace": NS},
            "data": {"colour": "green"},
        }
    )
    rehearsal.store.create(
        {
            "apiVersion": "v1",
            "kind": "Secret",
            "metadata": {"name": "creds", "namespace": NS},
            "data": {"key": base64.b64encode(b"s3cr3t").decode()},
        }
    )
    env = [
        {"name": "PLAIN", "value": "v"},
        {"name": "COLOUR", "valueFrom": {"configMapKeyRef": {"name": "cfg", "key": "colour"}}},
        {"name": "KEY", "valueFrom": {"secretKeyRef": {"name": "creds", "key": "key"}}},
        {"name": "POD", "valueFrom": {"fieldRef": {"fieldPath": "metadata.name"}}},
        {"name": "TEAM", "valueFrom": {"fieldRef": {"fieldPath": "metadata.labels['team']"}}},
        {"name": "IP", "valueFrom": {"fieldRef": {"fieldPath": "status.podIP"}}},
    ]
    script = f'echo "$PLAIN $COLOUR $KEY $POD $TEAM $IP" > {out}; touch /scratch/x; ls /scratch >> {out}'
    pod = {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": "p1", "namespace": NS, "labels": {"team": "a"}},
        "spec": {
            "restartPolicy": "Never",
            "volumes": [{"name": "s", "emptyDir": {}}],
            "initContainers": [{"name": "first", "image": SH, "command": ["/bin/sh", "-c", f"echo init > {out}.init"]}],
            "containers": [
                {
                    "name": "main",
                    "image": SH,
                    "command": ["/bin/sh", "-c", script],
                    "env": env,
                    "volumeMounts": [{"name": "s", "mountPath": "/scratch"}],
                }
            ],
        },
    }
    rehearsal.store.create(pod)
    done = rehearsal.wait("Pod", NS, "p1", lambda o: o.get("status", {}).get("phase") in ("Succeeded", "Failed"), 30)
    assert done["status"]["phase"] == "Succeeded"
    assert out.read_text().split("\n")[:2] == ["v green s3cr3t p1 a 127.0.0.1", "x"]
    assert Path(f"{out}.init").read_text() == "init\n" and not Path("/scratch").exists()
    bad = {
        **pod,
        "metadata": {"name": "p2", "namespace": NS},
        "spec": {
            **pod["spec"],
            "initContainers": [],
            "containers": [
                {
                    **pod["spec"]["containers"][0],
                    "env": [{"name": "K", "valueFrom": {"secretKeyRef": {"name": "nope", "key": "key"}}}],
                }
            ],
        },
    }
    rehearsal.store.create(bad)
    st = rehearsal.wait("Pod", NS, "p2", lambda o: bool(o.get("status", {}).get("reason")), 30)["status"]
    assert st["phase"] == "Pending" and st["reason"] == "CreateContainerConfigError"
    assert st["message"] == 'env K: secret "nope" not found'


# ---- the training operator --------------------------------------------------------------------------
def test_chief_and_worker_get_the_operators_tf_config(rehearsal: Rehearsal, tmp_path: Path) -> None:
    out = tmp_path / "tf-config"
    out.mkdir()
    script = f'echo "$TF_CONFIG" > {out}/$HOSTNAME; echo "$HOSTNAME done"'
    # The job follows its Chief (a finished Chief ends it and stops running workers): the chief waits here.
    chief = f"while [ ! -e {out}/tfc-worker-0 ]; do sleep 0.1; done; {script}"
    rehearsal.store.create(_tfjob("tfc", chief, script))
    job = rehearsal.wait("TFJob", NS, "tfc", _finished, 60)
    assert _types(job) == [("Created", "True"), ("Running", "False"), ("Succeeded", "True")] or _types(job) == [
        ("Created", "True"),
        ("Succeeded", "True"),
    ]
    assert job["status"]["replicaStatuses"] == {"Chief": {"succeeded": 1}, "Worker": {"succeeded": 1}}
    assert [c["message"] for c in job["status"]["conditions"]][-1] == f"TFJob {NS}/tfc successfully completed."
    chief = json.loads((out / "tfc-chief-0").read_text())
    worker = json.loads((out / "tfc-worker-0").read_text())
    assert list(chief) == ["cluster", "task", "environment"] and chief["environment"] == "cloud"
    assert chief["task"] == {"type": "chief", "index": 0} and worker["task"] == {"type": "worker", "index": 0}
    assert chief["cluster"] == worker["cluster"] and sorted(chief["cluster"]) == ["chief", "worker"]
    addresses = chief["cluster"]["chief"] + chief["cluster"]["worker"]
    assert all(re.fullmatch(r"127\.0\.0\.1:\d+", a) for a in addresses) and len(set(addresses)) == 2
    pod = rehearsal.store.get("Pod", NS, "tfc-chief-0")
    assert pod is not None
    labels = pod["metadata"]["labels"]
    assert (
        labels["training.kubeflow.org/replica-type"] == "chief" and labels["training.kubeflow.org/job-role"] == "master"
    )
    assert rehearsal.store.get("Service", NS, "tfc-worker-0") is not None
    assert "tfc-chief-0 done" in rehearsal.logs(NS, "tfc-chief-0")


def test_exit_code_policy_fails_on_1_to_127_and_cleans_running_pods(rehearsal: Rehearsal) -> None:
    rehearsal.store.create(_tfjob("bad", "sleep 60", "exit 3"))
    job = rehearsal.wait("TFJob", NS, "bad", _finished, 60)
    assert ("Failed", "True") in _types(job)
    assert job["status"]["conditions"][-1]["message"] == 'job "bad" is failing because "Worker" replica(s) failed.'
    assert job["status"]["replicaStatuses"]["Worker"] == {"failed": 1}
    # cleanPodPolicy Running: the running chief goes, the failed worker stays for its logs
    rehearsal.wait("TFJob", NS, "bad", lambda _: rehearsal.store.get("Pod", NS, "bad-chief-0") is None, 30)
    assert rehearsal.store.get("Pod", NS, "bad-worker-0") is not None


def test_exit_128_and_up_restarts_the_pod_until_the_backoff_limit(rehearsal: Rehearsal, tmp_path: Path) -> None:
    marker = tmp_path / "killed-once"
    once = f"if [ -e {marker} ]; then exit 0; fi; touch {marker}; kill -9 $$"
    rehearsal.store.create(_tfjob("flaky", once, None, backoff=2))
    job = rehearsal.wait("TFJob", NS, "flaky", _finished, 60)
    # Restarting was replaced by Running when the new pod ran (filterOutCondition), then Succeeded
    assert (
        _types(job)[-1] == ("Succeeded", "True")
        and rehearsal.controllers["TFJob"].restarts[job["metadata"]["uid"]] == 1
    )
    rehearsal.store.create(_tfjob("doomed", "kill -9 $$", None, backoff=2))
    job = rehearsal.wait("TFJob", NS, "doomed", _finished, 90)
    assert (
        job["status"]["conditions"][-1]["message"]
        == "Job doomed has failed because it has reached the specified backoff limit"
    )
    assert rehearsal.controllers["TFJob"].restarts[job["metadata"]["uid"]] == 2


# ---- the Argo interpreter ----------------------------------------------------------------------------
def _sh_template(name: str, script: str, **extra: Any) -> dict[str, Any]:
    return {"name": name, "container": {"image": SH, "command": ["/bin/sh", "-c", script]}, **extra}


def test_workflow_steps_when_outputs_retries_and_exit_handler(rehearsal: Rehearsal, tmp_path: Path) -> None:
    marker, seen = tmp_path / "tried", tmp_path / "seen"
    cm = {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "cfg"}, "data": {"colour": "green"}}
    wf = {
        "apiVersion": "argoproj.io/v1alpha1",
        "kind": "Workflow",
        "metadata": {"name": "wf1", "namespace": NS},
        "spec": {
            "entrypoint": "main",
            "onExit": "bye",
            "arguments": {"parameters": [{"name": "n", "value": "2"}]},
            "templates": [
                {
                    "name": "main",
                    "steps": [
                        [{"name": "make", "template": "make"}],
                        [
                            {"name": "skipped", "template": "fail", "when": "{{workflow.parameters.n}} == 0"},
                            {"name": "flaky", "template": "flaky"},
                        ],
                        [
                            {
                                "name": "use",
                                "template": "use",
                                "arguments": {
                                    "parameters": [
                                        {"name": "colour", "value": "{{steps.make.outputs.parameters.colour}}"}
                                    ]
                                },
                            }
                        ],
                        [{"name": "fail", "template": "fail"}],
                    ],
                },
                {
                    "name": "make",
                    "resource": {"action": "create", "manifest": json.dumps(cm)},
                    "outputs": {"parameters": [{"name": "colour", "valueFrom": {"jsonPath": "{.data.colour}"}}]},
                },
                _sh_template(
                    "flaky", f"if [ -e {marker} ]; then exit 0; fi; touch {marker}; exit 1", retryStrategy={"limit": 2}
                ),
                {
                    **_sh_template("use", f"echo {{{{inputs.parameters.colour}}}} > {seen}"),
                    "inputs": {"parameters": [{"name": "colour"}]},
                },
                _sh_template("fail", "exit 7"),
                {"name": "bye", "steps": [[{"name": "report", "template": "report"}]]},
                {
                    "name": "report",
                    "container": {
                        "image": SH,
                        "command": ["/bin/sh", "-c", f"echo $S > {seen}.exit"],
                        "env": [{"name": "S", "value": "{{workflow.status}}"}],
                    },
                },
            ],
        },
    }
    rehearsal.store.create(wf)
    done = rehearsal.wait("Workflow", NS, "wf1", lambda o: (o.get("status") or {}).get("phase") in DONE, 60)
    assert done["status"]["phase"] == "Failed" and done["status"]["message"] == "Error (exit code 7)"
    nodes = {n["displayName"]: n for n in done["status"]["nodes"].values()}
    assert nodes["skipped"]["phase"] == "Skipped" and nodes["skipped"]["message"] == "when '2 == 0' evaluated false"
    assert nodes["flaky"]["phase"] == "Succeeded" and marker.exists()
    assert seen.read_text().strip() == "green"
    assert Path(f"{seen}.exit").read_text().strip() == "Failed"
    assert nodes["report"]["phase"] == "Succeeded"


def test_a_workflow_that_outlives_the_timeout_is_a_clear_error(rehearsal: Rehearsal) -> None:
    from mnistkit.rehearsal.run import _follow

    wf = {
        "apiVersion": "argoproj.io/v1alpha1",
        "kind": "Workflow",
        "metadata": {"name": "long", "namespace": NS},
        "spec": {"entrypoint": "sleep", "templates": [_sh_template("sleep", "sleep 60")]},
    }
    rehearsal.store.create(wf)
    with pytest.raises(RehearsalError, match=r"workflow long did not finish within 1 s \(--timeout\)"):
        _follow(rehearsal, NS, "long", 1, lambda _: None)


def test_workflow_deadline_fails_it_and_the_exit_handler_still_runs(rehearsal: Rehearsal, tmp_path: Path) -> None:
    seen = tmp_path / "exit"
    wf = {
        "apiVersion": "argoproj.io/v1alpha1",
        "kind": "Workflow",
        "metadata": {"name": "slow", "namespace": NS},
        "spec": {
            "entrypoint": "main",
            "onExit": "bye",
            "activeDeadlineSeconds": 2,
            "templates": [
                {"name": "main", "steps": [[{"name": "sleep", "template": "sleep"}]]},
                _sh_template("sleep", "sleep 60"),
                _sh_template("bye", f"echo {{{{workflow.status}}}} > {seen}"),
            ],
        },
    }
    t0 = time.monotonic()
    rehearsal.store.create(wf)
    done = rehearsal.wait("Workflow", NS, "slow", lambda o: (o.get("status") or {}).get("phase") in DONE, 60)
    assert done["status"]["phase"] == "Failed" and done["status"]["message"] == "Step exceeded its deadline"
    assert seen.read_text().strip() == "Failed" and time.monotonic() - t0 < 30


# ---- model-train with a failing trainer ----------------------------------------------------------------
def test_a_failing_trainer_fails_model_train_and_delete_leaves_nothing(
    rehearsal: Rehearsal, s3_config: S3Config
) -> None:
    """The real trainer exits with its error code (no data), the TFJob fails, the workflow turns Failed long
    before its deadline, the exit handler's cleanup and report run, and deleting the workflow removes all."""
    p = ManifestParams.from_s3(s3_config).with_parameters(
        {
            "job-name": "mnist-nodata",
            "namespace": NS,
            "tf-worker": "1",
            "model-type": "small",
            "s3-data-url": f"s3://{s3_config.bucket}/nothing-here",
        }
    )
    seen: dict[str, float] = {}  # first moment each event was written to the store

    def watch(event: str, obj: dict[str, Any]) -> None:
        phase = (obj.get("status") or {}).get("phase")
        if obj["kind"] == "Pod" and phase == "Failed" and "tensorflow" in str(obj["spec"]):
            seen.setdefault("trainer_failed", time.monotonic())
        if obj["kind"] == "Workflow" and phase == "Failed":
            seen.setdefault("workflow_failed", time.monotonic())

    rehearsal.store.listeners.append(watch)  # type: ignore[attr-defined]
    outcome = rehearse_training(rehearsal, s3_config, p, timeout=300, say=lambda _: None)
    wf = outcome.workflow
    assert outcome.phase == "Failed", wf["status"]
    nodes = {n["displayName"]: n for n in wf["status"]["nodes"].values()}
    assert nodes["train-model"]["phase"] == "Failed"
    assert "failure condition" in nodes["train-model"]["message"]
    assert nodes["cleanup"]["phase"] == "Succeeded" and nodes["report"]["phase"] == "Failed"  # report exits 1
    assert "serve-model" not in nodes  # the steps after a failed group never start
    assert wf["status"]["message"] == nodes["train-model"]["message"]
    job = rehearsal.store.get("TFJob", NS, "mnist-nodata")
    assert job is not None and ("Failed", "True") in _types(job)
    pod = rehearsal.store.get("Pod", NS, "mnist-nodata-chief-0") or rehearsal.store.get(
        "Pod", NS, "mnist-nodata-worker-0"
    )
    assert pod is not None
    code = pod["status"]["containerStatuses"][0]["state"]["terminated"]["exitCode"]
    assert 1 <= code <= 127 and "trainer: error:" in rehearsal.logs(NS, pod["metadata"]["name"])
    deadline = p.train_deadline_seconds + 1800
    to_failed = seen["workflow_failed"] - seen["trainer_failed"]
    steps = sum(n["phase"] != "Skipped" for n in wf["status"]["nodes"].values() if n["type"] == "Pod")
    print(
        f"FIGURE rehearsal_failure steps_run={steps} trainer_exit_code={code} failure_to_failed_s={to_failed:.2f} "
        f"submit_to_failed_s={outcome.seconds:.1f} deadline_s={deadline}"
    )
    assert 0 <= to_failed < 60 and outcome.seconds < 240 < deadline
    pids = [pid for run in rehearsal.kubelet.runs.values() for pid in (p.pid for p in run.procs.values())]
    rehearsal.store.delete("Workflow", NS, "mnist-nodata")
    assert [o["kind"] for o in rehearsal.store.list(namespace=NS)] == ["Secret"]  # everything else went with it
    rehearsal.reconcile_once()
    deadline_t = time.monotonic() + 30
    while time.monotonic() < deadline_t and any(_alive(pid) for pid in pids):
        time.sleep(0.2)
    assert not any(_alive(pid) for pid in pids)


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return not Path(f"/proc/{pid}/stat").exists() or Path(f"/proc/{pid}/stat").read_text().split()[2] != "Z"


# ---- the whole path, as a user runs it ------------------------------------------------------------------
@pytest.mark.slow
def test_rehearse_trains_chief_and_worker_then_serves_what_predict_asks(s3_env: S3Config, tmp_path: Path) -> None:
    from mnistkit.cli import main

    assert main(["data", "upload"]) == 0  # s3://<bucket>/data/mnist, with the seed's variables
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    args = ["-p", "tf-worker=1", "-p", "model-train-steps=40", "-p", "model-type=small", "-p", "model-seed=7"]
    args += ["--job-name", "mnist-rehearsed", "--deploy", "--workdir", str(tmp_path / "w"), "--timeout", "500"]
    t0 = time.monotonic()
    with rehearse_deploy(args, env, tmp_path) as run:
        out = run.output
        trained_s = float(re.search(r": Succeeded in (\d+) s", out).group(1))  # type: ignore[union-attr]
        export = f"s3://{s3_env.bucket}/models/mnist-rehearsed/export/mnist"
        assert f"export: {export}/1/" in out
        pods = tmp_path / "w" / "pods" / "kubeflow"
        chief, worker = (pods / f"mnist-rehearsed-{r}-0" / "tensorflow.log" for r in ("chief", "worker"))
        # a Chief and a Worker trained together from the operator's TF_CONFIG; -p model-seed reached them
        assert re.search(rf"chief 0: {READY_LINE} \(2 worker\(s\)\).* seed=7", chief.read_text())
        assert "exported version 1" in chief.read_text()
        assert re.search(rf"worker 0: {READY_LINE} \(2 worker\(s\)\).* seed=7", worker.read_text())
        assert "epoch 1/1" in worker.read_text()
        fetch = next(pods.glob("mnist-rehearsed-serving-*/fetch-model.log")).read_text()
        assert f"copying version 1 from {export}/1/ to " in fetch
        answer = predict(run.port, env, tmp_path, "--test-image", "3")
        assert answer.returncode == 0, answer.stderr
        assert re.search(r"Your model says the above number is\.\.\. \d!", answer.stdout)
        ran, skipped = (len(re.findall(rf"^  +{icon} ", out, re.MULTILINE)) for icon in ("✔", "○"))  # both workflows
        assert ran >= 9 and not re.search(r"^ +✖ ", out, re.MULTILINE)
        print(
            f"FIGURE rehearsal_success steps_succeeded={ran} steps_skipped={skipped} train_wall_s={trained_s:.0f} "
            f"to_serving_s={time.monotonic() - t0:.0f}"
        )
    assert run.returncode == 0, run.rest[0][-2000:]
    # the secret key reached the pods through the Secret only: never in the output or any file written
    written = [f for f in (tmp_path / "w").rglob("*") if f.is_file() and f.stat().st_size < 5_000_000]
    assert s3_env.secret_access_key not in out + run.rest[0]
    assert not [f for f in written if s3_env.secret_access_key in f.read_text(errors="replace")]


# ---- the rehearsal as the controller behind the Kubernetes API double -----------------------------------
def test_cluster_commands_against_a_workflow_that_really_ran(
    tmp_path: Path, s3_env: S3Config, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """``secret``, ``submit --watch``, ``get``, ``logs``, ``deploy`` and ``delete`` through the real ``kubernetes`` client,
    with the rehearsal (not a script) deciding the phases: the trainer really ran and failed (no data)."""
    from helpers.k8s_double import DoubleStore, K8sDouble

    from mnistkit.cli import main

    with K8sDouble() as k8s, Rehearsal(tmp_path / "r", store=DoubleStore(k8s), poll=0.2) as r:
        k8s.log_source = lambda ns, pod: r.logs(ns, pod)
        config = k8s.kubeconfig(tmp_path / "config", NS)
        monkeypatch.delenv("KUBERNETES_SERVICE_HOST", raising=False)
        kc = ["--kubeconfig", str(config)]
        assert main(["secret", *kc]) == 0
        bad = f"s3-data-url=s3://{s3_env.bucket}/nothing-here"
        t0 = time.monotonic()
        assert main(["submit", *kc, "--job-name", "mnist-ran", "-p", "tf-worker=1", "-p", bad, "--watch"]) == 1
        watched = capsys.readouterr().out
        assert "mnist-ran: Running" in watched and "mnist-ran: Failed" in watched
        with capsys.disabled():
            print(f"FIGURE rehearsal_double submit_watch_to_failed_s={time.monotonic() - t0:.1f}")
        assert main(["get", *kc, "mnist-ran"]) == 0
        got = capsys.readouterr().out
        assert "Status:     Failed" in got and re.search(r"train-model\s+Failed\s+failure condition", got)
        assert re.search(r"train-model-single\s+Skipped", got) and re.search(r"report\s+Failed", got)
        assert main(["logs", *kc, "mnist-ran"]) == 0
        logs = capsys.readouterr().out
        # the replica that failed first stays for its logs; the other may still have been running (cleaned up)
        assert re.search(r"\[(chief|worker)-0\] trainer: error: S3 download failed", logs), logs
        # deploy: model-deploy (from its WorkflowTemplate) waits for the training, which Failed: so does it
        assert main(["deploy", *kc, "mnist-ran"]) == 0
        capsys.readouterr()
        deployed = r.wait(
            "Workflow", NS, "mnist-ran-deploy", lambda o: (o.get("status") or {}).get("phase") in DONE, 60
        )
        assert deployed["status"]["phase"] == "Failed"
        assert main(["get", *kc, "mnist-ran-deploy"]) == 0
        assert re.search(r"wait-for-training\s+Failed\s+failure condition", capsys.readouterr().out)
        assert main(["delete", *kc, "mnist-ran"]) == 0
        capsys.readouterr()
        left = sorted(o["kind"] for _, o in k8s.all_objects() if o["metadata"].get("namespace") == NS)
        assert left == ["Secret", "WorkflowTemplate"], left  # both shared by every job of the namespace
