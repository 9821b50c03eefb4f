"""Dynamic batching, as TF Serving's ``--enable_batching``: concurrent requests merged into one model call.

A request thread (a gRPC worker or a REST pool thread, of either protocol) puts its checked inputs in a
queue and waits; ``num_batch_threads`` batch threads each take the oldest request and every queued one
with the same model, signature, outputs and per-example shape, up to ``max_batch_size`` rows or until
``batch_timeout_micros`` after the first arrived (or, while no batch runs, as soon as as many rows wait
as the last batch had: see ``Batcher``), pad the rows to the next of ``allowed_batch_sizes``
(if given), run the model once, and hand each request its rows back. More than ``max_enqueued_batches``
batches waiting is ``RESOURCE_EXHAUSTED``, and a request at least ``max_batch_size`` rows long runs on
its own. The parameters come from TF Serving's ``--batching_parameters_file`` (its text format).
"""

from __future__ import annotations

import logging
import threading
import time
from collections import deque
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from mnistkit.errors import ConfigError
from mnistkit.serving.backend import ModelCall
from mnistkit.serving.loading import LoadedModel
from mnistkit.serving.signature import Signature
from mnistkit.serving.status import RequestError

# (model, signature, wanted outputs, (input, dtype, row shape)...): requests with the same key share a batch
BatchKey = tuple[int, str, tuple[str, ...], tuple[tuple[str, str, tuple[int, ...]], ...]]

if TYPE_CHECKING:
    from mnistkit._types import Proto

__all__ = ["BatchingParameters", "Batcher", "parse_batching_parameters", "read_batching_parameters"]

log = logging.getLogger("mnistkit.serving")


@dataclass(frozen=True)
class BatchingParameters:
    """TF Serving's ``BatchingParameters`` that mnistkit uses (defaults: TF Serving's, with a 1 ms timeout)."""

    max_batch_size: int = 32
    batch_timeout_micros: int = 1000
    max_enqueued_batches: int = 100
    num_batch_threads: int = 2
    allowed_batch_sizes: tuple[int, ...] = ()

    def __post_init__(self) -> None:
        for name in ("max_batch_size", "max_enqueued_batches", "num_batch_threads"):
            if getattr(self, name) < 1:
                raise ConfigError(
                    f"batching parameter {name} must be at least 1, got {getattr(self, name)}",
                    field=name,
                    value=getattr(self, name),
                )
        if self.batch_timeout_micros < 0:
            raise ConfigError(
                "batching parameter batch_timeout_micros must not be negative",
                field="batch_timeout_micros",
                value=self.batch_timeout_micros,
            )
        sizes = self.allowed_batch_sizes
        if sizes and (list(sizes) != sorted(set(sizes)) or sizes[-1] != self.max_batch_size or sizes[0] < 1):
            raise ConfigError(
                "allowed_batch_sizes must increase and end with max_batch_size "
                f"({self.max_batch_size}), got {list(sizes)}",
                field="allowed_batch_sizes",
                value=list(sizes),
            )


def _message_class() -> Callable[[], Proto]:
    """TF Serving's ``BatchingParameters`` message (session_bundle_config.proto), for its text format."""
    from google.protobuf import descriptor_pb2, descriptor_pool, message_factory, wrappers_pb2

    pool = descriptor_pool.DescriptorPool()
    pool.AddSerializedFile(wrappers_pb2.DESCRIPTOR.serialized_pb)
    fdp = descriptor_pb2.FileDescriptorProto(
        name="mnistkit/batching_parameters.proto",
        package="tensorflow.serving",
        syntax="proto3",
        dependency=["google/protobuf/wrappers.proto"],
    )
    msg = fdp.message_type.add(name="BatchingParameters")
    wrapped = {
        "max_batch_size": (1, "Int64Value"),
        "batch_timeout_micros": (2, "Int64Value"),
        "max_enqueued_batches": (3, "Int64Value"),
        "num_batch_threads": (4, "Int64Value"),
        "thread_pool_name": (5, "StringValue"),
        "enable_large_batch_splitting": (9, "BoolValue"),
        "max_execution_batch_size": (10, "Int64Value"),
    }
    fd = descriptor_pb2.FieldDescriptorProto
    for name, (number, kind) in wrapped.items():
        msg.field.add(
            name=name,
            number=number,
            type=fd.TYPE_MESSAGE,
            type_name=f".google.protobuf.{kind}",
            label=fd.LABEL_OPTIONAL,
        )
    msg.field.add(name="allowed_batch_sizes", number=6, type=fd.TYPE_INT64, label=fd.LABEL_REPEATED)
    msg.field.add(name="pad_variable_length_inputs", number=7, type=fd.TYPE_BOOL, label=fd.LABEL_OPTIONAL)
    pool.Add(fdp)
    return message_factory.GetMessageClass(pool.FindMessageTypeByName("tensorflow.serving.BatchingParameters"))


