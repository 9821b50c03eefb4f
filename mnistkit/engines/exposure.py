"""Multi-worker training opens TensorFlow gRPC ports to the whole network: refuse unless the user opts in.

TensorFlow's distributed runtime binds ``0.0.0.0:<port>`` whatever host ``TF_CONFIG`` names (grpc_server_lib
hard-codes it; measured: a server for ``127.0.0.1:45123`` listens on ``*:45123``), and that port takes
graphs from anyone without authentication: on a laptop in a workshop, anyone on the same network could run
ops inside a trainer, whose environment holds the S3 secret. TF offers no setting to bind loopback only, so
``LocalEngine`` refuses ``workers > 1`` while the machine has a non-loopback interface up, unless the user
opts in (``allow_exposed_workers=True``, ``mnistkit train --allow-exposed-workers`` or
``MNISTKIT_ALLOW_EXPOSED_WORKERS=1``). A single worker opens no port.
"""

from __future__ import annotations

import os
import socket

from mnistkit.errors import ConfigError

__all__ = ["ALLOW_ENV", "check_multi_worker", "exposed_addresses"]

ALLOW_ENV = "MNISTKIT_ALLOW_EXPOSED_WORKERS"


def exposed_addresses() -> list[str]:
    """The IP addresses of this machine's interfaces that are up and not loopback."""
    import ipaddress

    import psutil

    stats = psutil.net_if_stats()
    found = []
    for name, addrs in psutil.net_if_addrs().items():
        if name in stats and not stats[name].isup:
            continue
        for a in addrs:
            if a.family not in (socket.AF_INET, socket.AF_INET6):
                continue
            ip = a.address.split("%", 1)[0]
            if not ipaddress.ip_address(ip).is_loopback:
                found.append(ip)
    return found


def check_multi_worker(workers: int, allow: bool | None = None) -> None:
    """Raise a ``ConfigError`` (field ``workers``) saying why, for ``workers > 1`` on a networked machine."""
    if workers <= 1:
        return
    if allow is None:
        allow = os.environ.get(ALLOW_ENV, "").strip().lower() in ("1", "true", "yes", "on")
    if allow:
        return
    exposed = exposed_addresses()
    if exposed:
        shown = ", ".join(exposed[:3]) + (" ..." if len(exposed) > 3 else "")
        raise ConfigError(
            f"workers={workers} would open TensorFlow's unauthenticated gRPC ports on every interface ({shown}): "
            "TensorFlow binds 0.0.0.0 whatever TF_CONFIG says, so anyone on this network could run code in a "
            "trainer that holds your S3 keys; use workers=1, or opt in with --allow-exposed-workers "
            f"({ALLOW_ENV}=1) on a network you trust",
            field="workers",
            value=workers,
        )
