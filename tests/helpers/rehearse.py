"""``mnistkit rehearse --deploy`` as a user runs it, for tests: a subprocess followed until it serves, then stopped."""

from __future__ import annotations

import re
import signal
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

__all__ = ["Rehearsed", "rehearse_deploy", "predict"]


@dataclass
class Rehearsed:
    port: int  # the gRPC port `mnistkit rehearse` prints ("try: mnistkit predict --port P")
    output: str  # what it printed until then
    rest: list[str] = field(default_factory=list)  # what it printed after, once it stopped (filled on exit)
    returncode: int | None = None


@contextmanager
def rehearse_deploy(args: list[str], env: dict[str, str], cwd: Path) -> Iterator[Rehearsed]:
    """Run ``mnistkit rehearse ARGS`` (which must include ``--deploy``) until it serves; SIGTERM it on exit.

    After the block, ``returncode`` and ``rest`` say how it ended (0: every pod stopped cleanly)."""
    cmd = [sys.executable, "-m", "mnistkit", "rehearse", *args]
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=env, cwd=cwd)
    lines: list[str] = []
    rehearsed = Rehearsed(0, "")
    try:
        assert proc.stdout is not None
        for line in proc.stdout:
            lines.append(line)
            m = re.search(r"try: mnistkit predict --port (\d+)", line)
            if m:
                rehearsed.port = int(m.group(1))
                break
        rehearsed.output = "".join(lines)
        assert rehearsed.port, rehearsed.output[-3000:]
        yield rehearsed
    finally:
        proc.send_signal(signal.SIGTERM)
        try:
            rest, _ = proc.communicate(timeout=60)
        except subprocess.TimeoutExpired:
            proc.kill()
            rest, _ = proc.communicate()
        rehearsed.output = rehearsed.output or "".join(lines)
        rehearsed.rest.append(rest)
        rehearsed.returncode = proc.returncode


def predict(port: int, env: dict[str, str], cwd: Path, *args: str) -> subprocess.CompletedProcess[str]:
    """``mnistkit predict --port PORT ARGS`` as a subprocess (what the user types next)."""
    return subprocess.run(
        [sys.executable, "-m", "mnistkit", "predict", "--port", str(port), *args],
        capture_output=True, text=True, timeout=120, env=env, cwd=cwd, check=False,
    )  # fmt: skip
