"""Serving with TensorFlow Serving's protocols: a local server (``ModelServer``) and a client (``ModelClient``).

Importing this package is light; the server (TensorFlow, gRPC) and the client load on first use::

    from mnistkit.serving import ModelClient
"""

from __future__ import annotations

from mnistkit._lazy import lazy_getattr

__all__ = ["ModelServer", "ModelClient", "Prediction", "RequestError", "ascii_art"]

_WHERE = {
    "ModelServer": "mnistkit.serving.server",
    "ModelClient": "mnistkit.serving.client",
    "Prediction": "mnistkit.serving.client",
    "RequestError": "mnistkit.serving.status",
    "ascii_art": "mnistkit.serving.ascii",
}


__getattr__ = lazy_getattr(__name__, _WHERE)
