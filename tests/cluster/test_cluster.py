"""The cluster path over HTTP: the real ``kubernetes`` client against the in-process API double.

End to end (submit -> watch -> Succeeded/Failed -> logs -> teardown) and faults (lost create response,
410 Gone during a watch, cut watch streams, a failed TFJob). Figures are printed as ``FIGURE ...`` lines.
"""

from __future__ import annotations

import queue
import socket
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from helpers.k8s_double import PODS, TFJOB, WF, FakeArgo, Fault, K8sDouble
from mnistkit.cluster.client import ClusterClient
from mnistkit.cluster.watch import WatchStats
from mnistkit.config import S3Config, TrainConfig
from mnistkit.errors import ClusterError, ConfigError
from mnistkit.manifests import ManifestParams

NS = "kubeflow-user-jane"


@pytest.fixture()
def k8s() -> Iterator[K8sDouble]:
    with K8sDouble() as double:
        yield double


@pytest.fixture()
def client(k8s: K8sDouble) -> ClusterClient:
    from kubernetes import client as k

    return ClusterClient(k.ApiClient(k8s.configuration()), NS)


def _params(client: ClusterClient, job: str, **extra: str) -> ManifestParams:
    return client.params_for(ManifestParams(), job_name=job, **extra)


def _later(fn: Any, delay: float = 0.1, k8s: K8sDouble | None = None) -> threading.Thread:
    """Play the controller in the background while the test blocks in the client.

    With ``k8s``, wait until the client has opened a watch first, so what the test checks (a phase seen
    on the way, a reconnect, a 410) cannot be skipped by a slow start on a busy machine.
    """
    def run() -> None:
        deadline = time.monotonic() + 20
        while k8s is not None and time.monotonic() < deadline:
            if any(m == "GET" and "watch=true" in p.lower() for m, p in list(k8s.requests)):
                break
            time.sleep(0.02)
        time.sleep(delay)
        fn()

    t = threading.Thread(target=run, daemon=True)
    t.start()
    return t


# ---- end to end ---------------------------------------------------------------------------------
def test_submit_watch_succeeded_logs_teardown(k8s: K8sDouble, client: ClusterClient) -> None:
    fake = FakeArgo(k8s)
    name = client.submit(_params(client, "mnist-jane-e2e"))
    assert name == "mnist-jane-e2e"
    wf = k8s.get(WF, NS, name)
    assert wf and wf["metadata"]["labels"]["mnistkit.io/job"] == name
    params = {p["name"]: p["value"] for p in wf["spec"]["arguments"]["parameters"]}
    assert params["namespace"] == NS and params["aws-secret"] == "aws-creds"

    logs = {f"{name}-chief-0": "[trainer] epoch 1/1 loss=0.3\n[trainer] exported version 1\n",
            f"{name}-worker-0": "[trainer] worker ready\n"}
    seen: list[str] = []

    def controller() -> None:
        fake.start(NS, name, logs=logs)
        time.sleep(0.2)
        assert fake.finish_tfjob(NS, name, succeeded=True) == "succeeded"

    t = _later(controller, k8s=k8s)
    for info in client.watch(name, timeout=30):
        seen.append(info.phase)
    t.join()
    assert seen[-1] == "Succeeded" and "Running" in seen
    assert client.get(name).phase == "Succeeded"

    text = client.logs(name)
    lines = text.splitlines()
    assert lines[0] == "[chief-0] [trainer] epoch 1/1 loss=0.3" and "[worker-0] [trainer] worker ready" in lines
    assert client.logs(name, tail=1).splitlines()[0] == "[chief-0] [trainer] exported version 1"

    # model-serving=true: the serving Deployment/Service exist, TensorBoard too.
    kinds = sorted(f"{k[1]}/{o['metadata']['name']}" for k, o in k8s.all_objects(f"mnistkit.io/job={name}"))
    assert f"deployments/{name}-serving" in kinds and f"services/{name}-tb" in kinds and f"tfjobs/{name}" in kinds

    k8s.gc = False  # no garbage collector: teardown must find everything by label itself
    counts = client.delete(name)
    assert counts == {"workflows": 1, "tfjobs": 1, "trainjobs": 0, "deployments": 2, "services": 2}
    for pod in k8s.list(PODS, NS):  # (pods go with their TFJob in a real cluster)
        k8s.delete(PODS, NS, pod["metadata"]["name"])
    assert client.leftovers(name) == []
    assert k8s.all_objects(f"mnistkit.io/job={name}") == []
    print(f"FIGURE e2e_phases={'>'.join(dict.fromkeys(seen))} leftovers=0")


