"""The panels' controllers and views, driven without a browser: fakes for the model and the engine."""

from __future__ import annotations

import io
import json
import re
import threading
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pytest
from helpers.browser import SEVEN_STROKES, render_strokes

from mnistkit.config import TrainConfig, validate_job_name
from mnistkit.drawing import to_data_url, to_png
from mnistkit.engines.base import Engine, EpochMetrics, Job, JobState
from mnistkit.errors import ClusterError, ConfigError, DataError, ServingError
from mnistkit.cluster.identity import default_job_name
from mnistkit.widgets.drawing_pad_controller import DrawingPadController, Predicted
from mnistkit.widgets.job_monitor import JobMonitor
from mnistkit.widgets.s3_panel_controller import S3PanelController
from mnistkit.widgets.training_controller import TrainingController
from helpers.paths import ROOT

SECRET = "s3cr3t-do-not-show-9f8e7d"


# ------------------------------------------------------------------------------------------ drawing pad


@dataclass(frozen=True)
class FakePrediction:
    digit: int
    probabilities: tuple[float, ...]
    model_version: int


class FakeModel:
    """Says the digit is the number of ink pixels' row of the centre of mass mod 10: deterministic, input-dependent."""

    def __init__(self) -> None:
        self.seen: list[np.ndarray] = []

    def __call__(self, images: np.ndarray) -> list[FakePrediction]:
        self.seen.append(images)
        assert images.shape[1:] == (28, 28) and images.dtype == np.float32
        out = []
        for img in images:
            digit = int(img.sum()) % 10
            probs = np.full(10, 0.02)
            probs[digit] = 0.82
            out.append(FakePrediction(digit, tuple(probs), 3))
        return out


def test_pad_controller_submits_a_drawing_and_keeps_the_result() -> None:
    model = FakeModel()
    pad = DrawingPadController(model)
    seen = []
    pad.on_change(lambda c: seen.append(c.result))
    result = pad.submit(render_strokes(SEVEN_STROKES))
    assert result is not None and pad.error == ""
    assert result.image.shape == (28, 28) and result.image.max() == pytest.approx(1.0)
    assert np.array_equal(model.seen[-1][0], result.image)  # the model saw exactly the preprocessed image
    assert result.prediction == Predicted(int(result.image.sum()) % 10, result.prediction.probabilities, 3)
    assert seen == [result]
    assert "PadResult(digit=" in repr(result) and len(repr(result)) < 80


def test_pad_controller_shows_errors_as_sentences() -> None:
    def broken(images: np.ndarray) -> list[FakePrediction]:
        raise ServingError("model server at 127.0.0.1:1 is unreachable", field="host")

    pad = DrawingPadController(broken)
    assert pad.submit(np.full((100, 100), 255, np.uint8)) is None
    assert pad.error == "the canvas is empty: draw a digit first"
    assert pad.submit(render_strokes(SEVEN_STROKES)) is None
    assert pad.error == "model server at 127.0.0.1:1 is unreachable"
    pad.clear()
    assert pad.error == "" and pad.result is None
    with pytest.raises(ConfigError, match="predictor"):
        DrawingPadController()


def test_pad_accepts_a_client_and_keras_style_probability_arrays() -> None:
    class Client:
        def predict(self, images: np.ndarray) -> np.ndarray:
            return np.tile(np.eye(10, dtype=np.float32)[4], (len(images), 1))

    pad = DrawingPadController(client=Client())
    assert pad.submit(render_strokes(SEVEN_STROKES)).prediction.digit == 4  # type: ignore[union-attr]
    wrong = DrawingPadController(lambda x: np.zeros((len(x), 3)))
    assert wrong.submit(render_strokes(SEVEN_STROKES)) is None and "expected [1, 10]" in wrong.error


def test_random_digit_sends_a_test_digit_as_is_with_its_label() -> None:
    x = np.zeros((3, 28, 28), np.uint8)
    for i in range(3):
        x[i, 5 + i : 20, 10:14] = 255
    y = np.array([1, 2, 3], np.uint8)
    model = FakeModel()
    pad = DrawingPadController(model, test_set=(x, y), seed=0)
    result = pad.random_digit()
    assert result is not None and result.label in (1, 2, 3)
    assert np.array_equal(result.image, x[result.label - 1] / 255.0)


