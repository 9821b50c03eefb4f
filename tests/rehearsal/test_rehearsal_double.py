"""The rehearsal as the controller behind the Kubernetes API double: cluster commands against pods that really run.

``port-forward``: the double serves ``pods/<name>/portforward`` over WebSocket with the kubelet's
``v4.channel.k8s.io`` framing (``helpers/k8s_portforward.py``) and dials the loopback port the rehearsal's kubelet
gave the container port; the fast tests forward to a small HTTP server run from the trainer image's row of the
image table. The slow test goes the whole user way on a real (tiny) training: ``secret``, ``submit --watch``,
``get``, ``logs``, ``deploy``, ``port-forward`` to the rehearsed serving, ``predict`` through it, ``delete``.
(The failing-training counterpart is ``test_rehearsal.py::test_cluster_commands_against_a_workflow_that_really_ran``.)
"""

from __future__ import annotations

import re
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from helpers.k8s_double import DoubleStore, K8sDouble
from mnistkit.manifests.common import COMPONENT_LABEL, JOB_LABEL
from mnistkit.rehearsal.cluster import Rehearsal

NS = "kubeflow-user-jane"
JOB = "mnist-pf"
# Answers GET with the pod's name and the path, on the port the kubelet rewrote --port=8501 to.
_SERVER = (
    "import http.server, os, sys\n"
    "port = int(sys.argv[1].split('=')[1])\n"
    "class H(http.server.BaseHTTPRequestHandler):\n"
    "    def do_GET(self):\n"
    "        body = (os.environ['HOSTNAME'] + ' ' + self.path).encode() * int(self.headers.get('X-Repeat', '1'))\n"
    "        self.send_response(200); self.send_header('Content-Length', str(len(body))); self.end_headers()\n"
    "        self.wfile.write(body)\n"
    "    def log_message(self, *a): pass\n"
    "http.server.ThreadingHTTPServer(('127.0.0.1', port), H).serve_forever()\n"
)


def _pod(name: str, component: str, command: list[str], port: int = 8501, probe: bool = True) -> dict[str, Any]:
    container: dict[str, Any] = {
        "name": "main",
        "image": "docker.io/mnistkit/trainer:0.1.0",
        "command": command,
        "ports": [{"name": "http", "containerPort": port}],
    }
    if probe:
        container["readinessProbe"] = {"httpGet": {"path": "/ready", "port": port}}
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": name, "namespace": NS, "labels": {JOB_LABEL: JOB, COMPONENT_LABEL: component}},
        "spec": {"restartPolicy": "Always", "containers": [container]},
    }


def _ready(pod: dict[str, Any]) -> bool:
    return any(c.get("ready") for c in (pod.get("status") or {}).get("containerStatuses", []))


