"""Lazy package attributes: ``from mnistkit.widgets import DrawingPad`` loads anywidget only then.

``import mnistkit`` and its packages must stay light (TensorFlow, grpc, ipywidgets cost seconds), so the
packages that re-export heavy classes resolve them on first access (PEP 562 module ``__getattr__``). Type checkers see
the names through the package's ``if TYPE_CHECKING:`` imports of the same modules.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable, Mapping

__all__ = ["lazy_getattr"]


def lazy_getattr(package: str, where: Mapping[str, str]) -> Callable[[str], object]:
    """A module ``__getattr__`` that imports ``where[name]`` (a module path) on first access of ``name``."""

    def __getattr__(name: str) -> object:
        if name in where:
            return getattr(importlib.import_module(where[name]), name)
        raise AttributeError(f"module {package!r} has no attribute {name!r}")

    return __getattr__
