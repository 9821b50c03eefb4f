"""Serving with TensorFlow Serving's protocols: a local server (``ModelServer``) and a client (``ModelClient``).

Importing this package is light; the server (TensorFlow, gRPC) and the client load on first use::

    from mnistkit.serving import ModelClient
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from mnistkit._lazy import lazy_getattr

if TYPE_CHECKING:  # what __getattr__ imports on first use, for type checkers
    from mnistkit.serving.ascii import ascii_art
    from mnistkit.serving.client import ModelClient, Prediction
    from mnistkit.serving.server import ModelServer
    from mnistkit.serving.status import RequestError

__all__ = ["ModelServer", "ModelClient", "Prediction", "RequestError", "ascii_art"]

_WHERE = {
    "ModelServer": "mnistkit.serving.server",
    "ModelClient": "mnistkit.serving.client",
    "Prediction": "mnistkit.serving.client",
    "RequestError": "mnistkit.serving.status",
    "ascii_art": "mnistkit.serving.ascii",
}


__getattr__ = lazy_getattr(__name__, _WHERE)
