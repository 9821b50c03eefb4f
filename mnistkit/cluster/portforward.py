"""Port-forward to a job's TensorBoard or TF Serving pod (``kubectl port-forward``, from Python).

Uses ``kubernetes.stream.portforward``: one WebSocket per accepted local connection (subprotocol
``v4.channel.k8s.io``), bytes pumped both ways by two threads. What the kubelet writes on the port's error
channel (nothing listens on the pod's port, ...) goes to ``on_error``, as ``kubectl port-forward`` prints it.
Tested against the API double, which speaks the kubelet's framing to pods the rehearsal runs
(``tests/rehearsal/test_rehearsal_double.py``).
"""

from __future__ import annotations

import socket
import threading
from collections.abc import Callable
from typing import TYPE_CHECKING

from mnistkit.cluster.objects import name_of
from mnistkit.errors import ClusterError, ConfigError
from mnistkit.manifests.serving import REST_PORT
from mnistkit.manifests.tensorboard import TENSORBOARD_PORT

if TYPE_CHECKING:
    from kubernetes.stream.ws_client import PortForward

    from mnistkit.cluster.client import ClusterClient

__all__ = ["find_pod", "forward", "TARGETS"]

# target -> (component label, pod port)
TARGETS = {
    "tensorboard": ("tensorboard", TENSORBOARD_PORT),
    "serving": ("serving", REST_PORT),
    "serving-grpc": ("serving", 8500),
}


def find_pod(client: ClusterClient, job_name: str, target: str) -> str:
    """The name of a Running pod serving ``target`` for ``job_name``; a clear error if there is none."""
    if target not in TARGETS:
        raise ClusterError(f"target must be one of {', '.join(TARGETS)}, got {target!r}", field="target", value=target)
    component, _ = TARGETS[target]
    pods = client.pods(job_name, component=component)
    running = [name_of(p) for p in pods if p.status and p.status.phase == "Running"]
    if not running:
        state = ", ".join(f"{name_of(p)}={p.status.phase if p.status else '?'}" for p in pods) or "no pods"
        raise ClusterError(
            f"no running {component} pod for job {job_name!r} ({state})", field="job_name", value=job_name
        )
    return sorted(running)[0]


def _pump(src: socket.socket, dst: socket.socket) -> None:
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


def _serve(conn: socket.socket, pf: PortForward, remote: int, on_error: Callable[[str], None] | None) -> None:
    """Pump one local connection through its WebSocket; then report what the error channel said, if anything."""
    remote_sock = pf.socket(remote)
    remote_sock.setblocking(True)
    threading.Thread(target=_pump, args=(conn, remote_sock), daemon=True).start()
    _pump(remote_sock, conn)
    error = pf.error(remote)
    if error and on_error is not None:
        on_error(error)


def forward(
    client: ClusterClient,
    job_name: str,
    target: str = "tensorboard",
    local_port: int = 0,
    stop: threading.Event | None = None,
    ready: Callable[[int, str], None] | None = None,
    on_error: Callable[[str], None] | None = None,
) -> None:
    """Serve ``127.0.0.1:local_port`` -> the pod's port until ``stop`` is set (or Ctrl-C).

    ``ready(local_port, pod)`` once listening; ``on_error(message)`` for what the kubelet reports on a
    connection (e.g. ``error forwarding port 6006 to pod ...: connection refused``); the forward goes on.
    """
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
            try:
                with client.explained(f"forwarding to pod {pod!r}", target=f"pod {pod!r}", value=job_name):
                    pf = portforward(
                        client.core.connect_get_namespaced_pod_portforward, pod, client.namespace, ports=str(remote)
                    )
            except BaseException:
                conn.close()  # the local client sees the connection end, not a hang
                raise
            threading.Thread(target=_serve, args=(conn, pf, remote, on_error), daemon=True).start()