@pytest.mark.reliability
def test_failed_tfjob_fails_the_workflow_and_teardown_leaves_nothing(k8s: K8sDouble, client: ClusterClient) -> None:
    fake = FakeArgo(k8s)
    name = client.submit(_params(client, "mnist-jane-fail", model_serving="true"))
    fake.start(NS, name, logs={f"{name}-worker-0": "[trainer] loading data\ntrainer: error: data dir is empty\n"})
    _later(lambda: fake.finish_tfjob(NS, name, succeeded=False, failed_replica="Worker"), k8s=k8s)
    info = client.wait(name, timeout=30)
    assert info.phase == "Failed" and "failure condition" in info.message
    # The exit handler stopped the TFJob: running pods gone, the failed pod (and its log) kept.
    assert [p["metadata"]["name"] for p in k8s.list(PODS, NS)] == [f"{name}-worker-0"]
    assert "[worker-0] trainer: error: data dir is empty" in client.logs(name)
    assert k8s.get(TFJOB, NS, name)["spec"]["runPolicy"]["activeDeadlineSeconds"] == 1
    assert k8s.list(("apps", "deployments"), NS, label_selector="app.kubernetes.io/component=serving") == []
    client.delete(name)
    left = client.leftovers(name)
    print(f"FIGURE failed_tfjob_workflow_phase={info.phase} leftovers={len(left)}")
    assert left == []


# ---- faults ---------------------------------------------------------------------------------------
@pytest.mark.reliability
def test_lost_create_response_never_makes_two_workflows(k8s: K8sDouble, client: ClusterClient) -> None:
    runs = 5
    for i in range(runs):
        k8s.drop_responses.append(Fault("POST", r"/workflows$", remaining=1))
        name = client.submit(_params(client, f"mnist-jane-lost-{i}"), backoff=0.01)
        assert name == f"mnist-jane-lost-{i}"
    posts = sum(1 for m, p in k8s.requests if m == "POST" and p.split("?")[0].endswith("/workflows"))
    workflows = k8s.list(WF, NS)
    duplicates = len(workflows) - len({w["metadata"]["name"] for w in workflows})
    print(f"FIGURE lost_create_runs={runs} creates_sent={posts} workflows={len(workflows)} duplicates={duplicates}")
    assert posts == 2 * runs  # each create was retried once...
    assert len(workflows) == runs and duplicates == 0  # ...and still made exactly one workflow


def test_a_taken_job_name_is_a_clear_error(k8s: K8sDouble, client: ClusterClient) -> None:
    client.submit(_params(client, "mnist-jane-taken"))
    with pytest.raises(ClusterError) as err:
        client.submit(_params(client, "mnist-jane-taken"))
    assert "taken" in str(err.value) and "--job-name mnist-" in str(err.value)
    assert err.value.field == "job_name"
    assert len(k8s.list(WF, NS)) == 1


@pytest.mark.reliability
def test_watch_survives_410_gone_and_misses_no_terminal_state(k8s: K8sDouble, client: ClusterClient) -> None:
    fake = FakeArgo(k8s)
    name = client.submit(_params(client, "mnist-jane-gone"))
    fake.start(NS, name)
    stats = WatchStats()

    def finish_while_history_is_lost() -> None:
        with k8s.lock:  # the terminal event is compacted away before any watcher can see it
            fake._phase(NS, name, "Succeeded")
            k8s.compact()

    _later(finish_while_history_is_lost, 0.2, k8s=k8s)
    info = client.wait(name, timeout=30, stats=stats)
    print(f"FIGURE watch_410_relists={stats.relists} server_410s={k8s.watch_410s} final={info.phase} missed=0")
    assert info.phase == "Succeeded"
    assert stats.relists >= 1 and k8s.watch_410s >= 1


@pytest.mark.reliability
def test_watch_reconnects_after_cut_streams(k8s: K8sDouble, client: ClusterClient) -> None:
    fake = FakeArgo(k8s)
    name = client.submit(_params(client, "mnist-jane-cut"))
    k8s.cut_watches_after = 1  # every watch stream dies after one event
    stats = WatchStats()
    phases: list[str] = []

    def controller() -> None:
        fake.start(NS, name)
        for _ in range(3):  # a few MODIFIED events (status churn) before the end
            time.sleep(0.1)
            k8s.update(WF, NS, name, lambda o: o["status"].__setitem__("progress", "1/2"))
        time.sleep(0.1)
        fake.finish_tfjob(NS, name, succeeded=True)

    _later(controller, k8s=k8s)
    phases = [i.phase for i in client.watch(name, timeout=30, stats=stats)]
    print(f"FIGURE watch_reconnects={stats.reconnects} final={phases[-1]}")
    assert phases[-1] == "Succeeded" and stats.reconnects >= 1


# ---- doctor, secret, port-forward -------------------------------------------------------------------
def _controllers(k8s: K8sDouble, ready: int = 1) -> None:
    for ns, name in (("argo", "workflow-controller"), ("kubeflow", "training-operator")):
        k8s.create(("apps", "deployments"), ns, {"metadata": {"name": name}, "spec": {}, "status": {"readyReplicas": ready}})