def test_drawing_pad_widget_syncs_the_canvas_and_shows_the_answer() -> None:
    from mnistkit.widgets import DrawingPad

    pad = DrawingPad(predict=FakeModel())
    assert "export default" in pad._esm and "touch-action: none" in pad._css
    pad.image_data = to_data_url(render_strokes(SEVEN_STROKES)[..., 0])  # what the browser sends on stroke end
    assert pad.digit == pad.controller.result.prediction.digit  # type: ignore[union-attr]
    assert len(pad.probabilities) == 10 and pad.preview.startswith("data:image/png;base64,")
    assert pad.status.startswith(f"predicted {pad.digit} with 82%") and "model version 3" in pad.status
    pad._on_msg(pad, {"event": "clear"}, [])
    assert pad.digit == -1 and pad.probabilities == [] and pad.preview == ""
    pad.submit(to_png(np.zeros((10, 10))))
    assert pad.error == "the canvas is empty: draw a digit first" and pad.digit == -1


def test_drawing_pad_random_button_paints_the_digit_on_the_canvas() -> None:
    from mnistkit.widgets import DrawingPad

    x = np.zeros((1, 28, 28), np.uint8)
    x[0, 4:24, 12:16] = 255
    pad = DrawingPad(controller=DrawingPadController(FakeModel(), test_set=(x, np.array([1], np.uint8))))
    pad._on_msg(pad, {"event": "random"}, [])
    assert pad.label == 1 and pad.canvas_image.startswith("data:image/png;base64,")
    assert "true label 1" in pad.status


# --------------------------------------------------------------------------------------------- S3 panel


@pytest.fixture(scope="module")
def s3_env():
    from mnistkit.embedded_s3 import EmbeddedS3

    with EmbeddedS3(bucket="panel-test") as server:
        env = server.config.to_env()
        yield env


def _secret_free(*texts: str) -> None:
    for t in texts:
        assert SECRET not in t


def test_s3_controller_prefills_from_env_and_connects(s3_env: dict[str, str]) -> None:
    env = dict(s3_env)
    c = S3PanelController(env)
    assert c.values["bucket"] == "panel-test" and c.values["endpoint_url"] == env["AWS_ENDPOINT_URL"]
    assert c.test_connection(), c.error
    assert c.message == "connected: s3://panel-test is reachable and writable"


def test_s3_controller_uploads_with_progress(s3_env: dict[str, str]) -> None:
    from mnistkit import data, s3

    c = S3PanelController(dict(s3_env))
    x = np.zeros((20, 28, 28), np.uint8)
    y = np.arange(20, dtype=np.uint8) % 10
    calls: list[tuple[int, int]] = []
    url = c.upload_dataset(data.Dataset(x, y, x[:5], y[:5]), "data/tiny", lambda d, t: calls.append((d, t)))
    assert url == "s3://panel-test/data/tiny", c.error
    assert calls and calls[-1][0] == calls[-1][1] and [d for d, _ in calls] == sorted(d for d, _ in calls)
    keys = {k["Key"] for k in s3.list_keys(s3.make_client(c.config), "panel-test", "data/tiny")}  # type: ignore[arg-type]
    assert keys == {f"data/tiny/{name}" for name in data.FILES.values()}


def test_s3_controller_errors_never_show_the_secret(s3_env: dict[str, str]) -> None:
    env = {**s3_env, "AWS_SECRET_ACCESS_KEY": SECRET, "AWS_ENDPOINT_URL": "http://127.0.0.1:9"}
    c = S3PanelController(env)
    assert not c.test_connection()
    assert "s3://panel-test" in c.error
    _secret_free(c.error, c.message, repr(c.config))
    c.update(bucket="Bad_Bucket")
    assert c.validate() is None and "Bad_Bucket" in c.error
    c.update(bucket="panel-test", access_key_id="")
    assert c.validate() is None and c.error == "access_key_id is missing: give both keys or neither"
    bad = S3PanelController({"AWS_SECRET_ACCESS_KEY": SECRET, "S3_USE_HTTPS": "maybe"})
    assert "use_https" in bad.error and bad.values["secret_access_key"] == SECRET
    _secret_free(bad.error)