@pytest.fixture
def cluster(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[tuple[K8sDouble, Rehearsal, Path]]:
    monkeypatch.delenv("KUBERNETES_SERVICE_HOST", raising=False)
    with K8sDouble() as k8s, Rehearsal(tmp_path / "r", store=DoubleStore(k8s), poll=0.2) as r:
        yield k8s, r, k8s.kubeconfig(tmp_path / "config", NS)


class _PortForward:
    """``python -m mnistkit port-forward ...`` as a user runs it; ``port`` once it says where it listens."""

    def __init__(self, config: Path, *args: str) -> None:
        cmd = [sys.executable, "-m", "mnistkit", "port-forward", "--kubeconfig", str(config), *args]
        self.proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        assert self.proc.stdout is not None
        before = []  # what it printed before listening (nothing, unless a library warns)
        for line in self.proc.stdout:
            if line.startswith("forwarding http://127.0.0.1:"):
                break
            before.append(line)
        else:
            raise AssertionError("port-forward ended without listening:\n" + "".join(before))
        self.first = line
        self.port = int(line.split(":")[2].split(" ")[0])

    def rest(self) -> str:
        if self.proc.returncode is not None:
            return ""  # ended() read it all
        self.proc.terminate()
        out, _ = self.proc.communicate(timeout=30)
        return out

    def ended(self) -> str:
        """What it printed until it ended by itself (a refused forward ends it)."""
        out, _ = self.proc.communicate(timeout=60)
        return out

    def get(self, path: str, **headers: str) -> str:
        req = urllib.request.Request(f"http://127.0.0.1:{self.port}{path}", headers=headers)
        with urllib.request.urlopen(req, timeout=30) as resp:
            return str(resp.read().decode())


def test_port_forward_reaches_the_rehearsed_pod_over_the_kubelets_websocket(
    cluster: tuple[K8sDouble, Rehearsal, Path],
) -> None:
    k8s, r, config = cluster
    r.store.create(_pod(f"{JOB}-serving-1", "serving", ["python", "-c", _SERVER, "--port=8501"]))
    r.wait("Pod", NS, f"{JOB}-serving-1", _ready, 60)
    pf = _PortForward(config, JOB, "serving")
    try:
        assert f"-> {JOB}-serving-1 (serving)" in pf.first
        assert pf.get("/v1/models/mnist") == f"{JOB}-serving-1 /v1/models/mnist"
        # one WebSocket per local connection; a 2 MB answer crosses many frames intact
        t0 = time.monotonic()
        big = pf.get("/big", **{"X-Repeat": "100000"})
        big_s = time.monotonic() - t0
        assert big == f"{JOB}-serving-1 /big" * 100000
        assert k8s.portforwards == 2
        print(f"FIGURE rehearsal_port_forward connections=2 big_bytes={len(big)} big_s={big_s:.2f}")
    finally:
        out = pf.rest()
    assert "Traceback" not in out
    # the request was authorized as the API server does for a WebSocket upgrade
    assert ("GET", f"/api/v1/namespaces/{NS}/pods/{JOB}-serving-1/portforward?ports=8501") in k8s.requests


@pytest.mark.parametrize("verb", ["create", "get"])
def test_port_forward_needs_get_and_create_on_pods_portforward(
    cluster: tuple[K8sDouble, Rehearsal, Path], verb: str
) -> None:
    """The WebSocket upgrade is a GET, authorized as get; Kubernetes >= 1.35 also checks create: either alone, 403."""
    k8s, r, config = cluster
    r.store.create(_pod(f"{JOB}-tb", "tensorboard", ["python", "-c", _SERVER, "--port=6006"], 6006, probe=False))
    r.wait("Pod", NS, f"{JOB}-tb", lambda p: (p.get("status") or {}).get("phase") == "Running", 60)
    k8s.denied.add(("", "pods/portforward", verb))
    pf = _PortForward(config, JOB)  # listening comes first; the tunnel opens per connection
    try:
        with pytest.raises(OSError):  # the connection is closed, then the refusal ends port-forward
            pf.get("/")
        out = pf.ended()
    finally:
        pf.rest()
    assert pf.proc.returncode == 1, out
    assert k8s.refused == [("", "pods/portforward", verb)]
    assert k8s.portforwards == 0
    # the refused WebSocket upgrade is a 403 like any other: one sentence, not the handshake's raw text
    assert f"you are not allowed to do this in namespace '{NS}'" in out, out
    assert f"forwarding to pod '{JOB}-tb' was refused (403 Forbidden: " in out and "-+-+-" not in out, out
    assert f'cannot {verb} resource "pods/portforward"' in out and "Traceback" not in out, out


def test_nothing_listening_in_the_pod_is_said_and_the_forward_goes_on(
    cluster: tuple[K8sDouble, Rehearsal, Path], tmp_path: Path
) -> None:
    """The kubelet's error channel reaches the user (as kubectl prints it); the next connection works."""
    _, r, config = cluster
    gate = tmp_path / "listen-now"
    late = f"import os, time\nwhile not os.path.exists({str(gate)!r}): time.sleep(0.05)\n" + _SERVER
    r.store.create(_pod(f"{JOB}-tb", "tensorboard", ["python", "-c", late, "--port=6006"], 6006))
    r.wait("Pod", NS, f"{JOB}-tb", lambda p: (p.get("status") or {}).get("phase") == "Running", 60)
    pf = _PortForward(config, JOB)
    try:
        with pytest.raises(OSError):  # the tunnel closes: nothing listens on the pod's port yet
            pf.get("/")
        gate.touch()
        r.wait("Pod", NS, f"{JOB}-tb", _ready, 60)
        assert pf.get("/now") == f"{JOB}-tb /now"
    finally:
        out = pf.rest()
    said = re.search(rf"mnistkit: port-forward: error forwarding port 6006 to pod {JOB}-tb, uid [\w-]+: .*refused", out)
    assert said, out
    assert "Traceback" not in out


def test_the_double_speaks_the_v4_channel_protocol() -> None:
    """The framing itself, with a plain WebSocket client: port prefixes first, then channel byte + data."""
    import websocket

    with K8sDouble() as k8s:
        pod = _pod("p", "serving", ["true"])
        k8s.create(("", "pods"), NS, pod)
        url = k8s.url.replace("http", "ws") + f"/api/v1/namespaces/{NS}/pods/p/portforward?ports=8501,6006"
        ws = websocket.create_connection(url, subprotocols=["v5.channel.k8s.io", "v4.channel.k8s.io"], timeout=10)
        try:
            assert ws.subprotocol == "v4.channel.k8s.io"  # v5 is exec's; port-forward speaks v4
            frames = [ws.recv() for _ in range(4)]
            assert frames[:4] == [b"\x00\x35\x21", b"\x01\x35\x21", b"\x02\x76\x17", b"\x03\x76\x17"]
            # no kubelet mapped a port for this pod (no rehearsal): the dial fails, on the error channel
            error = ws.recv()
            assert error[:1] == b"\x01"
            assert error[1:].decode().startswith("error forwarding port 8501 to pod p, uid ")
        finally:
            ws.close()
        with pytest.raises(websocket.WebSocketBadStatusException) as bad:
            websocket.create_connection(url.replace("/p/", "/nope/"), timeout=10)
        assert bad.value.status_code == 404
        # only exec's subprotocol offered: refused as golang.org/x/net/websocket does, 403 and no body
        with pytest.raises(websocket.WebSocketBadStatusException) as bad:
            websocket.create_connection(url, subprotocols=["v5.channel.k8s.io"], timeout=10)
        assert bad.value.status_code == 403 and not bad.value.resp_body


# ---- the whole user way, on a real training ---------------------------------------------------------------
DONE = ("Succeeded", "Failed", "Error")
TEST_IMAGE = 0  # a test digit of the offline sample that a 40-step small model answers with confidence


@pytest.mark.slow
def test_the_user_way_through_the_api_double_on_a_real_training(
    tmp_path: Path, s3_env: Any, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """secret -> submit --watch (a Chief-only small training, train-model-single) -> get -> logs -> deploy ->
    port-forward to the rehearsed serving -> predict the right digit through it -> delete leaves nothing."""
    from mnistkit.cli import main

    job = "mnist-user"
    assert main(["data", "upload"]) == 0  # s3://<bucket>/data/mnist with the seed's variables
    monkeypatch.delenv("KUBERNETES_SERVICE_HOST", raising=False)
    with K8sDouble() as k8s, Rehearsal(tmp_path / "r", store=DoubleStore(k8s), poll=0.2) as r:
        k8s.log_source = lambda ns, pod: r.logs(ns, pod)
        config = k8s.kubeconfig(tmp_path / "config", NS)
        kc = ["--kubeconfig", str(config)]
        capsys.readouterr()
        t0 = time.monotonic()
        assert main(["secret", *kc]) == 0
        small = ["-p", "tf-worker=0", "-p", "model-type=small", "-p", "model-train-steps=40", "-p", "model-seed=7"]
        # model-serving=false: serving comes from `deploy`, as for a user who decides after looking at the run
        assert main(["submit", *kc, "--job-name", job, *small, "-p", "model-serving=false", "--watch"]) == 0
        watched = capsys.readouterr().out
        trained_s = time.monotonic() - t0
        assert f"{job}: Running" in watched and f"{job}: Succeeded" in watched, watched
        assert main(["get", *kc, job]) == 0
        got = capsys.readouterr().out
        assert "Status:     Succeeded" in got and re.search(r"train-model-single\s+Succeeded", got), got
        assert re.search(r"serve-model\s+Skipped", got) and not re.search(r"\s(Failed|Error)\s", got), got
        assert main(["logs", *kc, job]) == 0
        logs = capsys.readouterr().out
        assert re.search(r"\[chief-0\] .*exported version 1", logs), logs[-2000:]
        assert main(["deploy", *kc, job]) == 0
        capsys.readouterr()
        deployed = r.wait("Workflow", NS, f"{job}-deploy", lambda o: (o.get("status") or {}).get("phase") in DONE, 300)
        assert deployed["status"]["phase"] == "Succeeded", deployed["status"]
        r.wait("Deployment", NS, f"{job}-serving", lambda d: (d.get("status") or {}).get("readyReplicas", 0) >= 1, 300)
        serving_s = time.monotonic() - t0
        pf = _PortForward(config, job, "serving")
        try:
            predict = subprocess.run(
                [sys.executable, "-m", "mnistkit", "predict", "--port", str(pf.port), "--protocol", "rest",
                 "--test-image", str(TEST_IMAGE), "--data-dir", f"s3://{s3_env.bucket}/data/mnist"],
                capture_output=True, text=True, timeout=120, check=False,
            )  # fmt: skip
        finally:
            forwarded = pf.rest()
        assert predict.returncode == 0, predict.stderr + forwarded
        truth = re.search(r"The true label is (\d)\.", predict.stdout)
        assert truth and f"Your model says the above number is... {truth.group(1)}!" in predict.stdout, predict.stdout
        assert "(model mnist, version 1)" in predict.stdout and "Traceback" not in forwarded
        confidence = re.search(rf"\b{truth.group(1)}:(\d\.\d+)", predict.stdout.split("predictions:")[1])
        assert confidence, predict.stdout
        assert main(["delete", *kc, job]) == 0
        left = sorted(o["kind"] for _, o in k8s.all_objects() if o["metadata"].get("namespace") == NS)
        assert left == ["Secret", "WorkflowTemplate"], left  # both shared by every job of the namespace
        with capsys.disabled():
            print(
                f"\nFIGURE rehearsal_double_success submit_watch_to_succeeded_s={trained_s:.1f} "
                f"to_serving_ready_s={serving_s:.1f} predict=right p={confidence.group(1)}"
            )
