"""TensorBoard inside the notebook: start (or reuse) a TensorBoard on a job's logs and embed it.

Locally TensorBoard binds to 127.0.0.1 only, never beyond loopback: it has no authentication. In a
Kubeflow notebook (``NB_PREFIX``) or under JupyterHub (``JUPYTERHUB_SERVICE_PREFIX``) the browser cannot
reach the server's loopback, so the page goes through jupyter-server-proxy (``{prefix}/proxy/{port}/``),
or through ``TENSORBOARD_PROXY_URL`` with ``%PORT%`` substituted (the convention of TensorBoard's own
notebook support); with neither, ``show`` says so instead of embedding a page that cannot load. A cluster job that
publishes its own TensorBoard (a ``tensorboard_url`` attribute) is embedded as is.
"""

from __future__ import annotations

import atexit
import importlib.util
import os
import shutil
import subprocess
import sys
import tempfile
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from mnistkit.errors import ConfigError, MnistkitError

if TYPE_CHECKING:
    from IPython.display import IFrame

    from mnistkit._types import UserValue

__all__ = [
    "TensorBoardError",
    "TensorBoardServer",
    "show",
    "start",
    "stop_all",
    "running",
    "browser_url",
    "notebook_base_url",
]

HOST = "127.0.0.1"


class TensorBoardError(MnistkitError):
    """TensorBoard could not be started or did not answer."""


@dataclass
class TensorBoardServer:
    """One TensorBoard process: its log directory, port and the URL the browser should open."""

    logdir: str
    port: int
    process: subprocess.Popen[bytes]
    log_path: Path

    @property
    def alive(self) -> bool:
        return self.process.poll() is None

    @property
    def local_url(self) -> str:
        return f"http://{HOST}:{self.port}/"

    @property
    def url(self) -> str:
        return browser_url(self.port)

    def stop(self) -> None:
        if self.alive:
            self.process.terminate()
            try:
                self.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        shutil.rmtree(self.log_path.parent, ignore_errors=True)  # the private dir start() made for the log


_servers: dict[str, TensorBoardServer] = {}
_lock = threading.Lock()


def notebook_base_url(env: Mapping[str, str] | None = None) -> str:
    """The notebook server's URL path when the browser is on another machine, else ``""``.

    Kubeflow's notebook controller sets ``NB_PREFIX`` (``/notebook/<namespace>/<name>``, the server's
    ``base_url``); JupyterHub sets ``JUPYTERHUB_SERVICE_PREFIX`` (``/user/<name>/``).
    """
    env = os.environ if env is None else env
    return (env.get("NB_PREFIX") or env.get("JUPYTERHUB_SERVICE_PREFIX") or "").rstrip("/")


def browser_url(port: int, env: Mapping[str, str] | None = None) -> str:
    """The URL a notebook's browser should load for a TensorBoard on ``127.0.0.1:port``."""
    env = os.environ if env is None else env
    proxy = env.get("TENSORBOARD_PROXY_URL", "")
    if proxy:
        return proxy.replace("%PORT%", str(port))
    prefix = notebook_base_url(env)
    if prefix and importlib.util.find_spec("jupyter_server_proxy") is not None:
        return f"{prefix}/proxy/{port}/"
    return f"http://{HOST}:{port}/"


def _check_reachable(env: Mapping[str, str] | None = None) -> None:
    """Refuse, before starting anything, to embed a loopback URL the user's remote browser cannot open."""
    if browser_url(0, env).startswith(f"http://{HOST}:") and notebook_base_url(env):
        raise TensorBoardError(
            f"this notebook server ({notebook_base_url(env)}) is reached from another machine, so the browser "
            "cannot open TensorBoard on 127.0.0.1: install jupyter-server-proxy (pip install jupyter-server-proxy, "
            "then restart the notebook server), or set TENSORBOARD_PROXY_URL (e.g. /my/proxy/%PORT%/)",
            field="TENSORBOARD_PROXY_URL",
        )


