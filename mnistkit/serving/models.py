"""Model versions: load SavedModels, validate and run predictions, and follow a base path as TF Serving does.

TF Serving's default version policy is "latest": serve the highest numeric version directory under the
base path, load a newer one when it appears, and only then drop the old one. ``ModelManager`` does the
same with a polling thread. What it never does is serve something half-written: directories whose name
is not a number (``.tmp-*``, ``.staging``) are ignored, a version counts only once its ``saved_model.pb``
exists (``publish_local`` and ``mnistkit.s3.publish_model_version`` write it last), and a version whose
load fails is retried on later polls while the old one keeps serving.

For an ``s3://`` base path, new versions are downloaded with ``mnistkit.s3`` into a local cache first
(TensorFlow 2.21 has no S3 filesystem), each into a temp directory renamed into place once complete.
"""

from __future__ import annotations

import contextlib
import logging
import os
import re
import shutil
import tempfile
import threading
import time
import uuid
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from mnistkit.config import S3Config
from mnistkit.errors import MnistkitError
from mnistkit.serving.status import RequestError
from mnistkit.serving.tensors import DTYPE_NAMES, DTYPES

__all__ = [
    "DEFAULT_SIGNATURE",
    "MAX_BATCH",
    "RETRY_SECONDS",
    "TensorInfo",
    "Signature",
    "LoadedModel",
    "VersionStatus",
    "ModelManager",
    "UnknownSignature",
    "load_model",
]

log = logging.getLogger("mnistkit.serving")

DEFAULT_SIGNATURE = "serving_default"
RETRY_SECONDS = 30.0  # a failed version whose files do not change is retried this often
MAX_BATCH = 1024
_VERSION_DIR = re.compile(r"^[0-9]+$", re.ASCII)
_MARKER = "saved_model.pb"
_SERVE_TAG = "serve"
_INIT_OP_KEY = "__saved_model_init_op"  # tensorflow.python.saved_model.constants.INIT_OP_SIGNATURE_KEY


class UnknownSignature(RequestError):
    """The request names a signature the model does not have (gRPC answers FAILED_PRECONDITION, as TF Serving)."""


@dataclass(frozen=True)
class TensorInfo:
    """One input or output of a signature: its key, dtype and shape (``None`` for unknown dimensions)."""

    key: str
    dtype: np.dtype[Any]
    dtype_name: str
    shape: tuple[int | None, ...] | None


@dataclass(frozen=True)
class Signature:
    """A callable signature with its declared inputs and outputs."""

    name: str
    inputs: dict[str, TensorInfo]
    outputs: dict[str, TensorInfo]
    fn: Any


def _tensor_info(key: str, proto: Any) -> TensorInfo:
    dtype = DTYPES.get(proto.dtype, (np.dtype(object), ""))[0]
    shape = None if proto.tensor_shape.unknown_rank else tuple(
        None if d.size < 0 else int(d.size) for d in proto.tensor_shape.dim
    )
    return TensorInfo(key, dtype, DTYPE_NAMES.get(proto.dtype, f"dtype {proto.dtype}"), shape)