def test_doctor_all_green_then_says_what_is_missing(k8s: K8sDouble, client: ClusterClient) -> None:
    from mnistkit.cluster.doctor import doctor, format_report

    _controllers(k8s)
    k8s.create(("", "serviceaccounts"), NS, {"metadata": {"name": "mnistkit-workflow"}})
    k8s.create(("", "secrets"), NS, {"metadata": {"name": "aws-creds"}, "data": {}})
    checks = doctor(client)
    assert all(c.ok for c in checks), format_report(checks)
    assert "all checks passed" in format_report(checks)

    k8s.crds.discard("tfjobs.kubeflow.org")
    k8s.denied |= {("", "pods/log", "get"), ("argoproj.io", "workflows", "create")}
    k8s.delete(("", "secrets"), NS, "aws-creds")
    report = format_report(doctor(client))
    print(report)
    assert "[FAIL] CRD tfjobs.kubeflow.org: not installed" in report and "training operator" in report
    assert "you may not: create workflows.argoproj.io, get pods/log" in report
    assert "[FAIL] Secret aws-creds: missing" in report
    # Neither training API (TFJob, TrainJob) is installed: both CRDs FAIL, each with its install command.
    assert "[FAIL] CRD trainjobs.trainer.kubeflow.org: not installed" in report
    assert "4 problem(s) found" in report


def test_doctor_on_an_unreachable_server_says_so() -> None:
    from kubernetes import client as k

    from mnistkit.cluster.doctor import doctor
    from mnistkit.embedded_s3 import free_port

    cfg = k.Configuration()
    cfg.host = f"http://127.0.0.1:{free_port()}"
    cfg.retries = 0
    checks = doctor(ClusterClient(k.ApiClient(cfg), "x"))
    assert len(checks) == 1 and checks[0].ok is False and "cannot reach" in checks[0].detail


CANARY = "canary-secret-value-9d8c7b"


def test_secret_from_s3config_never_leaks(k8s: K8sDouble, client: ClusterClient,
                                          capsys: pytest.CaptureFixture[str]) -> None:
    s3 = S3Config(endpoint_url="http://minio:9000", use_https=False, access_key_id="AKIAX", secret_access_key=CANARY)
    assert client.ensure_secret(s3) == "created"
    assert client.ensure_secret(s3) == "updated"
    stored = k8s.get(("", "secrets"), NS, "aws-creds")
    import base64

    assert stored and base64.b64decode(stored["data"]["awsSecretAccessKey"]).decode() == CANARY
    k8s.denied.add(("", "secrets", "create"))
    with pytest.raises(ClusterError) as err:
        client.ensure_secret(s3, name="other")
    assert "403" in str(err.value) and "other" in str(err.value) and err.value.field == "secret"
    out = capsys.readouterr()
    assert CANARY not in str(err.value) and CANARY not in repr(err.value) and CANARY not in out.out + out.err


def test_port_forward_names_the_missing_pod(k8s: K8sDouble, client: ClusterClient) -> None:
    from mnistkit.cluster.portforward import find_pod

    with pytest.raises(ClusterError, match="no running tensorboard pod for job 'mnist-x'"):
        find_pod(client, "mnist-x", "tensorboard")
    k8s.create(PODS, NS, {"metadata": {"name": "mnist-x-tb-abc", "labels": {
        "mnistkit.io/job": "mnist-x", "app.kubernetes.io/component": "tensorboard"}}, "status": {"phase": "Running"}})
    assert find_pod(client, "mnist-x", "tensorboard") == "mnist-x-tb-abc"


@pytest.mark.parametrize("server", ["tfserving", "mnistkit"])
def test_port_forward_to_serving_picks_the_deployments_pod_not_kserves(
    k8s: K8sDouble, client: ClusterClient, server: str
) -> None:
    """Both rendered: KServe's predictor pod (the InferenceService's labels, copied) sorts first by name, yet
    port-forward's ``serving`` is the Deployment's pod, which listens on 8501/8500."""
    from dataclasses import replace

    from helpers.kserve import predictor_pod_labels
    from mnistkit.cluster.portforward import find_pod
    from mnistkit.manifests import all_manifests

    params = replace(ManifestParams().with_parameters({"namespace": NS, "serving-server": server}), job_name="mnist-x")
    rendered = all_manifests(params)
    deployment_pod = rendered["serving-deployment.yaml"]["spec"]["template"]["metadata"]["labels"]
    for name, labels in (("mnist-x-predictor-7d9f-abc", predictor_pod_labels(rendered["inferenceservice.yaml"])),
                         ("mnist-x-serving-5c4b-xyz", deployment_pod)):
        k8s.create(PODS, NS, {"metadata": {"name": name, "labels": labels}, "status": {"phase": "Running"}})
    assert find_pod(client, "mnist-x", "serving") == find_pod(client, "mnist-x", "serving-grpc") == (
        "mnist-x-serving-5c4b-xyz")


