"""The logic behind each notebook panel, as plain Python that tests (and papermill) drive without a browser.

Each panel in ``mnistkit.widgets`` is a thin view over one controller here: the view turns clicks
into controller calls and controller state into widget values. Controllers never raise ``MnistkitError``
at the user: they keep ``error`` as a sentence (``str(exc)``) so a panel shows words, not a traceback.
Nothing here imports ipywidgets, TensorFlow or kubernetes at module import time.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

import numpy as np

from mnistkit.errors import ConfigError, MnistkitError, ServingError
from mnistkit.manifests.params import default_job_name
from mnistkit.widgets.job_monitor import JobMonitor, MonitorSnapshot, describe_error

if TYPE_CHECKING:
    from mnistkit.config import S3Config, TrainConfig
    from mnistkit.data import Dataset
    from mnistkit.engines.base import Engine, Job

__all__ = [
    "Predicted",
    "PadResult",
    "Predictor",
    "DrawingPadController",
    "saved_model_predictor",
    "S3PanelController",
    "S3_FIELDS",
    "TrainingController",
    "JobMonitor",
    "MonitorSnapshot",
    "default_job_name",
    "describe_error",
]


# --------------------------------------------------------------------------------------------- drawing pad


@dataclass(frozen=True)
class Predicted:
    """One prediction as the pad shows it (the serving client's ``Prediction`` has the same fields)."""

    digit: int
    probabilities: tuple[float, ...]
    model_version: int = 0


class Predictor(Protocol):
    def __call__(self, images: np.ndarray) -> Sequence[Any]: ...


def _as_predictions(raw: Any, n: int) -> list[Predicted]:
    """Accept what predictors return: ``Prediction`` objects, or a ``[b, 10]`` probability array (Keras)."""
    if isinstance(raw, np.ndarray) or (hasattr(raw, "numpy") and not isinstance(raw, (list, tuple))):
        probs = np.asarray(raw.numpy() if hasattr(raw, "numpy") else raw, dtype=np.float64)
        if probs.ndim != 2 or probs.shape != (n, 10):
            raise ServingError(f"the predictor returned shape {list(probs.shape)}, expected [{n}, 10]", field="predict")
        return [Predicted(int(p.argmax()), tuple(float(v) for v in p)) for p in probs]
    out = []
    for item in raw:
        probs = tuple(float(v) for v in getattr(item, "probabilities", ()))
        if len(probs) != 10:
            raise ServingError(f"the predictor returned {len(probs)} probabilities, expected 10", field="predict")
        out.append(Predicted(int(item.digit), probs, int(getattr(item, "model_version", 0) or 0)))
    if len(out) != n:
        raise ServingError(f"the predictor returned {len(out)} predictions for {n} images", field="predict")
    return out


@dataclass(frozen=True)
class PadResult:
    """What the pad shows after a drawing: the 28x28 the model saw and its answer (``label`` for test digits)."""

    image: np.ndarray
    prediction: Predicted
    label: int | None = None

    def __repr__(self) -> str:  # the 784 pixels would bury the answer in a notebook cell
        p = self.prediction
        label = "" if self.label is None else f", label={self.label}"
        return f"PadResult(digit={p.digit}, probability={max(p.probabilities):.3f}{label})"


class DrawingPadController:
    """Preprocess a drawing, ask a predictor, keep the result (or the error as a sentence).

    ``predict`` is any callable ``images[b, 28, 28] float32 -> list[Prediction]`` (or a ``[b, 10]``
    array); ``client`` is anything with ``.predict(images)`` such as ``mnistkit.serving.client.ModelClient``.
    """

    def __init__(
        self,
        predict: Callable[[np.ndarray], Any] | None = None,
        *,
        client: Any = None,
        test_set: tuple[np.ndarray, np.ndarray] | None = None,
        seed: int | None = None,
    ) -> None:
        if predict is None and client is not None:
            predict = client.predict
        if predict is None:
            raise ConfigError("give the drawing pad a predictor: predict=callable or client=ModelClient(...)", field="predict")
        self.predict = predict
        self.result: PadResult | None = None
        self.error: str = ""
        self._test_set = test_set
        self._rng = np.random.default_rng(seed)
        self._listeners: list[Callable[[DrawingPadController], None]] = []

    def on_change(self, callback: Callable[[DrawingPadController], None]) -> None:
        """Call ``callback(controller)`` after every submit, clear and random digit."""
        self._listeners.append(callback)

    def _notify(self) -> None:
        for cb in list(self._listeners):
            cb(self)

    def _classify(self, image: np.ndarray, label: int | None = None) -> PadResult | None:
        try:
            raw = self.predict(image[None].astype(np.float32))
            self.result = PadResult(image, _as_predictions(raw, 1)[0], label)
            self.error = ""
        except Exception as exc:  # a panel shows the sentence; the kernel keeps running
            self.result, self.error = None, describe_error(exc)
        self._notify()
        return self.result

    def submit(self, canvas: Any) -> PadResult | None:
        """A drawing (array, PNG bytes or data URL) -> its result; ``None`` with ``error`` set on failure."""
        from mnistkit.drawing import preprocess

        try:
            image = preprocess(canvas)
        except Exception as exc:
            self.result, self.error = None, describe_error(exc)
            self._notify()
            return None
        return self._classify(image)

    def clear(self) -> None:
        self.result, self.error = None, ""
        self._notify()

    def test_set(self) -> tuple[np.ndarray, np.ndarray]:
        """The official test set when present, else the offline sample's test split (loaded once)."""
        if self._test_set is None:
            from mnistkit import data

            path = data.find_official_test_set()
            if path is not None:
                self._test_set = (
                    data.read_idx(path / data.FILES["test_images"]),
                    data.read_idx(path / data.FILES["test_labels"]),
                )
            else:
                ds = data.offline_sample()
                self._test_set = (ds.x_test, ds.y_test)
        return self._test_set

    def random_digit(self) -> PadResult | None:
        """Classify a random test digit (already MNIST-normalised, so it is sent as is), like the seed's client."""
        try:
            x, y = self.test_set()
        except Exception as exc:
            self.result, self.error = None, describe_error(exc)
            self._notify()
            return None
        i = int(self._rng.integers(len(x)))
        return self._classify(x[i].astype(np.float32) / 255.0, int(y[i]))


def saved_model_predictor(path: str | os.PathLike[str]) -> Callable[[np.ndarray], list[Predicted]]:
    """A predictor that runs an exported SavedModel in this process (no server): for quick notebook checks.

    ``path`` is a SavedModel directory or a base directory of numbered versions (the newest is used).
    """
    from mnistkit.tf_runtime import import_tensorflow

    tf = import_tensorflow()

    from mnistkit.versions import resolve_export

    found = resolve_export(path)
    if found is None:
        raise ServingError(f"{path} holds no SavedModel (no saved_model.pb, no numbered versions)", field="path",
                           value=str(path))
    base, version = found
    fn = tf.saved_model.load(str(base)).signatures["serving_default"]

    def predict(images: np.ndarray) -> list[Predicted]:
        probs = fn(x=tf.constant(np.asarray(images, np.float32)))["predictions"].numpy()
        return [Predicted(int(p.argmax()), tuple(float(v) for v in p), version) for p in probs]

    return predict


# ------------------------------------------------------------------------------------------------ S3 panel

# Panel field -> S3Config field, in the order the panel shows them.
S3_FIELDS = ("bucket", "endpoint_url", "access_key_id", "secret_access_key", "region", "use_https", "verify_ssl")
_ENV_FOR_FIELD = {
    "bucket": "BUCKET_NAME",
    "endpoint_url": "AWS_ENDPOINT_URL",
    "access_key_id": "AWS_ACCESS_KEY_ID",
    "secret_access_key": "AWS_SECRET_ACCESS_KEY",
    "region": "AWS_REGION",
    "use_https": "S3_USE_HTTPS",
    "verify_ssl": "S3_VERIFY_SSL",
}


class S3PanelController:
    """Fields pre-filled from the seed's environment; validate, probe, upload the dataset, create the k8s secret.

    The secret lives only in ``values["secret_access_key"]`` and in the ``S3Config`` built from it; every
    message this class produces is built from error text that never contains it (``S3Config`` and
    ``MnistkitError`` hide secrets) and is scrubbed once more before it is kept.
    """

    def __init__(self, env: Mapping[str, str] | None = None) -> None:
        from mnistkit.config import S3Config

        env = os.environ if env is None else env
        self.values: dict[str, Any] = {}
        self.message = ""
        self.error = ""
        try:
            cfg = S3Config.from_env(env)
            endpoint_url = cfg.endpoint_url
            self.values = {name: getattr(cfg, name) for name in S3_FIELDS}
            self.values["endpoint_url"] = endpoint_url
        except MnistkitError as exc:
            # Show what the environment says and why it is wrong; the user fixes it in the fields.
            defaults = S3Config()
            for name in S3_FIELDS:
                raw = env.get(_ENV_FOR_FIELD[name], "")
                self.values[name] = raw if raw != "" else getattr(defaults, name)
            for flag in ("use_https", "verify_ssl"):
                raw_flag = str(self.values[flag]).strip().lower()
                self.values[flag] = raw_flag not in ("0", "false", "no", "off")
            if not self.values["endpoint_url"] and env.get("S3_ENDPOINT"):
                self.values["endpoint_url"] = f"https://{env['S3_ENDPOINT']}"
            self.error = self._scrub(str(exc))
        self.config: S3Config | None = None

    def _scrub(self, text: str) -> str:
        secret = str(self.values.get("secret_access_key") or "")
        return text.replace(secret, "***") if secret else text

    def _fail(self, exc: BaseException) -> None:
        self.message, self.error = "", self._scrub(describe_error(exc))

    def update(self, **values: Any) -> None:
        unknown = set(values) - set(S3_FIELDS)
        if unknown:
            raise ConfigError(f"unknown S3 field(s): {', '.join(sorted(unknown))}", field=sorted(unknown)[0])
        self.values.update(values)
        self.config = None

    def validate(self) -> S3Config | None:
        """Build the ``S3Config`` from the fields; ``None`` with ``error`` set when a field is wrong."""
        from mnistkit.config import S3Config

        try:
            v = dict(self.values)
            url = str(v.get("endpoint_url") or "").strip()
            if url:
                v["use_https"] = url.startswith("https://")
            self.config = S3Config(**v)
        except Exception as exc:
            self.config = None
            self._fail(exc)
            return None
        self.message, self.error = f"valid: {self.config.url()} at {self.config.endpoint_url or 'AWS'}", ""
        return self.config

    def test_connection(self) -> bool:
        """Reachable, and a probe object can be written, read back and deleted."""
        from mnistkit import s3

        cfg = self.validate()
        if cfg is None:
            return False
        try:
            s3.probe_bucket(s3.make_client(cfg, max_attempts=2, connect_timeout=3.0), cfg.bucket)
        except Exception as exc:
            self._fail(exc)
            return False
        self.message, self.error = f"connected: {cfg.url()} is reachable and writable", ""
        return True

    def upload_dataset(
        self,
        dataset: Dataset | str | os.PathLike[str] | None = None,
        prefix: str = "data/mnist",
        progress: Callable[[int, int], None] | None = None,
    ) -> str | None:
        """Upload ``dataset`` (a ``Dataset``, a local data dir, or ``None`` = the offline sample) to ``s3://bucket/prefix``."""
        from mnistkit import data

        cfg = self.validate()
        if cfg is None:
            return None
        try:
            if dataset is None:
                ds = data.offline_sample()
            elif isinstance(dataset, (str, os.PathLike)):
                ds = data.read_data_dir(dataset)
            else:
                ds = dataset
            url = cfg.url(prefix)
            keys = data.upload_dataset(ds, url, cfg, progress)
        except Exception as exc:
            self._fail(exc)
            return None
        self.message, self.error = f"uploaded {len(keys)} files to {url}", ""
        return url

    @staticmethod
    def cluster_status() -> tuple[bool, str]:
        """Whether a Kubernetes secret can be created: ``mnistkit.cluster.secrets`` exists and a cluster config loads.

        Only the configuration is loaded (kubeconfig or the pod's service account); the API server is not
        called, so a panel opens instantly even when a configured cluster is down.
        """
        try:
            from mnistkit.cluster import secrets as _secrets  # type: ignore[attr-defined]  # noqa: F401
        except ImportError:
            return False, "no cluster configured (mnistkit.cluster.secrets is not available)"
        from mnistkit.cluster.connect import in_cluster, kubeconfig_paths

        if not in_cluster() and not kubeconfig_paths():
            # Decided without importing the kubernetes client (seconds at a panel's start).
            where = os.environ.get("KUBECONFIG") or "~/.kube/config"
            return False, f"no cluster configured: no kubeconfig ({where}) and not running inside a cluster"
        try:
            from mnistkit.cluster.connect import connect

            conn = connect()
        except MnistkitError as exc:
            return False, f"no cluster configured: {exc}"
        except Exception as exc:
            return False, f"no cluster configured: {describe_error(exc)}"
        return True, f"cluster configured ({conn.source}, namespace {conn.namespace})"

    def create_secret(self, namespace: str | None = None) -> bool:
        """Store the credentials as a Kubernetes secret for training pods (``create_aws_secret``).

        ``namespace`` defaults to the connection's (the kubeconfig context's, or the notebook pod's own).
        """
        ok, why = self.cluster_status()
        if not ok:
            self.message, self.error = "", why
            return False
        cfg = self.validate()
        if cfg is None:
            return False
        try:
            from mnistkit.cluster.secrets import create_aws_secret  # type: ignore[import-not-found]

            if namespace is None:
                from mnistkit.cluster.connect import connect

                namespace = connect().namespace
            result = create_aws_secret(cfg, namespace)
        except Exception as exc:
            self._fail(exc)
            return False
        name = getattr(result, "name", None) or (result if isinstance(result, str) else "the AWS secret")
        self.message, self.error = f"created {name} in namespace {namespace}", ""
        return True


# ------------------------------------------------------------------------------------------ training panel



ENGINES = ("local", "argo")


@dataclass
class TrainingController:
    """Turn the panel's values into a ``TrainConfig``, pick an engine, submit, and hand back a ``JobMonitor``."""

    engine_factory: Callable[[str], Engine] | None = None
    engine_kwargs: dict[str, dict[str, Any]] = field(default_factory=dict)
    error: str = ""
    message: str = ""
    job: Job | None = None
    monitor: JobMonitor | None = None
    _engines: dict[str, Engine] = field(default_factory=dict)

    def _factory(self, name: str) -> Engine:
        if self.engine_factory is not None:
            return self.engine_factory(name)
        from mnistkit.engines import get_engine

        return get_engine(name, **self.engine_kwargs.get(name, {}))

    def engine(self, name: str) -> Engine:
        if name not in self._engines:
            self._engines[name] = self._factory(name)
        return self._engines[name]

    def engine_status(self, names: Iterable[str] = ENGINES) -> dict[str, str]:
        """``{"local": "ready", "argo": "not configured: <why>"}``: what the engine dropdown shows."""
        out = {}
        for name in names:
            try:
                self.engine(name)
                out[name] = "ready"
            except ImportError:
                out[name] = "not configured: its module is not installed"
            except Exception as exc:
                out[name] = f"not configured: {describe_error(exc)}"
        return out

    @staticmethod
    def defaults() -> dict[str, Any]:
        from dataclasses import fields

        from mnistkit.config import TrainConfig

        return {f.name: f.default for f in fields(TrainConfig)}

    def build_config(self, **values: Any) -> TrainConfig | None:
        from mnistkit.config import TrainConfig

        try:
            cfg = TrainConfig(**{k: v for k, v in values.items() if v is not None})
        except Exception as exc:
            self.error, self.message = describe_error(exc), ""
            return None
        self.error = ""
        return cfg

    def submit(self, engine: str = "local", job_name: str | None = None, *, start: bool = True, **values: Any) -> JobMonitor | None:
        """Validate, submit and return a monitor (polling in the background when ``start``)."""
        from mnistkit.config import validate_job_name

        cfg = self.build_config(**values)
        if cfg is None:
            return None
        try:
            name = validate_job_name(job_name or default_job_name())
            self.job = self.engine(engine).submit(cfg, name)
        except Exception as exc:
            self.error, self.message = describe_error(exc), ""
            return None
        self.error, self.message = "", f"submitted {self.job.name} to the {engine} engine"
        self.monitor = JobMonitor(self.job)
        if start:
            self.monitor.start()
        return self.monitor
