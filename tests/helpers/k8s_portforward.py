"""``pods/<name>/portforward`` for the API double: WebSocket with the framing the kubelet speaks, to the pod's port.

What the kubernetes client (``kubernetes.stream.portforward``) gets from a real API server and kubelet
(``pkg/kubelet/cri/streaming/portforward/websocket.go``):

* the request is a WebSocket upgrade of ``GET .../pods/<name>/portforward?ports=P1,P2``; the API server authorizes
  it as ``get`` on ``pods/portforward`` (the HTTP verb) and, since Kubernetes 1.35
  (``AuthorizePodWebsocketUpgradeCreatePermission``, beta, on by default), also as ``create``;
* subprotocol ``v4.channel.k8s.io`` (or none); ``v5.channel.k8s.io``, which the client offers first, is exec's only;
  none of those offered: 403 with an empty body (``golang.org/x/net/websocket``'s answer to a failed handshake);
* port i gets data channel 2i and error channel 2i+1; the server first writes, on each of the two, the port as 2
  bytes little-endian; then every binary message is one channel byte + payload;
* each port is dialled in the pod at once; data both ways until either side closes; a failed dial is written,
  as text, on the port's error channel: ``error forwarding port P to pod NAME, uid UID: ...``; the WebSocket
  closes when every port's stream has ended (or the client closes it).

"In the pod" is where the rehearsal's kubelet put the container port: the pod's ``rehearsal.mnistkit.io/ports``
annotation (containerPort -> loopback port). A port that is not a declared ``containerPort`` has no local
stand-in and fails the dial. The WebSocket handshake and framing are wsproto's (sans-I/O), on the socket of the
double's ``http.server`` handler.
"""

from __future__ import annotations

import json
import socket
import threading
from collections.abc import Callable
from typing import Any
from urllib.parse import parse_qsl, urlparse

from wsproto import ConnectionType, WSConnection
from wsproto.events import (
    AcceptConnection,
    BytesMessage,
    CloseConnection,
    Event,
    Message,
    Ping,
    RejectConnection,
    Request,
)
from wsproto.utilities import LocalProtocolError

from mnistkit.rehearsal.pods import PORTS_ANNOTATION

__all__ = ["PROTOCOL", "is_upgrade", "requested_ports", "serve"]

PROTOCOL = "v4.channel.k8s.io"
_SUPPORTED = (PROTOCOL, "")  # "" (no subprotocol): the same binary channels


def is_upgrade(headers: Any) -> bool:
    return "websocket" in str(headers.get("Upgrade", "")).lower()


def requested_ports(path: str) -> list[int]:
    """``?ports=8501,6006&ports=9000`` -> ``[8501, 6006, 9000]``; ValueError naming a bad one."""
    out = []
    for key, value in parse_qsl(urlparse(path).query):
        if key == "ports":
            for word in value.split(","):
                if not word.isdigit() or not 0 < int(word) < 65536:
                    raise ValueError(f"invalid port {word!r}")
                out.append(int(word))
    if not out:
        raise ValueError("at least one port must be specified")
    return out


def local_port(pod: dict[str, Any], port: int) -> int | None:
    """The loopback port the rehearsal's kubelet gave ``containerPort: port`` of ``pod``, if any."""
    mapped = json.loads((pod["metadata"].get("annotations") or {}).get(PORTS_ANNOTATION) or "{}")
    value = mapped.get(str(port))
    return int(value) if value is not None else None


