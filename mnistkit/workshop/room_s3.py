"""An embedded S3 server for a workshop room that enforces per-participant IAM policies.

moto's server checks signatures and IAM policies once its first ``INITIAL_NO_AUTH_ACTION_COUNT`` actions
(unauthenticated set-up) are used. That setting is process-wide, so this server runs in a process of its
own (``python -m moto.server`` on 127.0.0.1), unlike ``EmbeddedS3``: the set-up creates the bucket, one
IAM user per participant with ``access.participant_policy`` and the instructor's, then switches
enforcement on. From then on only those keys work, each within its policy.
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Sequence

from mnistkit.config import S3Config
from mnistkit.embedded_s3 import free_port
from mnistkit.engines.owner import die_with_owner
from mnistkit.errors import S3Error
from mnistkit.workshop.access import Credentials, create_users

__all__ = ["RoomS3Server"]

_SETUP_KEY = ("mnistkit-setup", "mnistkit-setup-secret")  # only valid before enforcement starts


class RoomS3Server:
    """``with RoomS3Server("mnist", "room1", ["ada", "bob"]) as srv: srv.config_for("ada")``."""

    def __init__(self, bucket: str, room: str, participants: Sequence[str], *, host: str = "127.0.0.1") -> None:
        if host not in ("127.0.0.1", "localhost", "::1"):
            raise S3Error(f"the room's S3 server binds to loopback only, not {host!r}", field="host", value=host)
        self.bucket, self.room, self.participants, self.host = bucket, room, list(participants), host
        self.port = 0
        self.credentials: dict[str, Credentials] = {}
        self._proc: subprocess.Popen[bytes] | None = None

    @property
    def endpoint_url(self) -> str:
        return f"http://{self.host}:{self.port}"

    def config_for(self, who: str) -> S3Config:
        """S3 settings with ``who``'s keys (a participant, or ``INSTRUCTOR``)."""
        c = self.credentials[who]
        return S3Config(
            bucket=self.bucket,
            endpoint_url=self.endpoint_url,
            access_key_id=c.access_key_id,
            secret_access_key=c.secret_access_key,
            use_https=False,
            verify_ssl=False,
        )

    def start(self, timeout: float = 60.0) -> RoomS3Server:
        import boto3

        from mnistkit import s3

        self.port = free_port(self.host)
        env = {**os.environ, "INITIAL_NO_AUTH_ACTION_COUNT": "inf"}
        self._proc = subprocess.Popen(
            [sys.executable, "-m", "moto.server", "-H", self.host, "-p", str(self.port)],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            env=env,
            # a killed instructor process takes its server along (async-signal-safe: prctl and getppid only)
            preexec_fn=die_with_owner(),
        )
        deadline = time.monotonic() + timeout
        while True:
            try:
                with socket.create_connection((self.host, self.port), timeout=0.5):
                    break
            except OSError:
                if self._proc.poll() is not None or time.monotonic() > deadline:
                    self.stop()
                    raise S3Error(f"the room's S3 server did not start on port {self.port}", field="port") from None
                time.sleep(0.1)
        try:
            setup = S3Config(
                bucket=self.bucket,
                endpoint_url=self.endpoint_url,
                access_key_id=_SETUP_KEY[0],
                secret_access_key=_SETUP_KEY[1],
                use_https=False,
                verify_ssl=False,
            )
            s3.ensure_bucket(s3.make_client(setup), self.bucket)
            iam = boto3.client(
                "iam",
                endpoint_url=self.endpoint_url,
                region_name="us-east-1",
                aws_access_key_id=_SETUP_KEY[0],
                aws_secret_access_key=_SETUP_KEY[1],
            )
            self.credentials = create_users(iam, self.bucket, self.room, self.participants)
            # Enforce from now on: every request must be signed by one of the users above and be allowed.
            req = urllib.request.Request(
                f"{self.endpoint_url}/moto-api/reset-auth",
                data=b"0",
                method="POST",
                headers={"Content-Type": "text/plain"},
            )  # a form type would hide the body
            with urllib.request.urlopen(req, timeout=10) as r:
                if r.status != 200:
                    raise S3Error("the room's S3 server did not switch IAM enforcement on", field="server")
        except BaseException:
            self.stop()  # a failed set-up must not leave the server process behind
            raise
        return self

    def stop(self) -> None:
        if self._proc is not None:
            self._proc.kill()
            self._proc.wait(timeout=30)
            self._proc = None

    def __enter__(self) -> RoomS3Server:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()