def test_port_forward_to_an_api_server_gone_away_cannot_reach_it_and_closes_the_connection(
    k8s: K8sDouble, client: ClusterClient
) -> None:
    """The client turns a failed WebSocket connection into ApiException(status=0): not an answer from the server.
    The local connection that asked for it is closed, not left hanging."""
    from mnistkit.cluster.portforward import forward

    k8s.create(PODS, NS, {"metadata": {"name": "mnist-x-tb-1", "labels": {
        "mnistkit.io/job": "mnist-x", "app.kubernetes.io/component": "tensorboard"}}, "status": {"phase": "Running"}})
    opened: queue.Queue[int] = queue.Queue()
    raised: queue.Queue[BaseException] = queue.Queue()  # held: the frame (and a socket it forgot) stays alive

    def run() -> None:
        try:
            forward(client, "mnist-x", "tensorboard", ready=lambda port, _: opened.put(port))
        except BaseException as exc:  # noqa: BLE001 -- handed to the test, which checks what it is
            raised.put(exc)

    threading.Thread(target=run, daemon=True).start()
    port = opened.get(timeout=30)
    server = k8s.url
    k8s.stop()  # nothing listens at the API server's address any more
    with socket.create_connection(("127.0.0.1", port), timeout=30) as conn:
        exc = raised.get(timeout=30)
        assert conn.recv(1) == b""  # closed by forward (a timeout here: left open)
    assert isinstance(exc, ClusterError), repr(exc)
    assert str(exc).startswith(f"cannot reach the Kubernetes API server {server} while forwarding to pod 'mnist-x-tb-1'")
    assert "answered" not in str(exc) and exc.field == "server"


# ---- the engine and the CLI ----------------------------------------------------------------------------
def test_argo_engine_runs_a_trainconfig_as_chief_plus_workers(k8s: K8sDouble, client: ClusterClient) -> None:
    from mnistkit.engines import JobState
    from mnistkit.engines.argo import ArgoEngine

    engine = ArgoEngine(client)
    job = engine.submit(TrainConfig(workers=3, train_steps=50, model_type="small"), job_name="mnist-jane-engine")
    assert job.state() is JobState.PENDING
    assert job.model_dir == "s3://mnist/models/mnist-jane-engine"
    assert job.export_dir == "s3://mnist/models/mnist-jane-engine/export/mnist"
    fake = FakeArgo(k8s)
    tfjob = fake.start(NS, job.name)
    assert tfjob["spec"]["tfReplicaSpecs"]["Worker"]["replicas"] == 2
    assert "--tf-train-steps=50" in tfjob["spec"]["tfReplicaSpecs"]["Chief"]["template"]["spec"]["containers"][0]["args"]
    assert job.state() is JobState.RUNNING
    _later(lambda: fake.finish_tfjob(NS, job.name, succeeded=True), k8s=k8s)
    assert job.wait(timeout=30) is JobState.SUCCEEDED
    assert [j.name for j in engine.list()] == ["mnist-jane-engine"]
    assert "[chief-0]" in job.logs()
    job.delete()
    assert client.leftovers(job.name) == []


def test_stop_marks_the_job_stopped(k8s: K8sDouble, client: ClusterClient) -> None:
    from mnistkit.engines import JobState
    from mnistkit.engines.argo import ArgoEngine

    engine = ArgoEngine(client)
    job = engine.submit(TrainConfig(), job_name="mnist-jane-stop")
    job.stop()
    assert k8s.get(WF, NS, job.name)["spec"]["shutdown"] == "Stop"
    FakeArgo(k8s)._phase(NS, job.name, "Failed", "Stopped with strategy 'Stop'")
    assert job.state() is JobState.STOPPED


def _kubeconfig(k8s: K8sDouble, path: Path) -> Path:
    return k8s.kubeconfig(path, NS)


def test_train_engine_argo_submits_through_kubeconfig(k8s: K8sDouble, tmp_path: Path,
                                                      monkeypatch: pytest.MonkeyPatch,
                                                      capsys: pytest.CaptureFixture[str]) -> None:
    from mnistkit.cli import main

    monkeypatch.setenv("KUBECONFIG", str(_kubeconfig(k8s, tmp_path / "config")))
    monkeypatch.delenv("KUBERNETES_SERVICE_HOST", raising=False)
    assert main(["train", "--engine", "argo", "--workers", "2", "--train-steps", "30", "--no-wait",
                 "--job-name", "mnist-cli-train"]) == 0
    assert "submitted mnist-cli-train (argo, 2 worker(s))" in capsys.readouterr().out
    wf = k8s.get(WF, NS, "mnist-cli-train")
    params = {p["name"]: p["value"] for p in wf["spec"]["arguments"]["parameters"]}
    assert (params["tf-worker"], params["model-train-steps"], params["namespace"]) == ("1", "30", NS)


