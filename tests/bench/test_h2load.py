"""``bench/h2load.py``, the batching target's C load generator: its bodies get answers from a real server,
and a run counts what failed, also gRPC errors, which arrive as HTTP 200 without a message."""

from __future__ import annotations

import dataclasses
import shutil
from typing import Any

import numpy as np
import pytest

from helpers.serving import exported_model, model_base, module_server, sample  # noqa: F401 - fixtures


pytestmark = pytest.mark.skipif(
    shutil.which("h2load") is None, reason="h2load missing: `make loadgen` installs Debian's nghttp2-client"
)


@pytest.mark.parametrize("protocol", ["grpc", "rest"])
def test_h2load_run_counts_answers_and_errors(module_server: Any, protocol: str) -> None:
    from bench import h2load

    image = np.zeros((1, 28, 28), np.float32)
    bodies = h2load.bodies(image, module_server.grpc_port, module_server.rest_port)
    port = module_server.grpc_port if protocol == "grpc" else module_server.rest_port
    good = h2load.run(port, protocol, 4, 200, bodies)
    assert good.errors == 0
    assert good.rps > 0
    assert len(good.latencies_ms) == 200
    # The same bodies asking for a model this server does not have: every answer is an error.
    wrong = dataclasses.replace(bodies, grpc=bodies.grpc.replace(b"mnist", b"mnisx"), rest=b'{"instances": [[1.0]]}')
    bad = h2load.run(port, protocol, 4, 100, wrong)
    assert bad.errors == 100
