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


@pytest.mark.parametrize(("protocol", "patched"), [("grpc", "runner"), ("rest", "enqueue")])
def test_server_without_its_model_answers_stock_clients(module_server: Any, protocol: str, patched: str) -> None:
    """gRPC answers through ``runner`` in its worker thread, REST through ``enqueue`` on its event loop: each
    protocol gets only its own patch, so a front end taking another path would get the real model's answer."""
    from bench.frontend_only import answer_at_once, model_free_runner
    from mnistkit.serving.client import ModelClient

    backend = module_server.backend
    port = module_server.grpc_port if protocol == "grpc" else module_server.rest_port
    image = np.full((28, 28), 0.5, np.float32)
    with ModelClient("127.0.0.1", port, protocol) as client:
        assert sum(client.predict_one(image).probabilities) == pytest.approx(1.0, abs=1e-3)  # the model answers
        before = getattr(backend, patched)
        setattr(backend, patched, model_free_runner if patched == "runner" else answer_at_once)
        try:
            answers = client.predict(np.stack([image, image]))
        finally:
            setattr(backend, patched, before)
    assert [(a.digit, sum(a.probabilities)) for a in answers] == [(0, 0.0), (0, 0.0)]
    assert answers[0].model_version == module_server.version


def test_main_serves_the_flags_it_is_given_without_its_model(monkeypatch: pytest.MonkeyPatch, capsys: Any) -> None:
    """``mnistkit serve``'s flags build ``mnistkit serve``'s server, whose model call is then taken out."""
    import mnistkit.serving.server
    from bench import frontend_only

    made: list[Any] = []

    class FakeServer:
        def __init__(self, base: str, **kwargs: Any) -> None:
            self.base, self.kwargs = base, kwargs
            self.backend = type("B", (), {})()
            self.waited = False
            made.append(self)

        def __enter__(self) -> FakeServer:
            return self

        def __exit__(self, *exc: object) -> None:
            pass

        def wait(self) -> None:
            self.waited = True

    monkeypatch.setattr(mnistkit.serving.server, "ModelServer", FakeServer)
    monkeypatch.delenv("MODEL_BASE_PATH", raising=False)
    assert frontend_only.main(["--model_base_path=/m", "--port=5", "--rest_api_port=6", "--enable_batching"]) == 0
    (srv,) = made
    assert (srv.base, srv.kwargs["port"], srv.kwargs["rest_api_port"]) == ("/m", 5, 6)
    assert srv.kwargs["batching"] is not None  # every `mnistkit serve` flag is taken
    assert srv.backend.runner is frontend_only.model_free_runner
    assert srv.backend.enqueue is frontend_only.answer_at_once
    assert srv.waited
    # the base path is required, as by `mnistkit serve`: one line naming it, no server
    assert frontend_only.main(["--port=5", "--rest_api_port=6"]) == 1
    assert "--model_base_path is required" in capsys.readouterr().err
    assert len(made) == 1
