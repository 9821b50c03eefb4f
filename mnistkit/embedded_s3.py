"""An S3 server for one machine: moto's server on 127.0.0.1 and a free port, started and stopped by mnistkit.

Used by ``mnistkit demo``, the notebooks and the tests, so the S3 code path is the real one (boto3 over
HTTP) even on a laptop. Its state lives in memory and dies with it: whatever a user must keep (data,
exported models) mnistkit also keeps on local disk in the run directory.
"""

from __future__ import annotations

import socket
import time
from typing import TYPE_CHECKING

from mnistkit.config import S3Config
from mnistkit.errors import S3Error

if TYPE_CHECKING:
    from moto.server import ThreadedMotoServer

__all__ = ["EmbeddedS3", "free_port"]

# moto accepts any credentials; these are not secrets, but we still pass them the way real ones travel.
_LOCAL_KEY_ID = "mnistkit-local"
_LOCAL_SECRET = "mnistkit-local-secret"


def free_port(host: str = "127.0.0.1") -> int:
    """A TCP port that is free on ``host`` right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind((host, 0))
        return int(s.getsockname()[1])


class EmbeddedS3:
    """``with EmbeddedS3(bucket="mnist") as s3: s3.config`` -> an ``S3Config`` for the running server."""

    def __init__(self, bucket: str = "mnist", port: int | None = None, host: str = "127.0.0.1") -> None:
        if host not in ("127.0.0.1", "localhost", "::1"):
            # The embedded server has no authentication: never expose it beyond loopback.
            raise S3Error(f"the embedded S3 server binds to loopback only, not {host!r}", field="host", value=host)
        self.host, self.port, self.bucket = host, port, bucket
        self._server: ThreadedMotoServer | None = None

    @property
    def config(self) -> S3Config:
        if self._server is None:
            raise S3Error("the embedded S3 server is not running", field="server")
        return S3Config(
            bucket=self.bucket,
            endpoint_url=f"http://{self.host}:{self.port}",
            access_key_id=_LOCAL_KEY_ID,
            secret_access_key=_LOCAL_SECRET,
            region="us-east-1",
            use_https=False,
            verify_ssl=False,
        )

    def start(self) -> EmbeddedS3:
        import logging

        from moto.server import ThreadedMotoServer

        from mnistkit import s3

        self.port = self.port or free_port(self.host)
        # werkzeug logs every request to stderr; that noise would bury the demo's and notebooks' output.
        logging.getLogger("werkzeug").setLevel(logging.ERROR)
        self._server = ThreadedMotoServer(ip_address=self.host, port=self.port, verbose=False)
        self._server.start()
        deadline = time.monotonic() + 15
        while True:
            try:
                with socket.create_connection((self.host, self.port), timeout=0.5):
                    break
            except OSError:
                if time.monotonic() > deadline:
                    self.stop()
                    raise S3Error(f"embedded S3 server did not start on port {self.port}", field="port") from None
                time.sleep(0.05)
        s3.ensure_bucket(s3.make_client(self.config), self.bucket)
        return self

    def stop(self) -> None:
        if self._server is not None:
            try:
                self._server.stop()
            finally:
                self._server = None

    def __enter__(self) -> EmbeddedS3:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()