def parse_batching_parameters(text: str) -> BatchingParameters:
    """TF Serving's ``--batching_parameters_file`` text (``max_batch_size { value: 128 }``...)."""
    from google.protobuf import text_format

    try:
        proto = text_format.Parse(text, _message_class()())
    except text_format.ParseError as exc:
        raise ConfigError(f"batching parameters: {exc}", field="batching_parameters_file") from None
    values: dict[str, Any] = {}
    for name in ("max_batch_size", "batch_timeout_micros", "max_enqueued_batches", "num_batch_threads"):
        if proto.HasField(name):
            values[name] = int(getattr(proto, name).value)
    if proto.allowed_batch_sizes:
        values["allowed_batch_sizes"] = tuple(int(v) for v in proto.allowed_batch_sizes)
    return BatchingParameters(**values)


def read_batching_parameters(path: str | None) -> BatchingParameters:
    """The parameters in ``path`` (TF Serving's text format); the defaults for ``None``."""
    if not path:
        return BatchingParameters()
    try:
        text = Path(path).read_text()
    except OSError as exc:
        raise ConfigError(
            f"cannot read --batching_parameters_file {path}: {exc.strerror}",
            field="batching_parameters_file",
            value=path,
        ) from None
    return parse_batching_parameters(text)


class _Task:
    """One request waiting in the queue; ``finish`` hands it its rows (or an error) and calls ``notify``."""

    __slots__ = ("key", "call", "rows", "arrived", "result", "error", "notify", "finished")

    def __init__(self, key: BatchKey, call: ModelCall, rows: int, notify: Callable[[_Task], None]) -> None:
        self.key, self.call, self.rows, self.notify = key, call, rows, notify
        self.arrived = time.monotonic()
        self.result: dict[str, np.ndarray] | None = None
        self.error: BaseException | None = None
        self.finished = False

    def finish(self, result: dict[str, np.ndarray] | None = None, error: BaseException | None = None) -> None:
        """Only the first call counts, and a failing ``notify`` is logged, as a ``Future`` does: a batch that
        fails after handing out some rows must not notify those requests twice or stop its batch thread."""
        if self.finished:
            return
        self.finished = True
        self.result, self.error = result, error
        try:
            self.notify(self)
        except Exception:  # one request's completion must not fail its batch-mates (logged)
            log.exception("batching: a request's completion callback failed")

    def outputs(self) -> dict[str, np.ndarray]:
        """The rows of this request (after ``notify``), or its error raised."""
        if self.error is not None:
            raise self.error
        assert self.result is not None
        return self.result


def _batchable(sig: Signature) -> bool:
    """Every input and output has an unknown leading (batch) dimension."""
    return all(
        t.shape is not None and len(t.shape) >= 1 and t.shape[0] is None
        for t in (*sig.inputs.values(), *sig.outputs.values())
    )