class LoadedModel:
    """One loaded version: its signatures (callable), their ``SignatureDef`` protos, and validation."""

    def __init__(
        self,
        version: int,
        path: Path,
        runners: Mapping[str, Any],
        signature_defs: Mapping[str, Any],
        keep_alive: Any = None,
    ) -> None:
        self.version = version
        self.path = path
        self._keep_alive = keep_alive  # the Session (or loaded object) the runners need, alive as long as they are
        self.signature_defs = dict(signature_defs)
        self.signatures: dict[str, Signature] = {}
        for name, fn in runners.items():
            sdef = self.signature_defs[name]
            self.signatures[name] = Signature(
                name,
                {k: _tensor_info(k, v) for k, v in sdef.inputs.items()},
                {k: _tensor_info(k, v) for k, v in sdef.outputs.items()},
                fn,
            )

    def signature(self, name: str | None) -> Signature:
        name = name or DEFAULT_SIGNATURE
        sig = self.signatures.get(name)
        if sig is None:
            raise UnknownSignature(
                f'Serving signature name: "{name}" not found in signature def '
                f"(this model has: {', '.join(sorted(self.signatures)) or 'none'})",
                field="signature_name",
                value=name,
            )
        return sig

    def predict(
        self,
        signature_name: str | None,
        inputs: Mapping[str, Any],
        *,
        strict_dtype: bool = True,
        max_batch: int = MAX_BATCH,
        output_filter: list[str] | None = None,
    ) -> dict[str, np.ndarray]:
        """Validate ``inputs`` against the signature and run it.

        ``strict_dtype`` (gRPC): a tensor of another dtype is an error, as in TF Serving; otherwise (REST,
        where JSON numbers have no dtype) values are converted to the declared dtype. Every problem is a
        ``RequestError`` whose message names the input and what is wrong.
        """
        sig = self.signature(signature_name)
        missing = sorted(set(sig.inputs) - set(inputs))
        extra = sorted(set(inputs) - set(sig.inputs))
        if extra:
            raise RequestError(
                f"input tensor alias not found in signature: {', '.join(extra)}. "
                f"Inputs expected to be in the set {{{', '.join(sorted(sig.inputs))}}}.",
                field="inputs",
                value=extra,
            )
        if missing:
            raise RequestError(
                f"missing input(s) {', '.join(missing)}; signature {sig.name!r} expects "
                f"{{{', '.join(sorted(sig.inputs))}}}",
                field="inputs",
                value=missing,
            )
        feed: dict[str, np.ndarray] = {}
        batch: int | None = None
        for key, info in sig.inputs.items():
            arr = self._coerce(key, info, inputs[key], strict_dtype)
            if info.shape is not None:
                if arr.ndim != len(info.shape) or any(
                    want is not None and want != got for want, got in zip(info.shape, arr.shape)
                ):
                    want_s = "[" + ", ".join("?" if d is None else str(d) for d in info.shape) + "]"
                    raise RequestError(
                        f"input {key!r} must have shape {want_s}, got {list(arr.shape)}", field=key, value=list(arr.shape)
                    )
            if arr.ndim >= 1:
                if arr.shape[0] == 0:
                    raise RequestError(f"input {key!r} is an empty batch", field=key, value=0)
                if arr.shape[0] > max_batch:
                    raise RequestError(
                        f"input {key!r} has a batch of {arr.shape[0]}; the limit is {max_batch}",
                        field=key,
                        value=arr.shape[0],
                    )
                if batch is not None and arr.shape[0] != batch:
                    raise RequestError("all inputs must have the same batch size", field=key, value=arr.shape[0])
                batch = arr.shape[0]
            if arr.dtype.kind == "f" and not np.isfinite(arr).all():
                raise RequestError(f"input {key!r} contains NaN or Inf", field=key)
            feed[key] = arr
        wanted = list(sig.outputs)
        if output_filter:
            unknown = sorted(set(output_filter) - set(sig.outputs))
            if unknown:
                raise RequestError(
                    f"output tensor alias not found in signature: {', '.join(unknown)}", field="output_filter",
                    value=unknown,
                )
            wanted = list(output_filter)
        try:
            result = sig.fn(**feed)
        except Exception as exc:  # tf.errors.InvalidArgumentError and friends
            kind = type(exc).__name__
            code = "INVALID_ARGUMENT" if "InvalidArgument" in kind else "INTERNAL"
            first = _first_line(exc) or kind
            raise RequestError(f"running signature {sig.name!r} failed: {first}", code, field="inputs") from None
        return {k: np.asarray(result[k]) for k in wanted}

    @staticmethod
    def _coerce(key: str, info: TensorInfo, value: Any, strict: bool) -> np.ndarray:
        if isinstance(value, np.ndarray):
            if strict and value.dtype != info.dtype:
                raise RequestError(
                    f"input {key!r} must be {info.dtype_name} ({info.dtype}), got {value.dtype}",
                    field=key,
                    value=str(value.dtype),
                )
            if value.dtype == info.dtype:
                return value
        if info.dtype.kind in "fiu":
            try:
                arr = np.asarray(value)
            except ValueError:
                raise RequestError(f"input {key!r} is a ragged list, not a tensor", field=key) from None
            if arr.dtype.kind not in "fiub" or arr.dtype == np.bool_:
                raise RequestError(
                    f"input {key!r} must hold numbers ({info.dtype_name}), got {arr.dtype.name} values",
                    field=key,
                    value=arr.dtype.name,
                )
            if info.dtype.kind in "iu" and arr.dtype.kind == "f":
                raise RequestError(f"input {key!r} must hold integers ({info.dtype_name})", field=key)
            if info.dtype.kind in "iu" and arr.size and (
                arr.min() < np.iinfo(info.dtype).min or arr.max() > np.iinfo(info.dtype).max
            ):
                raise RequestError(f"input {key!r} has values outside {info.dtype}", field=key)
            if info.dtype.kind == "f" and arr.dtype.kind == "f" and arr.size and np.isfinite(arr).all():
                if np.abs(arr).max() > np.finfo(info.dtype).max:
                    raise RequestError(f"input {key!r} has values outside {info.dtype}", field=key)
            return arr.astype(info.dtype, copy=False)
        raise RequestError(f"input {key!r}: dtype {info.dtype_name} is not supported", field=key)


