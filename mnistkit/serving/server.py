"""``ModelServer``: one model, served over TF Serving's gRPC and REST APIs, following a base path.

There is no ``tensorflow_model_server`` on PyPI or Debian, so this is the local stand-in: same flags,
same protocols, same version policy, so a client written against it talks to real TF Serving in a
cluster unchanged. Used by ``mnistkit serve``, the demo and the tests::

    with ModelServer("models/mnist", port=0, rest_api_port=0) as server:
        print(server.grpc_target, server.rest_url)
"""

from __future__ import annotations

import logging
import os
from concurrent import futures
from types import TracebackType
from typing import TYPE_CHECKING

from mnistkit.config import S3Config
from mnistkit.errors import ServingError
from mnistkit.serving.backend import Backend
from mnistkit.serving.batching import BatchingParameters
from mnistkit.serving.loading import LoadedModel
from mnistkit.serving.manager import ModelManager, VersionStatus
from mnistkit.serving.signature import MAX_BATCH, MAX_DECODED_BYTES

if TYPE_CHECKING:
    import grpc

    from mnistkit.serving.batching import Batcher
    from mnistkit.serving.http_front import HttpFrontEnd

__all__ = ["ModelServer", "MAX_REQUEST_BYTES", "MAX_CONCURRENT_RPCS"]

log = logging.getLogger("mnistkit.serving")

MAX_REQUEST_BYTES = 8 * 1024 * 1024
MAX_CONCURRENT_RPCS = 256  # in flight and queued; more are answered RESOURCE_EXHAUSTED at once


