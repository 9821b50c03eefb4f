"""``python -m bench.frontend_only``: ``mnistkit serve`` with the model call taken out (the batching ceiling).

The same ``ModelServer`` on the same export: both protocols' front ends, the request checks, decoding,
the version manager and the responses. But each prediction answers zeros of the signature's output
dtypes and shapes instead of running the model, where the request is (a gRPC worker thread; the REST
event loop, without the hand-off to a prediction thread). Batching makes the model call, and the
hand-off to it, cheaper per request; this server has neither, so no batching can make a request
cheaper than here: its throughput over the plain server's is the most batching could give on this
machine (the batching target prints it as the "ceiling"). If anything it errs high: zeros encode a little
faster than real answers.

    python -m bench.frontend_only --model_base_path=DIR --port=P --rest_api_port=R  # any `mnistkit serve` flags
"""

from __future__ import annotations

import sys
from collections.abc import Callable, Mapping, Sequence

import numpy as np

from mnistkit.serving.backend import ModelCall, Outputs
from mnistkit.serving.loading import LoadedModel
from mnistkit.serving.signature import Signature

__all__ = ["model_free_runner", "answer_at_once", "main"]


def model_free_runner(
    model: LoadedModel, sig: Signature, inputs: Mapping[str, np.ndarray], wanted: list[str]
) -> dict[str, np.ndarray]:
    """A ``Backend.runner`` that answers zeros shaped as ``sig``'s outputs for the request's rows."""
    rows = next(iter(inputs.values())).shape[0] if inputs else 1
    out = {}
    for key in wanted:
        info = sig.outputs[key]
        dims = info.shape or ()
        shape = tuple(rows if i == 0 else (d or 1) for i, d in enumerate(dims))
        out[key] = np.zeros(shape, info.dtype)
    return out


def answer_at_once(call: ModelCall, done: Callable[[Outputs | None, BaseException | None], None]) -> bool:
    """A ``Backend.enqueue`` that answers where it is called (the REST event loop): no prediction thread."""
    try:
        outputs = model_free_runner(call.model, call.sig, call.inputs, call.wanted)
    except Exception as exc:  # noqa: BLE001 - answered as the server answers a failed model call
        done(None, exc)
    else:
        done(outputs, None)
    return True


def main(argv: Sequence[str] | None = None) -> int:
    """``mnistkit serve``'s own flags and server (``build_server``), with the model call taken out."""
    from mnistkit.cli import build_parser
    from mnistkit.commands.serve import build_server
    from mnistkit.errors import MnistkitError

    args = build_parser().parse_args(["serve", *(sys.argv[1:] if argv is None else argv)])
    try:
        server = build_server(args)
    except MnistkitError as exc:
        print(f"python -m bench.frontend_only: error: {exc}", file=sys.stderr)
        return 1
    server.backend.runner = model_free_runner
    server.backend.enqueue = answer_at_once
    with server:
        server.wait()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