def test_cli_against_the_double_via_a_kubeconfig(k8s: K8sDouble, tmp_path: Path,
                                                  capsys: pytest.CaptureFixture[str]) -> None:
    from mnistkit.cli import main

    kubeconfig = _kubeconfig(k8s, tmp_path / "config")
    kc = ["--kubeconfig", str(kubeconfig)]
    assert main(["submit", *kc, "--job-name", "mnist-cli-1", "-p", "tf-worker=2", "-p", "model-train-steps=20"]) == 0
    assert "submitted workflow mnist-cli-1 in namespace kubeflow-user-jane" in capsys.readouterr().out
    assert main(["submit", *kc, "--job-name", "mnist-cli-1"]) == 1
    assert "is taken" in capsys.readouterr().err
    FakeArgo(k8s).start(NS, "mnist-cli-1")
    assert main(["list", *kc]) == 0
    out = capsys.readouterr().out
    assert "mnist-cli-1" in out and "Running" in out
    assert main(["get", *kc, "mnist-cli-1"]) == 0
    assert "Status:     Running" in capsys.readouterr().out
    assert main(["logs", *kc, "mnist-cli-1"]) == 0
    assert "[chief-0]" in capsys.readouterr().out
    assert main(["delete", *kc, "mnist-cli-1"]) == 0
    assert "deleted mnist-cli-1: 1 workflows" in capsys.readouterr().out  # the rest went with it (GC)
    assert main(["get", *kc, "mnist-cli-1"]) == 1
    assert "no workflow 'mnist-cli-1'" in capsys.readouterr().err
    assert main(["logs", *kc, "mnist-cli-1"]) == 1  # a job that is not there is an error, not silence
    assert "no workflow 'mnist-cli-1'" in capsys.readouterr().err
    assert main(["delete", *kc, "mnist-cli-1"]) == 0  # deleting twice is fine, and says there was nothing
    assert "nothing labelled mnistkit.io/job=mnist-cli-1" in capsys.readouterr().err


def test_deploy_serves_a_finished_workflow_and_is_torn_down_with_it(k8s: K8sDouble, client: ClusterClient) -> None:
    fake = FakeArgo(k8s)
    name = client.submit(_params(client, "mnist-jane-deploy", model_serving="false"))
    fake.start(NS, name)
    fake.finish_tfjob(NS, name, succeeded=True)
    assert k8s.list(("apps", "deployments"), NS, "app.kubernetes.io/component=serving") == []
    deploy = client.deploy(name)
    assert client.deploy(name) == deploy == "mnist-jane-deploy-deploy"  # a retry deploys once
    wt = k8s.get(("argoproj.io", "workflowtemplates"), NS, "model-deploy")
    assert wt and wt["metadata"]["namespace"] == NS
    wf = k8s.get(WF, NS, deploy)
    assert wf and wf["spec"]["workflowTemplateRef"] == {"name": "model-deploy"}
    assert wf["spec"]["arguments"]["parameters"] == [  # the training's choices (its defaults here)
        {"name": "train-workflow", "value": name},
        {"name": "serving-server", "value": "tfserving"},
        {"name": "serving-image", "value": "docker.io/tensorflow/serving:2.18.0"},
        {"name": "mnistkit-serving-image", "value": "docker.io/mnistkit/serving:0.1.0"},
    ]
    assert len(k8s.list(WF, NS)) == 2
    counts = client.delete(name)
    assert counts["workflows"] == 2 and client.leftovers(name) == []


def test_deploy_takes_the_server_and_images_from_the_training_or_from_p(k8s: K8sDouble, client: ClusterClient) -> None:
    fake = FakeArgo(k8s)
    private = {"serving_image": "registry.corp/tf/serving:2.18.0", "mnistkit_serving_image": "registry.corp/m/s:7"}
    trained = client.submit(_params(client, "mnist-jane-own", model_serving="false", serving_server="mnistkit",
                                    **private))
    fake.start(NS, trained)
    other = client.submit(_params(client, "mnist-jane-tfs", model_serving="false"))
    fake.start(NS, other)

    def args(name: str) -> dict[str, str]:
        wf = k8s.get(WF, NS, name)
        assert wf is not None
        return {a["name"]: a["value"] for a in wf["spec"]["arguments"]["parameters"]}

    assert args(client.deploy(trained)) == {  # the training's choices: its server and private-registry images
        "train-workflow": trained, "serving-server": "mnistkit",
        "serving-image": "registry.corp/tf/serving:2.18.0", "mnistkit-serving-image": "registry.corp/m/s:7"}
    chosen = args(client.deploy(other, {"serving-server": "mnistkit", "mnistkit-serving-image": "r.io/m/s:1"}))
    assert chosen == {"train-workflow": other, "serving-server": "mnistkit", "mnistkit-serving-image": "r.io/m/s:1",
                      "serving-image": "docker.io/tensorflow/serving:2.18.0"}  # -p wins; the rest: the training's
    with pytest.raises(ConfigError) as err:
        client.deploy(other, {"serving-server": "triton"})
    assert err.value.field == "serving_server"
    with pytest.raises(ClusterError, match="deploy takes the parameters serving-server, serving-image"):
        client.deploy(other, {"tf-worker": "2"})


