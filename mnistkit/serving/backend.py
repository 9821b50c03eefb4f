"""The small interface every front end serves through: find a model, report versions, run a prediction.

The gRPC services (TF Serving's and the Open Inference Protocol's) and the REST front ends import only
this module, the signature checks and the status table; none of them knows about the others or about
the server that starts them. Predictions run on fixed pools of threads: gRPC's worker pool, and
``Backend.pool`` for REST (whose event loop must not run a model), and with batching the batcher's
threads. A thread per connection that runs TensorFlow grows the process with every new connection
(TensorFlow keeps per-thread state), a fixed pool does not. Handlers that run the model are written as
``Steps`` (they yield a ``ModelCall``), so a front end can run them in one thread (``complete``) or
around a queued batch (``run_later``).
"""

from __future__ import annotations

import concurrent.futures
from collections.abc import Callable, Generator, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, TypeVar

import numpy as np

from mnistkit.serving.loading import LoadedModel
from mnistkit.serving.manager import ModelManager, VersionStatus
from mnistkit.serving.signature import MAX_BATCH, MAX_DECODED_BYTES, Signature
from mnistkit.serving.status import RequestError
from mnistkit.versions import is_version_name

if TYPE_CHECKING:
    from mnistkit._types import Proto

__all__ = ["Backend", "ModelCall", "Steps", "parse_version", "resume", "signature_def_map"]

T = TypeVar("T")
Outputs = dict[str, np.ndarray]


@dataclass(frozen=True)
class ModelCall:
    """What a request handler asks the backend to run: checked ``inputs`` through ``sig`` of ``model``."""

    model: LoadedModel
    sig: Signature
    inputs: Mapping[str, np.ndarray]
    wanted: list[str]


# A request handler written as steps: it yields one ``ModelCall``, receives the outputs, returns its answer.
# The gRPC front ends (threads) run the steps in one go (``Backend.complete``); the REST front end can
# run the part before the model on its event loop and the rest where the model ran (``Backend.run_later``).
Steps = Generator[ModelCall, Outputs, T]


def parse_version(text: str | None) -> int | None:
    """A version a request names as text (a URL, a v2 ``model_version``): ASCII digits, or None for "latest"."""
    if not text:
        return None
    if not is_version_name(text):
        raise RequestError(f"version must be a number, got {text[:50]!r}", field="version", value=text[:50])
    return int(text)


class Backend:
    """One model name over a ``ModelManager``, with the request limits and the prediction pool."""

    def __init__(
        self,
        model_name: str,
        manager: ModelManager,
        *,
        max_batch: int = MAX_BATCH,
        max_decoded_bytes: int = MAX_DECODED_BYTES,
        workers: int = 16,
    ) -> None:
        self.model_name = model_name
        self.manager = manager
        self.max_batch = max_batch
        self.max_decoded_bytes = max_decoded_bytes
        self.workers = workers
        self._pool: concurrent.futures.ThreadPoolExecutor | None = None
        self.runner: Callable[[LoadedModel, Signature, Mapping[str, np.ndarray], list[str]], dict[str, np.ndarray]]
        self.runner = _run_direct
        # With batching on: queue a call and return at once, ``done(outputs, error)`` called on a batch thread.
        self.enqueue: Callable[[ModelCall, Callable[[Outputs | None, BaseException | None], None]], bool] | None
        self.enqueue = None

    @property
    def pool(self) -> concurrent.futures.ThreadPoolExecutor:
        """The fixed pool REST predictions run on (created on first use)."""
        if self._pool is None:
            self._pool = concurrent.futures.ThreadPoolExecutor(self.workers, thread_name_prefix="mnistkit-predict")
        return self._pool

    def submit(self, fn: Callable[..., T], *args: Any) -> concurrent.futures.Future[T]:
        return self.pool.submit(fn, *args)

    def close(self) -> None:
        if self._pool is not None:
            self._pool.shutdown(wait=False, cancel_futures=True)
            self._pool = None

    def resolve(self, name: str, version: int | None = None) -> LoadedModel:
        """The loaded model answering for ``name`` (and ``version``); RequestError otherwise."""
        if name != self.model_name:
            what = f"Specific({name[:100]}, {version})" if version is not None else f"Latest({name[:100]})"
            raise RequestError(
                f"Servable not found for request: {what} (this server serves {self.model_name!r})",
                "NOT_FOUND",
                field="model_name",
                value=name[:100],
            )
        return self.manager.get(version)

    def status(self, name: str, version: int | None = None) -> list[VersionStatus]:
        if name != self.model_name:
            raise RequestError(
                f"Could not find any versions of model {name[:100]}", "NOT_FOUND", field="model_name", value=name[:100]
            )
        return self.manager.status(version)

    def run(
        self, model: LoadedModel, sig: Signature, inputs: Mapping[str, np.ndarray], wanted: list[str]
    ) -> dict[str, np.ndarray]:
        """Run checked ``inputs`` through ``sig`` (merged with concurrent requests when batching is on)."""
        return self.runner(model, sig, inputs, wanted)

    def complete(self, steps: Steps[T]) -> T:
        """Run a handler's steps in this thread: the part before the model, the model, the rest."""
        try:
            call = next(steps)
        except StopIteration as stop:  # answered without the model
            return stop.value
        return resume(steps, self.run(call.model, call.sig, call.inputs, call.wanted))

    def run_later(self, call: ModelCall, done: Callable[[Outputs | None, BaseException | None], None]) -> None:
        """Run ``call`` off the calling thread and call ``done(outputs, error)`` where it ran: queued for a
        batch when batching takes it (no thread waits for it), else on the prediction pool."""
        if self.enqueue is not None and self.enqueue(call, done):
            return

        def run() -> None:
            try:
                outputs = self.run(call.model, call.sig, call.inputs, call.wanted)
            except Exception as exc:  # noqa: BLE001 - handed to ``done``, which answers with it
                done(None, exc)
                return
            done(outputs, None)

        self.submit(run)


def resume(steps: Steps[T], outputs: Outputs) -> T:
    """A handler's steps after its model call: its answer from ``outputs``."""
    try:
        steps.send(outputs)
    except StopIteration as stop:
        return stop.value
    raise RuntimeError("a request handler asked for the model twice")


def _run_direct(
    model: LoadedModel, sig: Signature, inputs: Mapping[str, np.ndarray], wanted: list[str]
) -> dict[str, np.ndarray]:
    return model.run(sig, inputs, wanted)


def signature_def_map(model: LoadedModel) -> Proto:
    """The model's ``SignatureDefMap`` proto (what TF Serving's metadata answers under ``signature_def``)."""
    from tensorflow_serving.apis import get_model_metadata_pb2

    sdm = get_model_metadata_pb2.SignatureDefMap()
    for name, sdef in model.signature_defs.items():
        sdm.signature_def[name].CopyFrom(sdef)
    return sdm
