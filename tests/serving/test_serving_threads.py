"""``mnistkit serve --tensorflow_intra_op_parallelism N`` (TF Serving's flag): the sessions the server loads
run each op on N threads; a bad or too-late value is an error naming the flag."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from helpers.paths import ROOT

# In a fresh process: a ModelServer with intra_op_threads=N serves model_base; the CPU seconds per wall
# second of batch-64 calls through the model it loaded (no requests in flight: only TensorFlow works).
_PROBE = textwrap.dedent(
    """
    import json, sys, time
    import numpy as np
    from mnistkit.serving.server import ModelServer

    threads = None if sys.argv[2] == "none" else int(sys.argv[2])
    with ModelServer(sys.argv[1], port=0, rest_api_port=None, intra_op_threads=threads) as server:
        model = server.resolve("mnist")
        sig = model.signature(None)
        x = {"x": np.random.default_rng(0).random((64, 28, 28), dtype=np.float32)}
        for _ in range(3):
            model.run(sig, x, list(sig.outputs))
        wall, cpu = time.perf_counter(), time.process_time()
        for _ in range(40):
            model.run(sig, x, list(sig.outputs))
        print(json.dumps({"cpu_per_wall": (time.process_time() - cpu) / (time.perf_counter() - wall)}))
    """
)


def _cpu_per_wall(model_base: Path, threads: str) -> float:
    out = subprocess.run(
        [sys.executable, "-c", _PROBE, str(model_base), threads],
        capture_output=True,
        text=True,
        timeout=300,
        cwd=ROOT,
        check=True,
    )
    return float(json.loads(out.stdout.strip().splitlines()[-1])["cpu_per_wall"])


@pytest.mark.slow
def test_one_intra_op_thread_runs_each_call_on_one_core(model_base: Path) -> None:
    """With 1, a batch-64 call never uses more than one core (without it, TensorFlow's pool takes every
    core, so on a multi-core machine the CPU time of the same calls exceeds their wall time)."""
    assert _cpu_per_wall(model_base, "1") < 1.15


def test_bad_intra_op_value_names_the_flag(model_base: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from mnistkit.cli import main

    assert main(["serve", "--model_base_path", str(model_base), "--tensorflow_intra_op_parallelism", "-1"]) == 1
    assert (
        "--tensorflow_intra_op_parallelism must be 0 (one thread per core) or more, got -1" in capsys.readouterr().err
    )


def test_intra_op_threads_after_tensorflow_ran_is_an_error_naming_the_flag() -> None:
    """TensorFlow fixes its pool at its first op: a later request for another size is refused, not ignored."""
    script = textwrap.dedent(
        """
        from mnistkit.errors import ConfigError
        from mnistkit.tf_runtime import import_tensorflow, set_intra_op_threads

        tf = import_tensorflow()
        tf.constant(1.0) + 1.0
        set_intra_op_threads(0)  # what it is already: fine
        try:
            set_intra_op_threads(1)
        except ConfigError as exc:
            print(exc.field, exc.value, exc)
        """
    )
    out = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=300, cwd=ROOT)
    assert out.returncode == 0, out.stderr[-2000:]
    assert out.stdout.startswith("tensorflow_intra_op_parallelism 1 --tensorflow_intra_op_parallelism=1 comes too late")