def _warm_up(model: LoadedModel) -> None:
    """Run each signature once on zeros: TF traces and allocates on the first call, not the user's request."""
    for sig in model.signatures.values():
        feed = {}
        for key, info in sig.inputs.items():
            if info.shape is None or info.dtype.kind not in "fiub":
                return
            feed[key] = np.zeros([1 if d is None else d for d in info.shape], dtype=info.dtype)
        sig.fn(**feed)


def _serving_meta_graph(sm: Any) -> Any:
    """The meta graph tagged exactly ``serve``, as TF Serving picks by default (a SavedModel may also hold
    ``train`` or ``gpu`` graphs); one meta graph of any tags is taken as it is, as TF2's loader does."""
    if len(sm.meta_graphs) == 1:
        return sm.meta_graphs[0]
    for meta_graph in sm.meta_graphs:
        if set(meta_graph.meta_info_def.tags) == {_SERVE_TAG}:
            return meta_graph
    tag_sets = ", ".join(str(sorted(mg.meta_info_def.tags)) for mg in sm.meta_graphs)
    raise ValueError(f"no meta graph tagged exactly ['serve'] among {tag_sets}")


def _first_line(exc: BaseException) -> str:
    """The informative first line of a TensorFlow error (its first line is often "Graph execution error:")."""
    for line in str(exc).splitlines():
        line = line.strip()
        if line and line != "Graph execution error:":
            return line
    return ""


def _session_config() -> Any:
    """The process's ``tf.config`` settings (devices, GPU memory growth, intra-op threads) as a
    ``ConfigProto``, so a session honours what a notebook set; graphs run in the caller's thread."""
    from tensorflow.core.protobuf import config_pb2

    config = config_pb2.ConfigProto()
    try:
        from tensorflow.python.eager import context

        config.CopyFrom(context.context().config)
    except Exception:  # noqa: BLE001 - private API: without it, TensorFlow's defaults
        pass
    config.inter_op_parallelism_threads = -1
    config.allow_soft_placement = True
    return config


def _dense(sdef: Any) -> bool:
    """Whether every input and output of the ``SignatureDef`` is one plain named tensor."""
    return all(t.WhichOneof("encoding") == "name" for t in (*sdef.inputs.values(), *sdef.outputs.values()))


def _session_runners(
    tf: Any, path: Path, tags: list[str], signature_defs: Mapping[str, Any]
) -> tuple[Any, dict[str, Any]]:
    """Load the meta graph tagged ``tags`` into its own graph and ``Session``; one callable per signature.

    This is how TF Serving runs a SavedModel (a session over the meta graph, fed and fetched by tensor
    name), and it is what keeps a served request close to an in-process call: a prepared callable skips
    the eager function machinery (argument flattening, structured outputs), and
    ``inter_op_parallelism_threads = -1`` runs the graph in the calling request thread instead of
    handing it to an inter-op pool and waiting. Concurrent requests still run side by side (one gRPC
    worker thread each), and each op still uses the intra-op pool, so a large batch uses every core.
    Before and after: BENCHMARKS.md, section 3.
    """
    graph = tf.Graph()
    with graph.as_default(), _quiet_tf_loader(tf):
        session = tf.compat.v1.Session(graph=graph, config=_session_config())
        tf.compat.v1.saved_model.loader.load(session, tags, str(path))
    runners: dict[str, Any] = {}
    for name, sdef in signature_defs.items():
        inputs, outputs = list(sdef.inputs), list(sdef.outputs)
        call = session.make_callable(
            [sdef.outputs[k].name for k in outputs], feed_list=[sdef.inputs[k].name for k in inputs]
        )

        def run(_call: Any = call, _inputs: list[str] = inputs, _outputs: list[str] = outputs, **feed: Any) -> dict:
            return dict(zip(_outputs, _call(*[feed[k] for k in _inputs])))

        runners[name] = run
    return session, runners


