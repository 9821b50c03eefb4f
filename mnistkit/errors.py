"""One root exception for everything mnistkit raises on purpose.

Every error carries the field that was wrong and (where it is not a secret) the bad value, so that a
panel, the CLI and a papermill run can all show the same sentence without a traceback. Modelled on
papermill's ``exceptions.py``: a small flat hierarchy, one class per place things go wrong.
"""

from __future__ import annotations

__all__ = [
    "MnistkitError",
    "ConfigError",
    "S3Error",
    "DataError",
    "TrainingError",
    "ServingError",
    "ClusterError",
    "SECRET_WORDS",
    "looks_secret",
]

# The one list of words that make a name look like it holds a credential (error fields, notebook parameters).
SECRET_WORDS = ("secret", "password", "token", "key_id", "access_key", "credential")


def looks_secret(name: str | None) -> bool:
    """Whether a field or parameter name looks like it holds a credential (its value is then never shown)."""
    return bool(name) and any(w in str(name).lower() for w in SECRET_WORDS)


class MnistkitError(Exception):
    """Root of every error mnistkit raises on purpose.

    ``field`` names what was wrong (a config field, a file, a flag); ``value`` is the bad value. For
    fields that hold secrets the value is never stored, so it can't leak through ``str``/``repr``.
    """

    def __init__(self, message: str, *, field: str | None = None, value: object = None) -> None:
        self.field = field
        self.value = None if looks_secret(field) else value
        super().__init__(message)

    def __repr__(self) -> str:
        return f"{type(self).__name__}({str(self)!r}, field={self.field!r})"


class ConfigError(MnistkitError, ValueError):
    """A configuration value is missing or invalid."""


class S3Error(MnistkitError):
    """An S3 operation failed (after retries), or an object is missing or corrupt."""


class DataError(MnistkitError):
    """A dataset file is missing, truncated, corrupt or of the wrong shape."""


class TrainingError(MnistkitError):
    """Training failed: a worker died for good, a peer never came up, or the export failed."""


class ServingError(MnistkitError):
    """A prediction request failed or the server could not load a model."""


class ClusterError(MnistkitError):
    """A Kubernetes/Argo operation failed or the cluster lacks something mnistkit needs."""