class ModelServer:
    """Serve the latest version under ``model_base_path`` as ``model_name``.

    ``port`` (gRPC) and ``rest_api_port`` (REST) of 0 pick free ports; ``rest_api_port=None`` turns REST
    off. Both bind to ``host`` (loopback by default: the server has no authentication). ``grpc_workers``
    threads run predictions for each protocol; at most ``max_concurrent_rpcs`` gRPC calls are in
    flight or queued at once. ``batching`` (TF Serving's ``--enable_batching``) merges concurrent
    requests of both protocols into one model call. ``intra_op_threads`` sizes TensorFlow's intra-op pool
    (TF Serving's ``--tensorflow_intra_op_parallelism``; 0 is one thread per core, None leaves the
    process's setting): 1 runs each request's ops in its own thread, which serves many small requests
    with less CPU each (docs/serving.md); it must be set before TensorFlow runs in the process.
    """

    def __init__(
        self,
        model_base_path: str | os.PathLike[str],
        *,
        model_name: str = "mnist",
        port: int = 8500,
        rest_api_port: int | None = 8501,
        host: str = "127.0.0.1",
        file_system_poll_wait_seconds: float = 1.0,
        s3_config: S3Config | None = None,
        cache_dir: str | os.PathLike[str] | None = None,
        max_batch: int = MAX_BATCH,
        max_request_bytes: int = MAX_REQUEST_BYTES,
        max_decoded_bytes: int = MAX_DECODED_BYTES,
        max_concurrent_rpcs: int = MAX_CONCURRENT_RPCS,
        grpc_workers: int = 16,
        batching: BatchingParameters | None = None,
        intra_op_threads: int | None = None,
    ) -> None:
        if not model_name or "/" in model_name or ":" in model_name:
            raise ServingError(
                f"model_name must be a plain name, got {model_name!r}", field="model_name", value=model_name
            )
        if intra_op_threads is not None and intra_op_threads < 0:
            raise ServingError(
                f"--tensorflow_intra_op_parallelism must be 0 (one thread per core) or more, got {intra_op_threads}",
                field="tensorflow_intra_op_parallelism",
                value=intra_op_threads,
            )
        self.model_name = model_name
        self.host = host
        self.max_batch = max_batch
        self.max_request_bytes = max_request_bytes
        self.max_concurrent_rpcs = max_concurrent_rpcs
        self._requested_ports = (port, rest_api_port)
        self._grpc_workers = grpc_workers
        self.manager = ModelManager(
            model_name,
            model_base_path,
            poll_wait_seconds=file_system_poll_wait_seconds,
            s3_config=s3_config,
            cache_dir=cache_dir,
        )
        self.backend = Backend(
            model_name, self.manager, max_batch=max_batch, max_decoded_bytes=max_decoded_bytes, workers=grpc_workers
        )
        self.batching = batching
        self.intra_op_threads = intra_op_threads
        self._batcher: Batcher | None = None
        self._grpc: grpc.Server | None = None
        self._rest: HttpFrontEnd | None = None
        self.grpc_port: int | None = None
        self.rest_port: int | None = None

    def resolve(self, name: str, version: int | None = None) -> LoadedModel:
        """The loaded model answering for ``name`` (and ``version``); RequestError otherwise."""
        return self.backend.resolve(name, version)

    def status(self, name: str, version: int | None = None) -> list[VersionStatus]:
        return self.backend.status(name, version)

    # -- lifecycle ------------------------------------------------------------------------------------

    @property
    def grpc_target(self) -> str:
        return f"{self._client_host()}:{self.grpc_port}"

    @property
    def rest_url(self) -> str:
        if self.rest_port is None:
            raise ServingError("REST is off on this server (rest_api_port=None)", field="rest_api_port")
        return f"http://{self._client_host()}:{self.rest_port}"

    def _client_host(self) -> str:
        if self.host in ("0.0.0.0", ""):
            return "127.0.0.1"
        if self.host == "::":
            return "[::1]"
        return f"[{self.host}]" if ":" in self.host else self.host

    @property
    def version(self) -> int | None:
        """The version serving now (None before one loads)."""
        cur = self.manager.current
        return cur.version if cur else None

    def wait_for_version(self, version: int, timeout: float = 30.0) -> bool:
        return self.manager.wait_for_version(version, timeout)

    def start(self) -> ModelServer:
        """Load the latest version (if any), start polling, and open the gRPC and REST ports."""
        from mnistkit.tf_runtime import import_tensorflow, set_intra_op_threads

        import_tensorflow()  # before the gRPC service imports TF's protos, so its start-up noise is silenced
        import grpc

        from mnistkit.serving.grpc_service import add_services

        port, rest_port = self._requested_ports
        if self.intra_op_threads is not None:  # before the first model loads: sessions take the pool as it is then
            set_intra_op_threads(self.intra_op_threads)
        if self.batching is not None:
            from mnistkit.serving.batching import Batcher

            self._batcher = Batcher(self.batching)
            self.backend.runner = self._batcher.run
            self.backend.enqueue = self._batcher.submit
        self.manager.start()
        try:
            self._grpc = grpc.server(
                futures.ThreadPoolExecutor(max_workers=self._grpc_workers, thread_name_prefix="mnistkit-grpc"),
                options=[
                    ("grpc.max_receive_message_length", self.max_request_bytes),
                    ("grpc.max_send_message_length", 64 * 1024 * 1024),
                    ("grpc.so_reuseport", 0),  # a second server on the same port must fail, not share it
                ],
                maximum_concurrent_rpcs=self.max_concurrent_rpcs,
            )
            add_services(self._grpc, self.backend)
            self._add_v2(self._grpc)
            host = f"[{self.host}]" if ":" in self.host else self.host
            try:
                bound = self._grpc.add_insecure_port(f"{host}:{port}")
            except RuntimeError:
                bound = 0
            if not bound:
                raise ServingError(
                    f"cannot listen for gRPC on {self.host}:{port} (in use or not allowed); pick another --port",
                    field="port",
                    value=port,
                )
            self.grpc_port = bound
            if rest_port is not None:
                self._rest = self._start_rest(rest_port)
                self.rest_port = self._rest.port
            self._grpc.start()
        except BaseException:
            self.stop()
            raise
        log.info(
            "serving model %s (version %s) from %s: gRPC on %s:%s%s",
            self.model_name,
            self.version if self.version is not None else "none yet",
            self.manager.base_path,
            self.host,
            self.grpc_port,
            f", REST on http://{self.host}:{self.rest_port}/v1/models/{self.model_name}" if self.rest_port else "",
        )
        return self

    def _add_v2(self, grpc_server: grpc.Server) -> None:
        """The Open Inference Protocol's gRPC service, where its protos (``tritonclient[grpc]``) are installed."""
        try:
            from mnistkit.serving import grpc_v2
        except ImportError as exc:
            log.warning("Open Inference Protocol over gRPC is off: %s (pip install 'tritonclient[grpc]')", exc)
            return
        grpc_v2.add_service(grpc_server, self.backend)

    def _start_rest(self, port: int) -> HttpFrontEnd:
        from mnistkit.serving import rest, rest_v2
        from mnistkit.serving.http_front import HttpFrontEnd

        routes = rest.routes(self.backend) + rest_v2.routes(self.backend)
        try:
            return HttpFrontEnd(routes, self.backend, self.host, port, self.max_request_bytes).start()
        except OSError as exc:
            raise ServingError(
                f"cannot listen for REST on {self.host}:{port}: {exc.strerror}; pick another --rest_api_port",
                field="rest_api_port",
                value=port,
            ) from None

    def stop(self, grace: float = 1.0) -> None:
        """Stop answering (in-flight requests get ``grace`` seconds), stop polling, free the ports."""
        if self._grpc is not None:
            self._grpc.stop(grace).wait(grace + 5)
            self._grpc = None
        if self._rest is not None:
            self._rest.stop()
            self._rest = None
        self.backend.close()
        if self._batcher is not None:
            self._batcher.stop()
            self._batcher = None
        self.manager.stop()

    def wait(self) -> None:
        """Block until the gRPC server stops (``mnistkit serve`` runs here until a signal)."""
        if self._grpc is not None:
            self._grpc.wait_for_termination()

    def __enter__(self) -> ModelServer:
        return self.start()

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()
