"""`mnistkit demo` end to end (small model): the answer over gRPC and REST, and nothing left behind."""

from __future__ import annotations

import io
import os
import socket
from pathlib import Path

import pytest

pytestmark = pytest.mark.slow


def _children() -> set[int]:
    me = str(os.getpid())
    kids = set()
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if fields[1] == me:
            kids.add(int(stat.parent.name))
    return kids


def test_demo_runs_the_whole_loop_and_cleans_up(tmp_path: Path) -> None:
    from mnistkit.demo import run_demo

    before = _children()
    out = io.StringIO()
    res = run_demo(tmp_path / "run", workers=2, train_steps=80, model_type="small", out=out, test_image=0)
    text = out.getvalue()
    assert res.grpc_digit == res.rest_digit
    assert f"Your model says the above number is... {res.grpc_digit}!" in text
    rows = [ln for ln in text.splitlines() if len(ln) == 28 and set(ln) <= {"@", "."}]
    assert len(rows) == 28
    assert res.heldout_accuracy > 0.8
    # the export is kept, and the command to serve it is printed
    assert (tmp_path / "run" / "models" / "mnist" / str(res.version) / "saved_model.pb").exists()
    assert f"mnistkit serve --model_base_path={tmp_path / 'run' / 'models' / 'mnist'}" in text
    assert not (tmp_path / "run" / "serving-cache").exists()
    # no leftover worker processes, and the serving/S3 ports are closed
    assert _children() - before == set()
    for line in text.splitlines():
        if "gRPC 127.0.0.1:" in line:
            port = int(line.split("gRPC 127.0.0.1:")[1].split()[0])
            with pytest.raises(OSError), socket.create_connection(("127.0.0.1", port), timeout=1):
                pass
    assert "mnistkit-local-secret" not in text
