"""Bound the wait for peers: a tiny separate process that SIGKILLs the trainer if the cluster never forms.

Why a process and not a thread: ``MultiWorkerMirroredStrategy()`` blocks inside TensorFlow's C++ while
waiting for every task in ``TF_CONFIG`` to register, holding the GIL, so no Python thread or signal
handler of the trainer runs; and TF ignores SIGTERM. The watchdog gets the peer list and a timeout; the
trainer writes one byte to the watchdog's stdin when the cluster is up. If that byte does not come in
time, the watchdog probes each peer's port, prints which ones never came up, and kills the trainer.
If the trainer exits first, stdin closes and the watchdog exits quietly.
"""

from __future__ import annotations

import os
import select
import signal
import socket
import subprocess
import sys
from collections.abc import Sequence

__all__ = ["start", "main"]


def start(timeout: float, peers: Sequence[str], me: str) -> subprocess.Popen[bytes]:
    """Start the watchdog for this process; call ``.stdin.write(b"1")``+``flush`` when ready."""
    return subprocess.Popen(
        [sys.executable, "-m", "trainer.watchdog", str(os.getpid()), str(timeout), me, *peers],
        stdin=subprocess.PIPE,
    )


def main(argv: Sequence[str]) -> int:
    pid, timeout, me, peers = int(argv[0]), float(argv[1]), argv[2], list(argv[3:])
    ready, _, _ = select.select([sys.stdin.buffer], [], [], timeout)
    if ready:
        return 0  # the trainer said "ready", or exited (EOF)
    missing = []
    for i, addr in enumerate(peers):
        if addr == me:
            continue
        host, _, port = addr.rpartition(":")
        try:
            with socket.create_connection((host, int(port)), timeout=2):
                pass
        except OSError:
            missing.append(f"task {i} at {addr}")
    who = ", ".join(missing) if missing else "the cluster to form (every peer port answers; check their logs)"
    print(
        f"[trainer] ERROR: peer timeout: gave up after {timeout:.0f}s waiting for {who}; "
        "check that every worker in TF_CONFIG started",
        flush=True,
    )
    try:
        os.kill(pid, signal.SIGKILL)  # SIGTERM is swallowed by TF while it waits
    except ProcessLookupError:
        pass
    return 3


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