def test_a_single_process_job_is_a_chief_only_tfjob(k8s: K8sDouble, client: ClusterClient) -> None:
    from mnistkit.engines.argo import ArgoEngine

    job = ArgoEngine(client).submit(TrainConfig(workers=1), job_name="mnist-jane-single")
    fake = FakeArgo(k8s)
    tfjob = fake.start(NS, job.name)
    assert set(tfjob["spec"]["tfReplicaSpecs"]) == {"Chief"}
    assert [p["metadata"]["name"] for p in k8s.list(PODS, NS)] == ["mnist-jane-single-chief-0"]
    assert fake.finish_tfjob(NS, job.name, succeeded=True) == "succeeded"
    assert client.get(job.name).phase == "Succeeded"


def test_argo_job_metrics_come_from_the_model_dir_on_s3(k8s: K8sDouble, client: ClusterClient) -> None:
    import json

    from mnistkit.embedded_s3 import EmbeddedS3
    from mnistkit.engines.argo import ArgoEngine

    with EmbeddedS3() as server:
        engine = ArgoEngine(client, s3=server.config)
        job = engine.submit(TrainConfig(workers=2), job_name="mnist-jane-metrics")
        assert job.model_dir == "s3://mnist/models/mnist-jane-metrics"
        assert job.metrics() == []  # nothing written yet: no metrics, no error
        rows = [{"epoch": 1, "epochs": 2, "step": 50, "loss": 0.9, "accuracy": 0.7, "val_loss": None,
                 "val_accuracy": None, "elapsed_s": 3.0},
                {"epoch": 2, "epochs": 2, "step": 100, "loss": 0.4, "accuracy": 0.9, "val_loss": 0.5,
                 "val_accuracy": 0.88, "elapsed_s": 6.0}]
        body = "".join(json.dumps(r) + "\n" for r in rows) + '{"epoch": 3, "trunc'  # a line being written
        from mnistkit import s3

        s3.make_client(server.config).put_object(Bucket="mnist", Key="models/mnist-jane-metrics/metrics.jsonl",
                                                 Body=body.encode())
        got = job.metrics()
        assert job.result() == {}
        s3.make_client(server.config).put_object(Bucket="mnist", Key="models/mnist-jane-metrics/result.json",
                                                 Body=b'{"test_accuracy": 0.97, "version": 1}')
        assert job.result()["test_accuracy"] == 0.97
    assert [(m.epoch, m.accuracy, m.val_accuracy) for m in got] == [(1, 0.7, None), (2, 0.9, 0.88)]
    FakeArgo(k8s)._phase(NS, job.name, "Failed", "child 'train-model' failed")
    assert job.message == "child 'train-model' failed"


@pytest.mark.reliability
def test_teardown_survives_lost_delete_responses(k8s: K8sDouble, client: ClusterClient) -> None:
    fake = FakeArgo(k8s)
    name = client.submit(_params(client, "mnist-jane-lostdel"))
    fake.start(NS, name)
    fake.finish_tfjob(NS, name, succeeded=True)
    k8s.gc = False  # make every kind go through its own DELETE
    for path in (r"/workflows/", r"/tfjobs/", r"/deployments/", r"/services/"):
        k8s.drop_responses.append(Fault("DELETE", path, remaining=1))
    counts = client.delete(name)
    for pod in k8s.list(PODS, NS):
        k8s.delete(PODS, NS, pod["metadata"]["name"])
    left = client.leftovers(name)
    deletes = sum(1 for m, _ in k8s.requests if m == "DELETE")
    print(f"FIGURE lost_delete_responses=4 delete_requests={deletes} leftovers={len(left)}")
    assert deletes >= 6 + 4 and sum(counts.values()) <= 6  # every lost one was sent again
    assert left == []