def test_kubernetes_secret_needs_a_cluster(s3_env: dict[str, str], monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("KUBECONFIG", "/nonexistent/kubeconfig")
    monkeypatch.delenv("KUBERNETES_SERVICE_HOST", raising=False)
    ok, why = S3PanelController.cluster_status()
    assert not ok and why.startswith("no cluster configured")
    c = S3PanelController(dict(s3_env))
    assert not c.create_secret("kubeflow") and c.error.startswith("no cluster configured")
    # With mnistkit.cluster.secrets present, it is the missing kubeconfig that the panel names.
    import sys
    import types

    monkeypatch.setitem(sys.modules, "mnistkit.cluster.secrets", types.ModuleType("mnistkit.cluster.secrets"))
    ok, why = S3PanelController.cluster_status()
    assert not ok and why.startswith("no cluster configured: ") and "/nonexistent/kubeconfig" in why


def test_kubernetes_secret_is_created_through_mnistkit_cluster(s3_env: dict[str, str], monkeypatch: pytest.MonkeyPatch) -> None:
    import sys
    import types

    created = []

    def create_aws_secret(cfg, namespace):  # the signature mnistkit.cluster.secrets exposes
        created.append((cfg.bucket, namespace))
        if namespace == "forbidden":
            raise ClusterError("namespace forbidden: no permission to create secrets", field="namespace", value=namespace)
        return "mnistkit-aws"

    module = types.ModuleType("mnistkit.cluster.secrets")
    module.create_aws_secret = create_aws_secret  # type: ignore[attr-defined]
    monkeypatch.setitem(sys.modules, "mnistkit.cluster.secrets", module)
    monkeypatch.setattr(S3PanelController, "cluster_status", staticmethod(lambda: (True, "cluster configured")))
    c = S3PanelController(dict(s3_env))
    assert c.create_secret("kubeflow") and c.message == "created mnistkit-aws in namespace kubeflow"
    assert not c.create_secret("forbidden") and c.error == "namespace forbidden: no permission to create secrets"
    assert created == [("panel-test", "kubeflow"), ("panel-test", "forbidden")]


def test_s3_panel_view(s3_env: dict[str, str], monkeypatch: pytest.MonkeyPatch) -> None:
    import ipywidgets as w

    from mnistkit.widgets import S3Panel

    monkeypatch.setenv("KUBECONFIG", "/nonexistent/kubeconfig")
    monkeypatch.delenv("KUBERNETES_SERVICE_HOST", raising=False)

    panel = S3Panel(env={**s3_env, "AWS_SECRET_ACCESS_KEY": SECRET})
    assert isinstance(panel.fields["secret_access_key"], w.Password)
    # the secret never goes into a widget (whose state reaches the browser and the saved notebook)
    assert panel.fields["secret_access_key"].value == "" and "from the environment" in panel.fields["secret_access_key"].placeholder
    _secret_free(json.dumps(w.Widget.get_manager_state(drop_defaults=False), default=str))
    assert panel.fields["bucket"].value == "panel-test"
    panel.fields["secret_access_key"].value = s3_env["AWS_SECRET_ACCESS_KEY"]  # moto accepts any, but keep it real
    panel.test_button.click()
    assert "connected: s3://panel-test is reachable and writable" in panel.status.value
    panel.fields["secret_access_key"].value = SECRET
    panel.fields["endpoint_url"].value = "http://127.0.0.1:9"
    panel.test_button.click()
    assert "mnistkit-error" in panel.status.value
    assert panel.fields["secret_access_key"].value == ""  # typed once, then kept only in the controller
    _secret_free(panel.status.value, repr(panel), repr(panel.config))
    assert panel.secret_button.disabled and "no cluster configured" in panel.cluster_note.value


# ------------------------------------------------------------------------------------------- training


@dataclass
class FakeJob(Job):
    """A job that advances one epoch per ``metrics()`` call until ``epochs``, or fails at ``fail_at``."""

    name: str
    config: TrainConfig
    epochs: int = 3
    fail_at: int | None = None
    _epoch: int = 0
    _state: JobState = JobState.RUNNING
    deleted: bool = False
    lock: threading.Lock = field(default_factory=threading.Lock)

    def _advance(self) -> None:
        with self.lock:
            if self._state is not JobState.RUNNING:
                return
            if self.fail_at is not None and self._epoch >= self.fail_at:
                self._state = JobState.FAILED
            elif self._epoch < self.epochs:
                self._epoch += 1
            if self._epoch >= self.epochs and self._state is JobState.RUNNING:
                self._state = JobState.SUCCEEDED

    def state(self) -> JobState:
        return self._state

    def metrics(self) -> list[EpochMetrics]:
        self._advance()
        return [EpochMetrics(e, self.epochs, e * 10, 1.0 / e, 0.5 + e / 10, 1.1 / e, 0.45 + e / 10, e * 2.0) for e in range(1, self._epoch + 1)]

    def logs(self, tail: int | None = None) -> str:
        lines = [f"worker-0: epoch {e}" for e in range(1, self._epoch + 1)]
        return "\n".join(lines[-tail:] if tail else lines)

    def wait(self, timeout: float | None = None) -> JobState:
        while not self._state.done:
            self._advance()
        return self._state

    def stop(self) -> None:
        self._state = JobState.STOPPED

    def delete(self) -> None:
        self.stop()
        self.deleted = True

    def result(self) -> dict[str, object]:
        return {"test_accuracy": 0.9, "version": 1} if self._state is JobState.SUCCEEDED else {}

    @property
    def model_dir(self) -> str:
        return f"/tmp/{self.name}/model"

    @property
    def logdir(self) -> str:
        return f"/tmp/{self.name}/model/logs"

    @property
    def export_dir(self) -> str:
        return f"/tmp/{self.name}/export"


class FakeEngine(Engine):
    name = "local"

    def __init__(self, **job_kwargs: object) -> None:
        self.jobs: dict[str, FakeJob] = {}
        self.job_kwargs = job_kwargs

    def submit(self, config: TrainConfig, job_name: str | None = None) -> Job:
        assert job_name is not None
        if job_name in self.jobs:
            raise ConfigError(f"a job named {job_name!r} exists already", field="job_name", value=job_name)
        job = FakeJob(job_name, config, **self.job_kwargs)  # type: ignore[arg-type]
        self.jobs[job_name] = job
        return job

    def get(self, job_name: str) -> Job:
        return self.jobs[job_name]

    def list(self) -> list[Job]:
        return list(self.jobs.values())


def factory_with(engine: FakeEngine):
    def factory(name: str) -> Engine:
        if name == "argo":
            raise ClusterError("no Kubernetes cluster is reachable (no kubeconfig)", field="kubeconfig")
        return engine

    return factory


def test_default_job_names_are_valid_and_unique() -> None:
    import datetime as dt

    now = dt.datetime(2026, 11, 28, 12, 0, 0, tzinfo=dt.timezone.utc)  # one second: only the suffix differs
    names = {default_job_name(now=now) for _ in range(50)}
    # 4 random base-36 characters: one chance in ~1,400 that two of 50 collide, ~1 in 4 million for two pairs
    assert len(names) >= 49
    for n in names:
        assert validate_job_name(n) == n and n.startswith("mnist-")


def test_training_controller_submits_and_monitors() -> None:
    engine = FakeEngine()
    c = TrainingController(engine_factory=factory_with(engine))
    assert c.engine_status() == {"local": "ready", "argo": "not configured: no Kubernetes cluster is reachable (no kubeconfig)"}
    monitor = c.submit("local", "mnist-test-1", start=False, train_steps=30, model_type="small")
    assert monitor is not None and c.message == "submitted mnist-test-1 to the local engine"
    assert engine.jobs["mnist-test-1"].config == TrainConfig(train_steps=30, model_type="small")
    snap = monitor.poll()
    assert (snap.state, snap.epoch, snap.epochs, snap.done) == ("Running", 1, 3, False)
    assert snap.progress == pytest.approx(1 / 3) and snap.log_tail == "worker-0: epoch 1"
    final = monitor.wait()
    assert final.state == "Succeeded" and final.done and final.progress == 1.0
    assert final.last.accuracy == pytest.approx(0.8) and len(final.metrics) == 3


def test_training_controller_reports_bad_input_in_words() -> None:
    engine = FakeEngine()
    c = TrainingController(engine_factory=factory_with(engine))
    assert c.submit("local", "ok-name", train_steps=0) is None
    assert c.error == "train_steps must be between 1 and 1000000, got 0"
    assert c.submit("local", "Bad_Name") is None and "'Bad_Name' is not a valid name" in c.error
    assert c.submit("argo", "ok-name") is None and c.error == "no Kubernetes cluster is reachable (no kubeconfig)"
    assert c.submit("local", "ok-name", start=False) is not None
    assert c.submit("local", "ok-name") is None and "exists already" in c.error


def test_monitor_background_polling_stop_and_delete() -> None:
    job = FakeJob("mnist-bg", TrainConfig(), epochs=10_000)
    monitor = JobMonitor(job, interval=0.01)
    updates = threading.Event()
    seen = []

    def listener(snap):
        seen.append(snap)
        if len(seen) >= 3:
            updates.set()

    monitor.on_update(listener)
    monitor.start()
    assert updates.wait(10), "the poller never reported"
    assert monitor.stop().state == "Stopped"
    monitor.close()
    assert seen[0].epoch < seen[2].epoch
    monitor.delete()
    assert job.deleted


def test_monitor_shows_a_failed_job_and_a_broken_job_object() -> None:
    failing = JobMonitor(FakeJob("mnist-fail", TrainConfig(), epochs=5, fail_at=2))
    assert failing.wait().state == "Failed"

    class Unreachable(FakeJob):
        def state(self) -> JobState:
            raise ClusterError("the cluster stopped answering", field="cluster")

    snap = JobMonitor(Unreachable("mnist-x", TrainConfig())).poll()
    assert snap.error == "the cluster stopped answering" and snap.state == "Pending"


@dataclass
class FakeArgoJob(FakeJob):
    """An Argo job: its workflow's steps advance with the training (what ``ArgoJob.steps()`` reads)."""

    def steps(self) -> tuple[tuple[str, str, str], ...]:
        done = self._state is JobState.SUCCEEDED
        train = "Succeeded" if done else ("Running" if self._epoch else "Pending")
        return (("get-workflow-info", "Succeeded", ""), ("tensorboard", "Succeeded", ""),
                ("train-model", train, ""), ("serve-model", "Succeeded" if done else "Pending", ""))


def test_monitor_shows_argo_steps_live_and_a_curve_that_grows_per_epoch() -> None:
    from mnistkit.widgets import TrainingMonitor

    view = TrainingMonitor(FakeArgoJob("mnist-argo", TrainConfig(), epochs=4), start=False)  # polls once
    seen_phases, charts, epochs = [], [bytes(view.chart.value)], [view.monitor.snapshot.epoch]
    while True:
        snap = view.monitor.poll()  # what the background poller does, one step at a time
        train_phase = dict((n, p) for n, p, _m in snap.steps)["train-model"]
        seen_phases.append(train_phase)
        assert f"<td>train-model</td><td class='mnistkit-phase-{train_phase.lower()}'" in view.steps.value
        assert view.steps.layout.display != "none"
        assert len(snap.curve["loss"]) == len(snap.curve["accuracy"]) == snap.epoch  # one point per epoch
        assert view.chart_epochs == snap.epoch and bytes(view.chart.value).startswith(b"\x89PNG")
        # redrawn exactly when an epoch was added
        assert (bytes(view.chart.value) != charts[-1]) == (snap.epoch != epochs[-1])
        charts.append(bytes(view.chart.value))
        epochs.append(snap.epoch)
        if snap.done:
            break
    assert seen_phases[0] == "Running" and seen_phases[-1] == "Succeeded"
    assert len(set(charts)) == 4 and epochs[-1] == 4
    assert snap.curve["val_accuracy"] == pytest.approx([0.55, 0.65, 0.75, 0.85])


def test_monitor_of_a_local_job_has_a_curve_and_no_steps() -> None:
    from mnistkit.widgets import TrainingMonitor

    view = TrainingMonitor(FakeJob("mnist-local-curve", TrainConfig(), epochs=2), start=False)
    final = view.wait()
    assert final.steps == () and view.steps.layout.display == "none"
    assert view.chart_epochs == 2 and view.chart.layout.display != "none"


def test_training_curves_figure_has_one_point_per_epoch() -> None:
    from mnistkit.plots import figure_png, plot_training_curves

    job = FakeJob("mnist-fig", TrainConfig(), epochs=3)
    job.wait()
    fig = plot_training_curves(job.metrics())
    loss_ax, acc_ax = fig.axes
    assert [len(line.get_xdata()) for line in loss_ax.lines + acc_ax.lines] == [3, 3, 3, 3]  # train + validation
    assert figure_png(fig).startswith(b"\x89PNG")


def test_training_panel_view_submits_and_shows_the_monitor() -> None:
    from mnistkit.widgets import TrainingMonitor, TrainingPanel

    engine = FakeEngine()
    panel = TrainingPanel(engine_factory=factory_with(engine), interval=0.01)
    assert [label for label, _ in panel.engine.options] == ["local", "argo (not configured)"]
    assert "no Kubernetes cluster is reachable" in panel.engine_note.value
    assert panel.train_steps.value == TrainConfig().train_steps and panel.model_type.value == "cnn"
    first_name = panel.job_name.value
    panel.train_steps.value = 50
    monitor = panel.submit()
    assert isinstance(monitor, TrainingMonitor) and panel.monitor_box.children == (monitor,)
    assert engine.jobs[first_name].config.train_steps == 50 and panel.job_name.value != first_name
    final = monitor.wait()
    monitor._show(final)
    assert final.state == "Succeeded" and monitor.progress.value == 1.0
    assert "Succeeded" in monitor.state.value and "accuracy 0.8000" in monitor.metrics.value
    assert monitor.logs.value.endswith("worker-0: epoch 3") and monitor.stop_button.disabled
    panel.job_name.value = "Not Valid"
    assert panel.submit() is None and "not a valid name" in panel.status.value


# --------------------------------------------------------------------------------------- tensorboard


def test_tensorboard_urls_loopback_proxy_and_env(monkeypatch: pytest.MonkeyPatch) -> None:
    import importlib.util

    from mnistkit import tensorboard

    assert tensorboard.browser_url(6006, {}) == "http://127.0.0.1:6006/"
    assert tensorboard.browser_url(6006, {"TENSORBOARD_PROXY_URL": "/user/ada/proxy/%PORT%/"}) == "/user/ada/proxy/6006/"
    hub = {"JUPYTERHUB_SERVICE_PREFIX": "/user/ada/"}
    expected = "/user/ada/proxy/6006/" if importlib.util.find_spec("jupyter_server_proxy") else "http://127.0.0.1:6006/"
    assert tensorboard.browser_url(6006, hub) == expected
    monkeypatch.setattr(importlib.util, "find_spec", lambda name: None)
    assert tensorboard.browser_url(6006, hub) == "http://127.0.0.1:6006/"


def test_tensorboard_in_a_kubeflow_notebook_goes_through_the_notebook_servers_proxy(
        monkeypatch: pytest.MonkeyPatch) -> None:
    """Kubeflow sets NB_PREFIX (the server's base URL), not JupyterHub's variable; 127.0.0.1 is the pod's own."""
    import importlib.util

    from mnistkit import tensorboard

    kubeflow = {"NB_PREFIX": "/notebook/kubeflow-user-jane/nb1"}
    if importlib.util.find_spec("jupyter_server_proxy"):
        assert tensorboard.browser_url(6006, kubeflow) == "/notebook/kubeflow-user-jane/nb1/proxy/6006/"
    # Without the proxy the browser could never reach the pod's loopback: a clear error, and nothing started.
    monkeypatch.setenv("NB_PREFIX", kubeflow["NB_PREFIX"])
    monkeypatch.delenv("TENSORBOARD_PROXY_URL", raising=False)
    monkeypatch.setattr(importlib.util, "find_spec", lambda name: None)
    with pytest.raises(tensorboard.TensorBoardError, match="jupyter-server-proxy") as err:
        tensorboard.show("/nonexistent-logdir-for-this-test")
    assert err.value.field == "TENSORBOARD_PROXY_URL" and tensorboard.running() == []


@pytest.mark.slow
def test_tensorboard_url_answers_through_a_kubeflow_notebook_server(tmp_path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The embedded URL, fetched the way the user's browser does: from the notebook server at NB_PREFIX."""
    import subprocess
    import sys
    import time
    import urllib.request

    from mnistkit import tensorboard
    from mnistkit.embedded_s3 import free_port

    prefix, token, port = "/notebook/kubeflow-user-jane/nb1", "t0ken-for-this-test", free_port()
    monkeypatch.setenv("NB_PREFIX", prefix)  # what Kubeflow's notebook controller sets, and passes as base_url
    monkeypatch.delenv("JUPYTERHUB_SERVICE_PREFIX", raising=False)
    monkeypatch.delenv("TENSORBOARD_PROXY_URL", raising=False)
    server = subprocess.Popen(
        [sys.executable, "-m", "jupyter_server", "--no-browser", "--allow-root", f"--port={port}", "--ip=127.0.0.1",
         f"--ServerApp.base_url={prefix}", f"--IdentityProvider.token={token}", f"--ServerApp.root_dir={tmp_path}"],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, stdin=subprocess.DEVNULL)
    try:
        frame = tensorboard.show(tmp_path)
        assert frame.src.startswith(f"{prefix}/proxy/")
        url = f"http://127.0.0.1:{port}{frame.src}"

        def fetch(path: str = "") -> bytes:
            req = urllib.request.Request(url + path, headers={"Authorization": f"token {token}"})
            with urllib.request.urlopen(req, timeout=10) as r:
                return bytes(r.read())

        deadline, body = time.monotonic() + 120, b""
        while time.monotonic() < deadline and b"TensorBoard" not in body:
            try:
                body = fetch()
            except OSError:
                if server.poll() is not None:
                    raise AssertionError("the notebook server exited") from None
                time.sleep(0.5)  # the notebook server is still starting
        assert b"TensorBoard" in body
        assert json.loads(fetch("data/environment"))["data_location"] == str(tmp_path)  # the page's own requests
    finally:
        tensorboard.stop_all()
        server.terminate()
        server.wait(timeout=30)


def test_tensorboard_embeds_a_cluster_jobs_own_url_and_refuses_s3() -> None:
    from mnistkit import tensorboard

    class ClusterJob:
        tensorboard_url = "https://kubeflow.example/tensorboard/mnist-1/"
        model_dir = "s3://mnist/models/mnist-1"

    assert tensorboard.show(ClusterJob()).src == ClusterJob.tensorboard_url

    class S3Job:
        model_dir = "s3://mnist/models/mnist-1"

    with pytest.raises(ConfigError, match="cannot read s3://mnist/models/mnist-1"):
        tensorboard.show(S3Job())


@pytest.mark.slow
def test_tensorboard_starts_on_loopback_reuses_and_stops(tmp_path) -> None:
    import urllib.request

    from mnistkit import tensorboard

    frame = tensorboard.show(tmp_path)
    try:
        (server,) = tensorboard.running()
        assert re.fullmatch(r"http://127\.0\.0\.1:\d+/", frame.src) and server.port == int(frame.src.rsplit(":", 1)[1].strip("/"))
        with urllib.request.urlopen(server.local_url, timeout=5) as r:
            assert r.status == 200 and b"TensorBoard" in r.read()
        assert tensorboard.show(str(tmp_path)).src == frame.src  # same logdir: the same server
        assert "--host" in server.process.args and "127.0.0.1" in server.process.args
    finally:
        assert tensorboard.stop_all() == 1
    assert tensorboard.running() == []


# --------------------------------------------------------------------------------------------- plots


def test_confusion_matrix_counts_and_plots() -> None:
    from matplotlib.figure import Figure

    from mnistkit import plots

    y_true = np.array([0, 1, 2, 2, 7, 7, 7])
    y_pred = np.array([0, 1, 2, 3, 7, 1, 7])
    cm = plots.confusion_matrix(y_true, y_pred)
    assert cm.sum() == 7 and cm[2, 3] == 1 and cm[7, 1] == 1 and cm[7, 7] == 2 and np.trace(cm) == 5
    assert plots.accuracy(y_true, y_pred) == pytest.approx(5 / 7)
    fig = plots.plot_confusion_matrix(y_true, y_pred, normalize=True)
    assert isinstance(fig, Figure) and "71.43%" in fig.axes[0].get_title()
    images = np.random.default_rng(0).random((7, 28, 28))
    probs = np.full((7, 10), 0.05)
    probs[3, 3], probs[5, 1] = 0.6, 0.9
    grid = plots.plot_misclassified(images, y_true, y_pred, probs, n=16)
    assert [ax.get_title() for ax in grid.axes] == ["7→1 (0.90)", "2→3 (0.60)"]
    assert len(plots.plot_misclassified(images, y_true, y_true).axes) == 1
    with pytest.raises(DataError, match="y_pred has 2"):
        plots.confusion_matrix([1, 2, 3], [1, 2])
    grid.savefig(io.BytesIO(), format="png")  # renders under Agg


# ----------------------------------------------------------------------------- with the real local engine


@pytest.mark.slow
def test_training_panel_drives_a_real_local_training_and_tensorboard_shows_it(tmp_path) -> None:
    """The panel over the real LocalEngine: a 2-epoch "small" training, monitored to the end, then TensorBoard."""
    import urllib.request

    from mnistkit import tensorboard
    from mnistkit.widgets import TrainingPanel

    panel = TrainingPanel(engine_kwargs={"local": {"run_dir": str(tmp_path / "runs")}}, interval=0.2)
    panel.train_steps.value, panel.batch_size.value, panel.model_type.value = 40, 200, "small"
    monitor = panel.submit()
    assert monitor is not None, panel.status.value
    final = monitor.wait(timeout=300)
    assert final.state == "Succeeded", final.log_tail
    assert (final.epoch, final.epochs, final.progress) == (2, 2, 1.0)
    assert 0.0 < final.last.accuracy <= 1.0 and final.log_tail
    assert "Succeeded" in monitor.state.value and monitor.progress.value == 1.0
    try:
        frame = tensorboard.show(monitor.job)
        (server,) = tensorboard.running()
        assert server.logdir == str(Path(monitor.job.logdir).resolve())
        with urllib.request.urlopen(server.local_url + "data/runs", timeout=10) as r:
            assert r.status == 200
        assert frame.src == server.url
    finally:
        tensorboard.stop_all()


@pytest.mark.slow
def test_front_end_assets_ship_in_the_wheel_beside_the_views(tmp_path: Path) -> None:
    """The ES module and CSS are package data (mnistkit/widgets/static/), in a checkout and in the built wheel."""
    import subprocess
    import sys
    import zipfile

    from mnistkit.widgets import _assets

    for name in ("drawing_pad.js", "drawing_pad.css"):
        assert _assets.asset(name).is_file(), name
    root = ROOT
    subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-q", "-w",
                    str(tmp_path), str(root)], check=True, timeout=300)
    wheel = next(tmp_path.glob("mnistkit-*.whl"))
    names = set(zipfile.ZipFile(wheel).namelist())
    assert {"mnistkit/widgets/static/drawing_pad.js", "mnistkit/widgets/static/drawing_pad.css",
            "mnistkit/widgets/drawing_pad.py", "mnistkit/py.typed"} <= names
