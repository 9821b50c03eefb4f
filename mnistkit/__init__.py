"""mnistkit: from an empty notebook to a served MNIST model.

``import mnistkit`` stays light on purpose (notebooks import it first, and TensorFlow costs 6-9 s):
TensorFlow, kubernetes and the widgets load only in the modules that use them.
"""

from mnistkit.errors import (
    ClusterError,
    ConfigError,
    DataError,
    MnistkitError,
    S3Error,
    ServingError,
    TrainingError,
)

__version__ = "0.1.0"

__all__ = [
    "__version__",
    "MnistkitError",
    "ConfigError",
    "S3Error",
    "DataError",
    "TrainingError",
    "ServingError",
    "ClusterError",
]
