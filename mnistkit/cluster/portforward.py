"""Port-forward to a job's TensorBoard or TF Serving pod (``kubectl port-forward``, from Python).

Uses ``kubernetes.stream.portforward``: one WebSocket per accepted local connection, bytes pumped
both ways by two threads. Needs a real API server (the test double does not speak WebSocket); the pod
lookup and its errors are tested, the tunnel itself only against a cluster (``cluster`` marker).
"""

from __future__ import annotations

import socket
import threading
from typing import Any

from mnistkit.errors import ClusterError, ConfigError
from mnistkit.manifests.serving import REST_PORT
from mnistkit.manifests.tensorboard import TENSORBOARD_PORT

__all__ = ["find_pod", "forward", "TARGETS"]

# target -> (component label, pod port)
TARGETS = {
    "tensorboard": ("tensorboard", TENSORBOARD_PORT),
    "serving": ("serving", REST_PORT),
    "serving-grpc": ("serving", 8500),
}


def find_pod(client: Any, job_name: str, target: str) -> str:
    """The name of a Running pod serving ``target`` for ``job_name``; a clear error if there is none."""
    if target not in TARGETS:
        raise ClusterError(f"target must be one of {', '.join(TARGETS)}, got {target!r}", field="target", value=target)
    component, _ = TARGETS[target]
    pods = client.pods(job_name, component=component)
    running = [p.metadata.name for p in pods if p.status and p.status.phase == "Running"]
    if not running:
        state = ", ".join(f"{p.metadata.name}={p.status.phase if p.status else '?'}" for p in pods) or "no pods"
        raise ClusterError(
            f"no running {component} pod for job {job_name!r} ({state})", field="job_name", value=job_name
        )
    return sorted(running)[0]


def _pump(src: Any, dst: Any) -> None:
    try:
        while data := src.recv(65536):
            dst.sendall(data)
    except OSError:
        pass
    finally:
        for s in (src, dst):
            try:
                s.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass


def forward(
    client: Any,
    job_name: str,
    target: str = "tensorboard",
    local_port: int = 0,
    stop: threading.Event | None = None,
    ready: Any = None,
) -> None:
    """Serve ``127.0.0.1:local_port`` -> the pod's port until ``stop`` is set (or Ctrl-C)."""
    from kubernetes.stream import portforward

    pod = find_pod(client, job_name, target)
    _, remote = TARGETS[target]
    stop = stop or threading.Event()
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as server:
        server.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            server.bind(("127.0.0.1", local_port))
        except (OSError, OverflowError) as exc:
            raise ConfigError(
                f"cannot listen on 127.0.0.1:{local_port} ({exc}); choose another --port or 0",
                field="port",
                value=local_port,
            ) from None
        server.listen(8)
        server.settimeout(0.5)
        port = server.getsockname()[1]
        if ready:
            ready(port, pod)
        while not stop.is_set():
            try:
                conn, _ = server.accept()
            except TimeoutError:
                continue
            with client.explained(f"forwarding to pod {pod!r}", target=f"pod {pod!r}", value=job_name):
                pf = portforward(
                    client.core.connect_get_namespaced_pod_portforward, pod, client.namespace, ports=str(remote)
                )
                remote_sock = pf.socket(remote)
            remote_sock.setblocking(True)
            for a, b in ((conn, remote_sock), (remote_sock, conn)):
                threading.Thread(target=_pump, args=(a, b), daemon=True).start()
