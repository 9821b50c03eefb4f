"""Loading a SavedModel version into something to call: a ``LoadedModel`` with its signatures.

TF Serving runs a SavedModel as a session over its ``serve`` meta graph, fed and fetched by tensor name;
``load_model`` does the same (``_session_runners``), with TF2's loader as the fallback for signatures with
sparse or composite tensors. Checking requests against a signature is ``signature.py``'s; following a
base path and its versions is ``manager.py``'s.
"""

from __future__ import annotations

import contextlib
import logging
import os
from collections.abc import Callable, Iterator, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from mnistkit.serving.signature import (
    DEFAULT_SIGNATURE,
    MAX_BATCH,
    Signature,
    UnknownSignature,
    check_outputs,
    feed,
    tensor_info,
)
from mnistkit.serving.status import RequestError
from mnistkit.versions import MARKER_FILE

if TYPE_CHECKING:
    from mnistkit._types import Proto, TFModule, TFObject

Runner = Callable[..., dict[str, np.ndarray]]  # a signature run by input name: its outputs by name

__all__ = ["LoadedModel", "load_model"]

_SERVE_TAG = "serve"
_INIT_OP_KEY = "__saved_model_init_op"  # tensorflow.python.saved_model.constants.INIT_OP_SIGNATURE_KEY


class LoadedModel:
    """One loaded version: its signatures (callable) and their ``SignatureDef`` protos."""

    def __init__(
        self,
        version: int,
        path: Path,
        runners: Mapping[str, Runner],
        signature_defs: Mapping[str, Proto],
        keep_alive: object = None,
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
                {k: tensor_info(k, v) for k, v in sdef.inputs.items()},
                {k: tensor_info(k, v) for k, v in sdef.outputs.items()},
                fn,
            )

    def signature(self, name: str | None) -> Signature:
        name = name or DEFAULT_SIGNATURE
        sig = self.signatures.get(name)
        if sig is None:
            raise UnknownSignature(
                f'Serving signature name: "{name[:100]}" not found in signature def '
                f"(this model has: {', '.join(sorted(self.signatures)) or 'none'})",
                field="signature_name",
                value=name[:100],
            )
        return sig

    def run(self, sig: Signature, inputs: Mapping[str, np.ndarray], wanted: list[str]) -> dict[str, np.ndarray]:
        """Call ``sig`` on inputs already checked by ``signature.feed``; the outputs named ``wanted``."""
        try:
            result = sig.fn(**inputs)
        except Exception as exc:  # noqa: BLE001 - tf.errors.InvalidArgumentError and friends
            kind = type(exc).__name__
            code = "INVALID_ARGUMENT" if "InvalidArgument" in kind else "INTERNAL"
            first = _first_line(exc) or kind
            raise RequestError(f"running signature {sig.name!r} failed: {first}", code, field="inputs") from None
        return {k: np.asarray(result[k]) for k in wanted}

    def predict(
        self,
        signature_name: str | None,
        inputs: Mapping[str, object],
        *,
        strict_dtype: bool = True,
        max_batch: int = MAX_BATCH,
        output_filter: list[str] | None = None,
    ) -> dict[str, np.ndarray]:
        """Validate ``inputs`` against the signature (``signature.feed``) and run it."""
        sig = self.signature(signature_name)
        wanted = check_outputs(sig, output_filter)
        return self.run(sig, feed(sig, inputs, strict_dtype=strict_dtype, max_batch=max_batch), wanted)


def _warm_up(model: LoadedModel) -> None:
    """Run each signature once on zeros: TF traces and allocates on the first call, not the user's request."""
    for sig in model.signatures.values():
        feed = {}
        for key, info in sig.inputs.items():
            if info.shape is None or info.dtype.kind not in "fiub":
                return
            feed[key] = np.zeros([1 if d is None else d for d in info.shape], dtype=info.dtype)
        sig.fn(**feed)


def _serving_meta_graph(sm: Proto) -> Proto:
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


def _session_config() -> Proto:
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


def _dense(sdef: Proto) -> bool:
    """Whether every input and output of the ``SignatureDef`` is one plain named tensor."""
    return all(t.WhichOneof("encoding") == "name" for t in (*sdef.inputs.values(), *sdef.outputs.values()))


def _session_runners(
    tf: TFModule, path: Path, tags: list[str], signature_defs: Mapping[str, Proto]
) -> tuple[TFObject, dict[str, Runner]]:
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
    from tensorflow.core.protobuf import config_pb2

    runners: dict[str, Runner] = {}
    for name, sdef in signature_defs.items():
        inputs, outputs = list(sdef.inputs), list(sdef.outputs)
        feeds, fetches = [sdef.inputs[k].name for k in inputs], [sdef.outputs[k].name for k in outputs]
        if hasattr(session, "_make_callable_from_options"):
            # The C++ Session::MakeCallable (what TF Serving's runner is): fed and fetched without
            # Session.run's per-call Python (fetch handler, graph lookups), ~0.18 ms less per call.
            call = session._make_callable_from_options(config_pb2.CallableOptions(feed=feeds, fetch=fetches))
        else:
            call = session.make_callable(fetches, feed_list=feeds)

        def run(
            _call: TFObject = call, _inputs: list[str] = inputs, _outputs: list[str] = outputs, **feed: Any
        ) -> dict[str, np.ndarray]:
            return dict(zip(_outputs, _call(*[feed[k] for k in _inputs])))

        runners[name] = run
    return session, runners


def _eager_runner(fn: TFObject) -> Runner:
    def run(**feed: Any) -> dict[str, np.ndarray]:
        return {k: v.numpy() for k, v in fn(**feed).items()}

    return run


@contextlib.contextmanager
def _quiet_tf_loader(tf: TFModule) -> Iterator[None]:
    """TF1's loader logs a deprecation warning and "Restoring parameters from ..." (INFO, shown by
    ``mnistkit serve``) on every load, retries of a broken version included; the server logs its own line."""
    logger = tf.get_logger()
    level = logger.level
    logger.setLevel(max(level, logging.WARNING))
    try:
        from tensorflow.python.util import deprecation

        silence: contextlib.AbstractContextManager[object] = deprecation.silence()
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

        sm = saved_model_pb2.SavedModel.FromString((path / MARKER_FILE).read_bytes())
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
    except Exception as exc:  # noqa: BLE001 - reported, never raised at the user
        # The message reaches clients (GetModelStatus): no local paths in it; the server's log names the path.
        detail = _first_line(exc)
        for local in {str(path), str(path.resolve())}:
            detail = detail.replace(local, f"<version {version}>")
        raise ServingError(
            f"cannot load the SavedModel of version {version}: {type(exc).__name__}: {detail}"[:500],
            field="version",
            value=version,
        ) from None