class _Tunnel:
    """One upgraded connection: wsproto on the client's socket, one TCP connection per forwarded port."""

    def __init__(self, handler: Any, pod: dict[str, Any], ports: list[int]) -> None:
        self.handler, self.pod, self.ports = handler, pod, ports
        self.ws = WSConnection(ConnectionType.SERVER)
        self.lock = threading.Lock()  # wsproto's state, shared by the reader and the pod's pumps
        self.write_lock = threading.Lock()  # the client socket: frames leave whole and in order
        self.targets: dict[int, socket.socket] = {}  # data channel -> the pod's socket
        self.closed = threading.Event()
        self.open_streams = len(ports)  # the WebSocket ends when every port's stream has ended

    def send(self, event: Event, *, closing: bool = False) -> None:
        """Frame ``event`` and write it; nothing after the close, except the close itself (``closing``).

        A write that blocks (a client slow to read) holds only ``write_lock``: the reader goes on.
        """
        with self.write_lock:
            with self.lock:
                if self.closed.is_set() and not closing:
                    return
                if closing:
                    self.closed.set()
                try:
                    data = self.ws.send(event)
                except LocalProtocolError:  # the WebSocket is closed already
                    return
            try:
                self.handler.wfile.write(data)
                self.handler.wfile.flush()
            except (OSError, ValueError):  # the client went away
                self.closed.set()

    def close(self, code: int = 1000) -> None:
        if not self.closed.is_set():
            self.send(CloseConnection(code=code), closing=True)
        for s in self.targets.values():
            _shutdown(s)

    # ---- the handshake ----------------------------------------------------------------------------
    def handshake(self) -> bool:
        h = self.handler
        head = h.raw_requestline + b"".join(f"{k}: {v}\r\n".encode("latin-1") for k, v in h.headers.items()) + b"\r\n"
        self.ws.receive_data(head)
        request = next((e for e in self.ws.events() if isinstance(e, Request)), None)
        if request is None:
            return False
        offered = request.subprotocols or [""]
        chosen = next((p for p in offered if p in _SUPPORTED), None)
        if chosen is None:
            # golang.org/x/net/websocket answers a failed handshake (wsstream: "requested protocol(s) are not
            # supported") with 403 and an empty body
            h.wfile.write(self.ws.send(RejectConnection(status_code=403, headers=[(b"content-length", b"0")])))
            h.wfile.flush()
            return False
        h.wfile.write(self.ws.send(AcceptConnection(subprotocol=chosen or None)))
        h.wfile.flush()
        return True

    # ---- forwarding -------------------------------------------------------------------------------
    def _dial(self, index: int, port: int) -> None:
        meta = self.pod["metadata"]
        target = local_port(self.pod, port)
        try:
            if target is None:
                raise ConnectionRefusedError(f"port {port} is not a containerPort of the pod (nothing listens there)")
            conn = socket.create_connection(("127.0.0.1", target), timeout=10)
            conn.settimeout(None)
        except OSError as exc:
            msg = f"error forwarding port {port} to pod {meta['name']}, uid {meta.get('uid', '')}: {exc}"
            self.send(Message(data=bytes([2 * index + 1]) + msg.encode()))
            self._stream_ended()
            return
        self.targets[2 * index] = conn
        threading.Thread(target=self._from_pod, args=(2 * index, conn), daemon=True).start()

    def _from_pod(self, channel: int, conn: socket.socket) -> None:
        try:
            while data := conn.recv(65536):
                self.send(Message(data=bytes([channel]) + data))
        except OSError:
            pass
        self._stream_ended()  # the pod closed its side

    def _stream_ended(self) -> None:
        with self.lock:
            self.open_streams -= 1
            last = self.open_streams == 0
        if last:
            self.close()

    def _to_pod(self, message: bytes) -> None:
        channel, payload = message[0], message[1:]
        conn = self.targets.get(channel)
        if conn is not None and payload:  # data channels only; what a client writes on an error channel is dropped
            try:
                conn.sendall(payload)
            except OSError:
                self.close()

    def run(self, read: Callable[[], bytes]) -> None:
        for i, port in enumerate(self.ports):
            prefix = port.to_bytes(2, "little")
            self.send(Message(data=bytes([2 * i]) + prefix))
            self.send(Message(data=bytes([2 * i + 1]) + prefix))
        for i, port in enumerate(self.ports):
            self._dial(i, port)
        pending = bytearray()
        while not self.closed.is_set():
            try:
                data = read()
            except OSError:
                data = b""
            with self.lock:
                self.ws.receive_data(data or None)
                events = list(self.ws.events())
            for event in events:
                if isinstance(event, BytesMessage):
                    pending += event.data
                    if event.message_finished:
                        if pending:
                            self._to_pod(bytes(pending))
                        pending.clear()
                elif isinstance(event, Ping):
                    self.send(event.response())
                elif isinstance(event, CloseConnection):
                    self.send(event.response(), closing=True)
            if not data:
                break
        self.close()


def _shutdown(s: socket.socket) -> None:
    try:
        s.shutdown(socket.SHUT_RDWR)
    except OSError:
        pass
    s.close()


def serve(handler: Any, pod: dict[str, Any], ports: list[int], register: Callable[[socket.socket], None]) -> None:
    """Upgrade ``handler``'s connection and forward ``ports`` of ``pod`` until either side closes."""
    tunnel = _Tunnel(handler, pod, ports)
    handler.close_connection = True
    if not tunnel.handshake():
        return
    register(handler.connection)
    tunnel.run(lambda: handler.rfile.read1(65536))
