"""``bench/frontend_only.py``, the batching target's ceiling: the same server answering without its model,
in the shapes and dtypes its signature declares, to the stock client on both protocols."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest

from helpers.serving import exported_model, model_base, module_server, sample  # noqa: F401 - fixtures


def test_model_free_runner_answers_the_signatures_shapes_and_dtypes(module_server: Any) -> None:
    from bench.frontend_only import model_free_runner

    model = module_server.manager.current
    sig = model.signature(None)
    x = {"x": np.ones((3, 28, 28), np.float32)}
    out = model_free_runner(model, sig, x, ["classes", "predictions"])
    real = model.run(sig, x, ["classes", "predictions"])
    for key in ("classes", "predictions"):
        assert out[key].shape == real[key].shape and out[key].dtype == real[key].dtype
        assert not out[key].any()
    assert list(model_free_runner(model, sig, x, ["classes"])) == ["classes"]


@pytest.mark.parametrize("protocol", ["grpc", "rest"])
def test_server_without_its_model_answers_stock_clients(module_server: Any, protocol: str) -> None:
    from bench.frontend_only import answer_at_once, model_free_runner
    from mnistkit.serving.client import ModelClient

    port = module_server.grpc_port if protocol == "grpc" else module_server.rest_port
    image = np.full((28, 28), 0.5, np.float32)
    with ModelClient("127.0.0.1", port, protocol) as client:
        assert sum(client.predict_one(image).probabilities) == pytest.approx(1.0, abs=1e-3)  # the model answers
        runner, enqueue = module_server.backend.runner, module_server.backend.enqueue
        module_server.backend.runner, module_server.backend.enqueue = model_free_runner, answer_at_once
        try:
            answers = client.predict(np.stack([image, image]))
        finally:
            module_server.backend.runner, module_server.backend.enqueue = runner, enqueue
    assert [(a.digit, sum(a.probabilities)) for a in answers] == [(0, 0.0), (0, 0.0)]
    assert answers[0].model_version == module_server.version