def test_connect_in_a_notebook_uses_the_pods_namespace(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import kubernetes.config

    from mnistkit.cluster import connect as conn
    from mnistkit.cluster import identity

    token, ns = tmp_path / "token", tmp_path / "namespace"
    token.write_text("t")
    ns.write_text("kubeflow-user-carol\n")
    monkeypatch.setattr(conn, "_TOKEN_FILE", str(token))
    monkeypatch.setattr(identity, "NAMESPACE_FILE", str(ns))
    monkeypatch.setenv("KUBERNETES_SERVICE_HOST", "10.0.0.1")
    monkeypatch.delenv("KUBECONFIG", raising=False)
    monkeypatch.setattr(kubernetes.config, "load_incluster_config", lambda: None)
    c = conn.connect()
    assert (c.namespace, c.source) == ("kubeflow-user-carol", "in-cluster")
    assert conn.connect("other").namespace == "other"


def test_connect_without_a_kubeconfig_says_what_to_do(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from mnistkit.cluster.connect import connect

    monkeypatch.delenv("KUBERNETES_SERVICE_HOST", raising=False)
    with pytest.raises(ClusterError, match="no usable Kubernetes config") as err:
        connect(kubeconfig=str(tmp_path / "missing"))
    assert err.value.field == "kubeconfig"


def test_get_shows_the_steps_not_argos_grouping_nodes(k8s: K8sDouble, client: ClusterClient) -> None:
    name = client.submit(_params(client, "mnist-jane-nodes"))
    nodes = {
        "a": {"type": "Steps", "displayName": name, "phase": "Failed"},
        "b": {"type": "StepGroup", "displayName": "[2]", "phase": "Failed"},
        "c": {"type": "Pod", "displayName": "tensorboard", "phase": "Succeeded"},
        "d": {"type": "Pod", "displayName": "train-model", "phase": "Failed", "message": "failure condition matched"},
        "e": {"type": "Skipped", "displayName": "train-model-single", "phase": "Skipped"},
    }
    k8s.update(WF, NS, name, lambda o: o.__setitem__("status", {"phase": "Failed", "nodes": nodes}))
    info = client.get(name)
    assert info.nodes == (("tensorboard", "Succeeded", ""), ("train-model", "Failed", "failure condition matched"),
                          ("train-model-single", "Skipped", ""))
    assert info.done and info.job_name == name


def test_create_aws_secret_for_the_s3_panel(k8s: K8sDouble) -> None:
    import base64
    import subprocess
    import sys

    from mnistkit.cluster.secrets import create_aws_secret

    cfg = S3Config(access_key_id="AKIAPANEL", secret_access_key=CANARY)
    assert create_aws_secret(cfg, NS, configuration=k8s.configuration()) == "aws-creds"
    stored = k8s.get(("", "secrets"), NS, "aws-creds")
    assert stored and base64.b64decode(stored["data"]["awsAccessKeyID"]).decode() == "AKIAPANEL"
    # The panel imports the module to see whether a cluster can be used: that must not load kubernetes.
    code = "import sys, mnistkit.cluster.secrets; print('kubernetes' in sys.modules)"
    assert subprocess.run([sys.executable, "-c", code], capture_output=True, text=True).stdout.strip() == "False"


def test_argo_engine_takes_s3_settings_from_the_environment(client: ClusterClient,
                                                            monkeypatch: pytest.MonkeyPatch) -> None:
    from mnistkit.engines.argo import ArgoEngine

    monkeypatch.setenv("AWS_ENDPOINT_URL", "http://minio.minio:9000")
    monkeypatch.setenv("BUCKET_NAME", "digits")
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "AKIAENV")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", CANARY)
    engine = ArgoEngine(client)
    assert engine.s3 is not None and engine.s3.bucket == "digits"
    params = engine.base.parameters()
    assert params["aws-endpoint-url"] == "http://minio.minio:9000" and params["s3-endpoint"] == "minio.minio:9000"
    assert params["s3-train-base-url"] == "s3://digits/models" and params["s3-use-https"] == "0"
    assert CANARY not in repr(params) and "AKIAENV" not in repr(params)


def test_argo_job_tensorboard_url_goes_through_the_notebook_proxy(monkeypatch: pytest.MonkeyPatch) -> None:
    from mnistkit.engines.argo import ArgoJob
    from mnistkit.manifests import ManifestParams

    params = ManifestParams(job_name="mnist-jane-1", namespace="kubeflow-user-jane")
    job = ArgoJob(None, "mnist-jane-1", params)  # type: ignore[arg-type]
    monkeypatch.delenv("NB_PREFIX", raising=False)
    monkeypatch.delenv("JUPYTERHUB_SERVICE_PREFIX", raising=False)
    assert job.tensorboard_url is None
    monkeypatch.setenv("NB_PREFIX", "/notebook/kubeflow-user-jane/nb1")
    assert job.tensorboard_url == (
        f"/notebook/kubeflow-user-jane/nb1/proxy/{params.tensorboard_name}.kubeflow-user-jane.svc.cluster.local:80/"
    )


def test_the_rendered_user_role_allows_everything_the_cli_does(k8s: K8sDouble, tmp_path: Path,
                                                               monkeypatch: pytest.MonkeyPatch,
                                                               capsys: pytest.CaptureFixture[str]) -> None:
    """Every request of every CLI command, made with exactly the rules of ``rbac-user-role.yaml``."""
    from mnistkit.cli import main
    from mnistkit.cluster.portforward import find_pod, forward
    from mnistkit.manifests import all_manifests
    from mnistkit.manifests.rbac import permissions_from_rules

    rules = all_manifests(ManifestParams().with_parameters({"namespace": NS}))["rbac-user-role.yaml"]["rules"]
    k8s.allowed = permissions_from_rules(rules)
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "AKIAUSER")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", CANARY)
    kc = ["--kubeconfig", str(_kubeconfig(k8s, tmp_path / "config"))]
    name = "mnist-rbac"
    fake = FakeArgo(k8s)  # (controllers act on the store directly, with their own permissions)
    assert main(["secret", *kc]) == 0 and main(["secret", *kc]) == 0  # create, then replace
    assert main(["submit", *kc, "--job-name", name, "-p", "model-serving=false"]) == 0
    fake.start(NS, name)
    assert main(["list", *kc]) == 0 and main(["get", *kc, name]) == 0 and main(["logs", *kc, name]) == 0
    _later(lambda: fake.finish_tfjob(NS, name, succeeded=True), k8s=k8s)
    assert main(["get", *kc, "--watch", name]) == 0
    k8s.create(PODS, NS, {"metadata": {"name": f"{name}-tb-1", "labels": {
        "mnistkit.io/job": name, "app.kubernetes.io/component": "tensorboard"}}, "status": {"phase": "Running"}})
    from kubernetes import client as k

    client = ClusterClient(k.ApiClient(k8s.configuration()), NS)
    assert find_pod(client, name, "tensorboard") == f"{name}-tb-1"
    # port-forward's WebSocket (get + create pods/portforward); no kubelet runs this pod: the dial fails, said once
    opened: queue.Queue[int] = queue.Queue()
    said: queue.Queue[str] = queue.Queue()
    stop = threading.Event()
    pf = threading.Thread(target=forward, args=(client, name, "tensorboard"), daemon=True,
                          kwargs={"stop": stop, "ready": lambda port, _: opened.put(port), "on_error": said.put})
    pf.start()
    with socket.create_connection(("127.0.0.1", opened.get(timeout=30)), timeout=30) as conn:
        assert conn.recv(1) == b""
    assert said.get(timeout=30).startswith(f"error forwarding port 6006 to pod {name}-tb-1")
    stop.set()
    pf.join(30)
    assert k8s.portforwards == 1
    k8s.create(("argoproj.io", "workflowtemplates"), NS, {"metadata": {"name": "model-deploy"}, "spec": {}})
    assert main(["deploy", *kc, name]) == 0 and main(["deploy", *kc, name]) == 0  # upgrades the old template
    client.stop(f"{name}-deploy")
    assert main(["delete", *kc, name]) == 0
    assert k8s.refused == [], f"{k8s.refused}\n{capsys.readouterr().err}"
    # doctor also looks where a namespaced Role cannot reach (the controllers), and at the Secret, which
    # the user may write but not read back: those are "unknown", never a failure.
    k8s.create(("", "serviceaccounts"), NS, {"metadata": {"name": "mnistkit-workflow"}})  # (the admin's part)
    assert main(["doctor", *kc]) == 0
    report = capsys.readouterr().out
    assert set(k8s.refused) == {("apps", "deployments", "get"), ("", "secrets", "get")}, report
    assert "[??  ] Secret aws-creds: not allowed to read it" in report and "you may not" not in report


