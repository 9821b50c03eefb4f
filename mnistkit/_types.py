"""Named stand-ins for ``Any``: each name says why no real type is used where it appears.

mnistkit and trainer annotate with real types wherever one exists (numpy, matplotlib, kubernetes, moto,
IPython, boto3's S3 stubs). What is left is dynamic for a reason, and the reason is the alias's name.
A bare ``Any`` outside this module fails ``make lint`` in signatures (ruff ANN401) and
tests/core/test_typing.py everywhere else; ``dict[str, Any]``/``Mapping[str, Any]`` (a JSON object) and
``*args: Any``/``**kwargs: Any`` forwarded to another signature are the two shapes allowed as they are.

Nothing here imports anything heavy: ``import mnistkit`` stays light.
"""

from __future__ import annotations

from typing import Any, TypeAlias

__all__ = ["JsonValue", "UserValue", "TFModel", "TFTensor", "TFModule", "TFObject", "Proto", "KubeBody", "Boto3Client"]

JsonValue: TypeAlias = Any
"""A value parsed from JSON or YAML (str, int, float, bool, None, list or dict), walked by shape."""

TFModel: TypeAlias = Any
"""A tf_keras Model or a loaded SavedModel: TensorFlow and tf_keras ship no type information."""

TFTensor: TypeAlias = Any
"""A tf.Tensor, tf.Variable or tf.data.Dataset: TensorFlow ships no type information."""

TFModule: TypeAlias = Any
"""The ``tensorflow`` (or ``tf_keras``) module itself, passed in because it is imported lazily."""

Proto: TypeAlias = Any
"""A generated protobuf message (TF Serving's, KServe v2's, a TensorProto): generated without type information."""

TFObject: TypeAlias = Any
"""Another TensorFlow or tf_keras object (a callback, a distribution strategy, a learning-rate schedule)."""

Boto3Client: TypeAlias = Any
"""A boto3 client other than S3's (IAM): only S3's stubs are installed (``mnistkit.s3.S3Client``)."""

UserValue: TypeAlias = Any
"""What a user's code handed over or returned (a model's output, a participant's answer): read by what it has
(``.numpy()``, ``.digit``, iteration), whatever its class. Where only ``isinstance``/``np.asarray`` look at it,
the annotation is ``object`` instead."""

KubeBody: TypeAlias = Any
"""A manifest dict sent where the kubernetes client's signature names a model class: it serializes both."""