class Batcher:
    """Merges concurrent requests into model calls; ``run`` is a drop-in for ``Backend.run``.

    When a batch runs: when it is full, when ``batch_timeout_micros`` have passed since its oldest request
    arrived (TF Serving's two rules), or when no batch is running and as many rows wait as the last batch
    had. The last rule is what keeps a lone client from waiting (its batches have one row, so its next
    request runs at once, in its own thread: no hand-off to a batch thread) while concurrent clients get
    full batches: under load a batch waits for as many requests as the previous one had (they are on their
    way: their clients got answers at the same time), instead of running the first arrival alone and the
    rest after it.
    """

    def __init__(self, params: BatchingParameters) -> None:
        self.params = params
        self._queue: deque[_Task] = deque()
        self._rows = 0
        self._running = 0  # batches being run now
        self._expected = 1  # rows of the last batch: how many requests arrive together now
        self.batches = 0  # model calls made, and the rows they held (logged at stop)
        self.rows = 0
        self._cond = threading.Condition()
        self._stopped = False
        self._threads = [
            threading.Thread(target=self._loop, name=f"mnistkit-batch-{i}", daemon=True)
            for i in range(params.num_batch_threads)
        ]
        for t in self._threads:
            t.start()

    def run(
        self, model: LoadedModel, sig: Signature, inputs: Mapping[str, np.ndarray], wanted: list[str]
    ) -> dict[str, np.ndarray]:
        rows = self._rows_of(sig, inputs)
        if rows is None:
            return model.run(sig, inputs, wanted)
        with self._cond:
            alone = not self._queue and self._running == 0 and self._expected <= rows and not self._stopped
            if alone:  # nothing to wait for: a batch of its own, run in this thread (no hand-off)
                self._running += 1
                self._expected = rows
                self.batches += 1
                self.rows += rows
        if alone:
            try:
                return model.run(sig, inputs, wanted)
            finally:
                with self._cond:
                    self._running -= 1
                    self._cond.notify_all()  # requests that came meanwhile are batched now
        done = threading.Lock()
        done.acquire()
        task = self._enqueue(ModelCall(model, sig, inputs, wanted), rows, lambda _task: done.release())
        done.acquire()  # released by ``finish`` on a batch thread
        return task.outputs()

    def submit(
        self, call: ModelCall, done: Callable[[dict[str, np.ndarray] | None, BaseException | None], None]
    ) -> bool:
        """Queue ``call`` without waiting: ``done(outputs, error)`` is called on a batch thread. False when
        batching does not take it (too many rows, or a signature without a batch dimension)."""
        rows = self._rows_of(call.sig, call.inputs)
        if rows is None:
            return False
        self._enqueue(call, rows, lambda task: done(task.result, task.error))
        return True

    def _rows_of(self, sig: Signature, inputs: Mapping[str, np.ndarray]) -> int | None:
        """The rows of a request batching takes; None for one it runs alone (as long as a batch, or a
        signature without a batch dimension)."""
        rows = next(iter(inputs.values())).shape[0] if inputs else 0
        return None if rows >= self.params.max_batch_size or not _batchable(sig) else int(rows)

    def _enqueue(self, call: ModelCall, rows: int, notify: Callable[[_Task], None]) -> _Task:
        key = (
            id(call.model),
            call.sig.name,
            tuple(call.wanted),
            tuple((k, v.dtype.str, v.shape[1:]) for k, v in sorted(call.inputs.items())),
        )
        task = _Task(key, call, rows, notify)
        with self._cond:
            if self._stopped:
                raise RequestError("the server is stopping", "UNAVAILABLE")
            if self._rows + rows > self.params.max_enqueued_batches * self.params.max_batch_size:
                raise RequestError(
                    f"the batch queue is full ({self.params.max_enqueued_batches} batches waiting); retry later",
                    "RESOURCE_EXHAUSTED",
                )
            self._queue.append(task)
            self._rows += rows
            self._cond.notify()
        return task

    def stop(self) -> None:
        with self._cond:
            self._stopped = True
            self._cond.notify_all()
        for t in self._threads:
            t.join(5)
        if self.batches:
            log.info("batching: %d model calls, %.2f rows per call on average", self.batches, self.rows / self.batches)
        with self._cond:
            left, self._queue = list(self._queue), deque()
        for task in left:
            task.finish(error=RequestError("the server is stopping", "UNAVAILABLE"))

    def _take(self) -> list[_Task] | None:
        """The next batch: the oldest task and its kin, once it is time to run them (None when stopping)."""
        timeout = self.params.batch_timeout_micros / 1e6
        limit = self.params.max_batch_size
        with self._cond:
            while True:
                while not self._queue:
                    if self._stopped:
                        return None
                    self._cond.wait()
                first = self._queue[0]
                deadline = first.arrived + timeout
                while self._queue and self._queue[0] is first:  # else another batch thread took it: start over
                    if self._running >= self.params.num_batch_threads:  # a lone request runs in its own thread
                        self._cond.wait()  # and counts as a batch thread: wait for a model call to end
                        continue
                    rows = sum(t.rows for t in self._queue if t.key == first.key)
                    left = deadline - time.monotonic()
                    idle_and_all_here = self._running == 0 and rows >= min(self._expected, limit)
                    if rows >= limit or left <= 0 or self._stopped or idle_and_all_here:
                        return self._collect(first.key, limit)
                    self._cond.wait(left)

    def _collect(self, key: BatchKey, limit: int) -> list[_Task]:
        """Take the oldest tasks with ``key``, up to ``limit`` rows, out of the queue (lock held)."""
        batch: list[_Task] = []
        total = 0
        kept: deque[_Task] = deque()
        for t in self._queue:
            if t.key == key and total + t.rows <= limit:
                batch.append(t)
                total += t.rows
            else:
                kept.append(t)
        self._queue = kept
        self._rows -= total
        self._running += 1
        self._expected = total
        self.batches += 1
        self.rows += total
        if self._queue:
            self._cond.notify()  # another batch thread may start on what is left
        return batch

    def _loop(self) -> None:
        while True:
            batch = self._take()
            if batch is None:
                return
            try:
                self._run(batch)
            except Exception as exc:  # noqa: BLE001 - every waiting request gets the failure
                err = exc if isinstance(exc, RequestError) else RequestError(f"batched run failed: {exc}", "INTERNAL")
                for t in batch:
                    t.finish(error=err)
            finally:
                with self._cond:
                    self._running -= 1
                    self._cond.notify_all()  # a batch thread waiting for this one to end takes its batch now

    def _run(self, batch: list[_Task]) -> None:
        first = batch[0].call
        if len(batch) == 1:
            batch[0].finish(first.model.run(first.sig, first.inputs, first.wanted))
            return
        total = sum(t.rows for t in batch)
        size = next((s for s in self.params.allowed_batch_sizes if s >= total), total)
        merged = {}
        for key in first.inputs:
            parts = [t.call.inputs[key] for t in batch]
            if size > total:  # pad with copies of the last row, as TF Serving pads
                parts.append(np.repeat(parts[-1][-1:], size - total, axis=0))
            merged[key] = np.concatenate(parts)
        outputs = first.model.run(first.sig, merged, first.wanted)
        start = 0
        for t in batch:
            t.finish({k: v[start : start + t.rows] for k, v in outputs.items()})
            start += t.rows