def _logdir_of(target: UserValue) -> str:
    if isinstance(target, (str, os.PathLike)):
        logdir = os.fspath(target)
    elif getattr(target, "logdir", None):
        logdir = str(target.logdir)  # a local job knows where its TensorBoard events are
    elif hasattr(target, "model_dir"):
        logdir = str(target.model_dir)
    else:
        raise ConfigError(f"show() takes a log directory or a job, got {type(target).__name__}", field="logdir")
    if logdir.startswith("s3://"):
        raise ConfigError(
            f"TensorBoard here cannot read {logdir} directly (TensorFlow 2.21 has no s3:// filesystem); "
            "download the logs first or use the cluster job's own TensorBoard",
            field="logdir",
            value=logdir,
        )
    if not logdir:
        raise ConfigError("the job has no model directory to read logs from", field="logdir", value=logdir)
    return str(Path(logdir).resolve())


def _answers(url: str) -> bool:
    try:
        with urllib.request.urlopen(url, timeout=2) as r:
            return bool(r.status == 200)
    except (urllib.error.URLError, OSError):
        return False


def start(logdir: str | os.PathLike[str], port: int | None = None, timeout: float = 90.0) -> TensorBoardServer:
    """Start TensorBoard on ``logdir`` (or return the one already serving it) and wait until it answers."""
    from mnistkit.embedded_s3 import free_port

    key = _logdir_of(logdir)
    with _lock:
        server = _servers.get(key)
        if server is not None and server.alive and (port is None or port == server.port):
            return server
        if server is not None:
            server.stop()
        Path(key).mkdir(parents=True, exist_ok=True)
        if port is not None and not (1024 <= int(port) <= 65535):
            raise ConfigError(f"port must be between 1024 and 65535, got {port!r}", field="port", value=port)
        chosen = int(port) if port is not None else free_port(HOST)
        # A private dir (mode 0700, unpredictable name) and a file created exclusively (0600): a predictable
        # /tmp/<name>-<port>.log could be a symlink another user planted, or be read by them.
        log_path = Path(tempfile.mkdtemp(prefix="mnistkit-tensorboard-")) / "tensorboard.log"
        cmd = [sys.executable, "-m", "tensorboard.main", "--logdir", key, "--host", HOST, "--port", str(chosen)]
        with open(os.open(log_path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600), "wb") as log:
            proc = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
        server = TensorBoardServer(key, chosen, proc, log_path)
        _servers[key] = server
    deadline = time.monotonic() + timeout
    while not _answers(server.local_url):
        if not server.alive or time.monotonic() > deadline:
            server.stop()
            with _lock:
                _servers.pop(key, None)
            tail = log_path.read_text(errors="replace")[-800:] if log_path.exists() else ""
            why = "exited" if server.process.poll() is not None else f"did not answer within {timeout:.0f} s"
            raise TensorBoardError(
                f"TensorBoard on port {chosen} {why}; its log ends:\n{tail}", field="port", value=chosen
            )
        time.sleep(0.3)
    return server


def show(logdir_or_job: UserValue, port: int | None = None, height: int = 640) -> IFrame:
    """An ``IPython.display.IFrame`` with TensorBoard for a log directory or a job (make it the cell's value)."""
    from IPython.display import IFrame

    url = getattr(logdir_or_job, "tensorboard_url", None)
    if isinstance(url, str) and url:
        return IFrame(url, width="100%", height=height)
    _check_reachable()
    server = start(logdir_or_job if isinstance(logdir_or_job, (str, os.PathLike)) else _logdir_of(logdir_or_job), port)
    return IFrame(server.url, width="100%", height=height)


def running() -> list[TensorBoardServer]:
    """The TensorBoards this process started that are still up."""
    with _lock:
        return [s for s in _servers.values() if s.alive]


def stop_all() -> int:
    """Stop every TensorBoard this process started; returns how many were running."""
    with _lock:
        servers = list(_servers.values())
        _servers.clear()
    alive = [s for s in servers if s.alive]
    for s in servers:
        s.stop()
    return len(alive)


atexit.register(stop_all)