def _eager_runner(fn: Any) -> Any:
    def run(**feed: Any) -> dict:
        return {k: v.numpy() for k, v in fn(**feed).items()}

    return run


@contextlib.contextmanager
def _quiet_tf_loader(tf: Any) -> Iterator[None]:
    """TF1's loader logs a deprecation warning and "Restoring parameters from ..." (INFO, shown by
    ``mnistkit serve``) on every load, retries of a broken version included; the server logs its own line."""
    logger = tf.get_logger()
    level = logger.level
    logger.setLevel(max(level, logging.WARNING))
    try:
        from tensorflow.python.util import deprecation

        silence: Any = deprecation.silence()
    except ImportError:  # a TensorFlow without the private module: the warning is harmless
        silence = contextlib.nullcontext()
    try:
        with silence:
            yield
    finally:
        logger.setLevel(level)


def load_model(path: str | os.PathLike[str], version: int = 0) -> LoadedModel:
    """Load the SavedModel at ``path``; any failure is a ``ServingError`` saying why, in one line."""
    from mnistkit.errors import ServingError

    path = Path(path)
    try:
        from mnistkit.tf_runtime import import_tensorflow

        tf = import_tensorflow()
        from tensorflow.core.protobuf import saved_model_pb2

        sm = saved_model_pb2.SavedModel.FromString((path / _MARKER).read_bytes())
        if not sm.meta_graphs:
            raise ValueError("saved_model.pb has no meta graph")
        meta_graph = _serving_meta_graph(sm)
        tags = list(meta_graph.meta_info_def.tags)
        # TF2's initializer is listed among the signatures but is not one to call (TF's loader hides it too).
        callable_defs = {k: v for k, v in meta_graph.signature_def.items() if k != _INIT_OP_KEY}
        if all(_dense(sdef) for sdef in callable_defs.values()):
            session, runners = _session_runners(tf, path, tags, callable_defs)
            model = LoadedModel(version, path, runners, meta_graph.signature_def, keep_alive=session)
        else:  # sparse or composite tensors in a signature: TF2's loader handles those, a feed list does not
            loaded = tf.saved_model.load(str(path), tags=tags)
            runners = {name: _eager_runner(fn) for name, fn in loaded.signatures.items()}
            model = LoadedModel(version, path, runners, meta_graph.signature_def, keep_alive=loaded)
        if not model.signatures:
            raise ValueError("the SavedModel has no signatures")
        _warm_up(model)
        return model
    except Exception as exc:
        detail = _first_line(exc)
        raise ServingError(
            f"cannot load the SavedModel in {path}: {type(exc).__name__}: {detail}"[:500], field="path", value=str(path)
        ) from None


@dataclass(frozen=True)
class VersionStatus:
    """One version's state as TF Serving reports it (``AVAILABLE``, ``LOADING``, ``END``)."""

    version: int
    state: str
    error_code: str = "OK"
    error_message: str = ""