def test_deploy_upgrades_an_outdated_model_deploy_template_once(k8s: K8sDouble, client: ClusterClient) -> None:
    from mnistkit.manifests.deploy import model_deploy_template

    wt_key = ("argoproj.io", "workflowtemplates")
    k8s.create(wt_key, NS, {"metadata": {"name": "model-deploy"}, "spec": {"entrypoint": "from-an-old-release"}})
    fake = FakeArgo(k8s)
    for job in ("mnist-jane-up1", "mnist-jane-up2"):
        client.submit(_params(client, job, model_serving="false"))
        fake.start(NS, job)
        fake.finish_tfjob(NS, job, succeeded=True)
    client.deploy("mnist-jane-up1")
    current = model_deploy_template(ManifestParams().with_parameters({"namespace": NS}))
    stored = k8s.get(wt_key, NS, "model-deploy")
    assert stored and stored["spec"] == current["spec"]  # upgraded after the 409
    def puts() -> int:
        return sum(m == "PUT" and "workflowtemplates" in p for m, p in k8s.requests)

    assert puts() == 1
    client.deploy("mnist-jane-up2")
    assert puts() == 1  # already current: left alone


def test_argo_job_steps_reach_the_monitor_in_the_order_they_ran(k8s: K8sDouble, client: ClusterClient) -> None:
    from mnistkit.engines.argo import ArgoEngine
    from mnistkit.widgets.job_monitor import JobMonitor

    job = ArgoEngine(client).submit(TrainConfig(workers=2), job_name="mnist-jane-steps")
    nodes = {
        "a": {"type": "Steps", "displayName": job.name, "phase": "Running", "startedAt": "2026-11-30T10:00:00Z"},
        "b": {"type": "Pod", "displayName": "tensorboard", "phase": "Succeeded", "startedAt": "2026-11-30T10:00:05Z"},
        "c": {"type": "Pod", "displayName": "get-workflow-info", "phase": "Succeeded",
              "startedAt": "2026-11-30T10:00:01Z"},
        "d": {"type": "Pod", "displayName": "train-model", "phase": "Running", "startedAt": "2026-11-30T10:00:09Z"},
    }
    k8s.update(WF, NS, job.name, lambda o: o.__setitem__("status", {"phase": "Running", "nodes": nodes}))
    snap = JobMonitor(job).poll()
    assert snap.state == "Running" and snap.error == ""
    assert snap.steps == (("get-workflow-info", "Succeeded", ""), ("tensorboard", "Succeeded", ""),
                          ("train-model", "Running", ""))
