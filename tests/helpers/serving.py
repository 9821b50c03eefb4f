"""Fixtures for the serving tests: one tiny model trained by the trainer code, and servers over it.

The model is ``build_model("small")`` fit for one epoch on the offline sample (about 10 s on two cores)
and exported with ``trainer.export.export_saved_model``, once per session. Servers pick free ports and
poll fast (0.2 s) so that hot-loading tests finish quickly.
"""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest

__all__ = ["exported_model", "sample", "model_base", "module_server", "server", "start_server", "POLL"]

POLL = 0.2
_SAMPLE: dict[str, Any] = {}


@pytest.fixture(scope="session")
def sample() -> Any:
    from mnistkit.data import offline_sample

    if "sample" not in _SAMPLE:
        _SAMPLE["sample"] = offline_sample()
    return _SAMPLE["sample"]


_TRAINED: dict[str, Path] = {}


@pytest.fixture(scope="session")
def exported_model(tmp_path_factory: pytest.TempPathFactory, sample: Any) -> Path:
    """A SavedModel directory (not under a version dir) of a model well above chance.

    Each test module imports this fixture, which makes a separate session fixture per module; the cache
    keeps it to one training per test session all the same.
    """
    if "path" in _TRAINED and _TRAINED["path"].exists():
        return _TRAINED["path"]
    from mnistkit.tf_runtime import import_tensorflow

    tf = import_tensorflow()  # first, so TensorFlow's start-up noise stays out of the test output
    from trainer.export import export_saved_model
    from trainer.model import build_model

    tf.keras.utils.set_random_seed(0)
    model = build_model("small", 0.01)
    model.fit(sample.x_train / np.float32(255.0), sample.y_train, epochs=1, batch_size=64, verbose=0)
    _TRAINED["path"] = export_saved_model(model, tmp_path_factory.mktemp("export") / "saved_model")
    return _TRAINED["path"]


@pytest.fixture(scope="session")
def model_base(tmp_path_factory: pytest.TempPathFactory, exported_model: Path) -> Path:
    """``<tmp>/models/mnist`` holding version 1."""
    base = tmp_path_factory.mktemp("served") / "models" / "mnist"
    base.mkdir(parents=True)
    shutil.copytree(exported_model, base / "1")
    return base


def start_server(base: Path | str, **kwargs: Any) -> Any:
    from mnistkit.serving.server import ModelServer

    kwargs.setdefault("port", 0)
    kwargs.setdefault("rest_api_port", 0)
    kwargs.setdefault("file_system_poll_wait_seconds", POLL)
    return ModelServer(base, **kwargs).start()


@pytest.fixture(scope="module")
def module_server(model_base: Path) -> Iterator[Any]:
    """A server of the test module's own, stopped after it: for modules that patch their server, or whose
    tests run before the serving ones (the session ``server``'s polling thread would outlive them)."""
    srv = start_server(model_base)
    try:
        yield srv
    finally:
        srv.stop()


@pytest.fixture(scope="session")
def server(model_base: Path) -> Iterator[Any]:
    """A server on version 1 of ``model_base``, shared by the tests that do not change its versions."""
    srv = start_server(model_base)
    try:
        yield srv
    finally:
        srv.stop()