class ModelManager:
    """Follows ``base_path`` (a directory or ``s3://`` URL) and keeps the latest loadable version serving."""

    def __init__(
        self,
        name: str,
        base_path: str | os.PathLike[str],
        *,
        poll_wait_seconds: float = 1.0,
        s3_config: S3Config | None = None,
        cache_dir: str | os.PathLike[str] | None = None,
    ) -> None:
        self.name = name
        self.base_path = str(base_path)
        self.poll_wait_seconds = max(0.05, float(poll_wait_seconds))
        self._is_s3 = self.base_path.startswith("s3://")
        self._s3_config = s3_config
        self._s3_client: Any = None
        self._own_cache = False
        if self._is_s3:
            from mnistkit.config import split_s3_url

            self._bucket, self._prefix = split_s3_url(self.base_path, "model_base_path")
            if cache_dir is None:
                cache_dir = tempfile.mkdtemp(prefix=f"mnistkit-serve-{name}-")
                self._own_cache = True
            self.local_dir = Path(cache_dir)
            self.local_dir.mkdir(parents=True, exist_ok=True)
        else:
            self.local_dir = Path(self.base_path)
        self._current: LoadedModel | None = None
        self._history: dict[int, VersionStatus] = {}
        # version -> (error message, files fingerprint at the failed attempt, monotonic time of it)
        self._failures: dict[int, tuple[str, tuple[Any, ...], float]] = {}
        self._warned: set[str] = set()
        self._lock = threading.Lock()  # one poll at a time (the thread and explicit poll_once calls)
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._changed = threading.Condition()

    # -- serving side -------------------------------------------------------------------------------

    @property
    def current(self) -> LoadedModel | None:
        return self._current

    def get(self, version: int | None = None) -> LoadedModel:
        """The model for ``version`` (``None``: the latest); NOT_FOUND / UNAVAILABLE otherwise."""
        model = self._current  # one read: a concurrent swap cannot change it under this request
        if model is None:
            raise RequestError(
                f"model {self.name!r} has no version loaded yet (watching {self.base_path})",
                "UNAVAILABLE",
                field="model_name",
                value=self.name,
            )
        if version is not None and version != model.version:
            raise RequestError(
                f"Servable not found for request: Specific({self.name}, {version}) "
                f"(version {model.version} is the one being served)",
                "NOT_FOUND",
                field="version",
                value=version,
            )
        return model

    def status(self, version: int | None = None) -> list[VersionStatus]:
        """Every version this manager knows of, newest first, or just ``version`` (NOT_FOUND if unknown)."""
        entries = dict(self._history)
        for v, (msg, _fp, _t) in list(self._failures.items()):  # list(): the poller may change it meanwhile
            if v not in entries or entries[v].state != "AVAILABLE":
                entries[v] = VersionStatus(v, "END", "UNKNOWN", msg)
        if version is not None:
            if version not in entries:
                raise RequestError(
                    f"Could not find version {version} of model {self.name}", "NOT_FOUND", field="version", value=version
                )
            return [entries[version]]
        if not entries:
            raise RequestError(
                f"Could not find any versions of model {self.name} (watching {self.base_path})",
                "NOT_FOUND",
                field="model_name",
                value=self.name,
            )
        return [entries[v] for v in sorted(entries, reverse=True)]

    # -- polling ------------------------------------------------------------------------------------

    def start(self) -> ModelManager:
        """Poll once now (so a server answers as soon as ``start`` returns), then in a thread."""
        self.poll_once()
        self._stop.clear()
        self._thread = threading.Thread(target=self._run, name=f"mnistkit-poll-{self.name}", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=30)
            self._thread = None
        if self._own_cache:
            shutil.rmtree(self.local_dir, ignore_errors=True)

    def wait_for_version(self, version: int, timeout: float = 30.0) -> bool:
        """Block until ``version`` (or a newer one) is serving; False on timeout."""
        deadline = time.monotonic() + timeout
        with self._changed:
            while True:
                cur = self._current
                if cur is not None and cur.version >= version:
                    return True
                left = deadline - time.monotonic()
                if left <= 0:
                    return False
                self._changed.wait(min(left, 0.1))

    def _run(self) -> None:
        while not self._stop.wait(self.poll_wait_seconds):
            try:
                self.poll_once()
            except Exception:  # never let the poller die: the old version must keep serving
                log.exception("model %s: polling %s failed; will retry", self.name, self.base_path)

    def _warn_once(self, message: str) -> None:
        if message not in self._warned:
            self._warned.add(message)
            log.warning("%s", message)

    def _local_versions(self) -> list[int]:
        """Numeric version directories that hold a saved_model.pb, newest first."""
        try:
            entries = list(os.scandir(self.local_dir))
        except FileNotFoundError:
            self._warn_once(f"model {self.name}: base path {self.local_dir} does not exist yet; waiting for it")
            return []
        except OSError as exc:
            self._warn_once(f"model {self.name}: cannot list {self.local_dir}: {exc.strerror}")
            return []
        versions = []
        for e in entries:
            if _VERSION_DIR.match(e.name) and e.is_dir() and os.path.isfile(os.path.join(e.path, _MARKER)):
                versions.append(int(e.name))
        return sorted(versions, reverse=True)

    def _sync_s3(self) -> None:
        """Download the newest remote version worth trying into the cache (one per poll)."""
        from mnistkit import s3

        try:
            if self._s3_client is None:
                cfg = self._s3_config or S3Config.from_env(bucket=self._bucket)
                self._s3_client = s3.make_client(cfg)
            remote = s3.list_model_versions(self._s3_client, self._bucket, self._prefix)
        except MnistkitError as exc:
            self._warn_once(f"model {self.name}: cannot list {self.base_path}: {exc}; will retry")
            return
        cur = self._current
        for v in sorted(remote, reverse=True):
            if cur is not None and v <= cur.version:
                return
            target = self.local_dir / str(v)
            if not target.exists():
                tmp = self.local_dir / f".download-{v}-{uuid.uuid4().hex[:8]}"
                prefix = f"{self._prefix}/{v}".strip("/")
                log.info("model %s: downloading version %d from %s/%d", self.name, v, self.base_path, v)
                try:
                    s3.download_prefix(self._s3_client, self._bucket, prefix, tmp)
                    os.rename(tmp, target)
                except (MnistkitError, OSError) as exc:
                    shutil.rmtree(tmp, ignore_errors=True)
                    self._warn_once(f"model {self.name}: downloading version {v} failed: {exc}; will retry")
                return
            if v not in self._failures:
                return  # cached and not known bad: the local policy will load it

    def poll_once(self) -> LoadedModel | None:
        """Look for a newer version and load it; returns the model serving afterwards."""
        with self._lock:
            if self._is_s3:
                self._sync_s3()
            versions = self._local_versions()
            cur = self._current
            if cur is not None and cur.version not in versions:
                self._warn_once(
                    f"model {self.name}: version {cur.version} disappeared from {self.local_dir}; serving it "
                    "from memory until an older or newer version loads"
                )
            for v in versions:  # newest first: stop at the one serving, or at the first that loads
                if cur is not None and v == cur.version:
                    break
                if not self._worth_trying(v):
                    continue
                if self._try_load(v, cur):
                    break
            return self._current

    def _fingerprint(self, version: int) -> tuple[Any, ...]:
        """Names, sizes and mtimes of a version's files: changes when someone finishes or fixes it."""
        items = []
        for root, _dirs, files in os.walk(self.local_dir / str(version)):
            for f in files:
                try:
                    st = os.stat(os.path.join(root, f))
                except OSError:
                    continue
                items.append((os.path.join(root, f), st.st_size, st.st_mtime_ns))
        return tuple(sorted(items))

    def _worth_trying(self, version: int) -> bool:
        """A version that failed is retried when its files change, else at most every RETRY_SECONDS.

        Re-loading a broken model on every poll would burn CPU for as long as it sits there.
        """
        failed = self._failures.get(version)
        if failed is None:
            return True
        _msg, fingerprint, when = failed
        return fingerprint != self._fingerprint(version) or time.monotonic() - when >= RETRY_SECONDS

    def _try_load(self, version: int, cur: LoadedModel | None) -> bool:
        path = self.local_dir / str(version)
        started = time.monotonic()
        fingerprint = self._fingerprint(version)
        try:
            model = load_model(path, version)
        except MnistkitError as exc:
            first = version not in self._failures
            self._failures[version] = (str(exc), fingerprint, time.monotonic())
            if first:
                still = f"still serving version {cur.version}" if cur else "no version is serving yet"
                log.warning(
                    "model %s: version %d failed to load (%s); %s; will retry on later polls",
                    self.name, version, exc, still,
                )
            return False
        self._failures.pop(version, None)
        with self._changed:
            self._current = model
            self._history[version] = VersionStatus(version, "AVAILABLE")
            if cur is not None and cur.version != version:
                self._history[cur.version] = VersionStatus(cur.version, "END")
            self._changed.notify_all()
        was = f" (was version {cur.version})" if cur else ""
        log.info(
            "model %s: loaded version %d from %s in %.2f s; now serving version %d%s",
            self.name, version, path, time.monotonic() - started, version, was,
        )
        return True
