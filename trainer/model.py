"""The Keras models the trainer can build (``--tf-model-type``).

Built with tf-keras (``TF_USE_LEGACY_KERAS=1``), not Keras 3: under ``MultiWorkerMirroredStrategy``
Keras 3's ``model.fit`` fails converting PerReplica values (keras-team/keras#20585), while tf-keras'
``fit`` works and keeps ``BackupAndRestore`` and the TensorBoard callback multi-worker aware. A Keras 3
custom loop would work too, but would re-implement what ``fit`` already does right.

Every model takes ``[batch, 28, 28]`` float32 in [0, 1] and returns softmax probabilities ``[batch, 10]``.
"""

from __future__ import annotations

import os
from typing import Any

os.environ.setdefault("TF_USE_LEGACY_KERAS", "1")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

__all__ = ["build_model", "keras"]

from mnistkit.tf_runtime import import_tensorflow  # noqa: E402

import_tensorflow()  # TensorFlow's start-up noise silenced before tf_keras loads it
import tf_keras as keras  # noqa: E402


def build_model(model_type: str = "cnn", learning_rate: float = 0.01, *, augment: bool = False) -> Any:
    """A compiled model: ``cnn`` (the classic Keras MNIST convnet), ``small`` (a fast CNN for tests)
    or ``linear`` (softmax regression, as the seed's LINEAR type)."""
    layers = keras.layers
    inputs = keras.Input(shape=(28, 28), name="x")
    h = layers.Reshape((28, 28, 1))(inputs)
    if augment:
        # Small shifts and rotations: 5,000 digits are few, and drawn digits are never perfectly centred.
        h = layers.RandomTranslation(0.1, 0.1, fill_mode="constant")(h)
        h = layers.RandomRotation(0.05, fill_mode="constant")(h)
        h = layers.RandomZoom(0.1, fill_mode="constant")(h)
    if model_type == "cnn":
        h = layers.Conv2D(32, 3, activation="relu")(h)
        h = layers.MaxPooling2D()(h)
        h = layers.Conv2D(64, 3, activation="relu")(h)
        h = layers.MaxPooling2D()(h)
        h = layers.Flatten()(h)
        h = layers.Dropout(0.5)(h)
    elif model_type == "small":
        h = layers.Conv2D(8, 3, strides=2, activation="relu")(h)
        h = layers.Conv2D(16, 3, strides=2, activation="relu")(h)
        h = layers.Flatten()(h)
    elif model_type == "linear":
        h = layers.Flatten()(h)
    else:
        raise ValueError(f"unknown model type {model_type!r}")
    outputs = layers.Dense(10, activation="softmax", name="predictions")(h)
    model = keras.Model(inputs, outputs, name=f"mnist_{model_type}")
    model.compile(
        optimizer=keras.optimizers.Adam(learning_rate),
        loss="sparse_categorical_crossentropy",
        metrics=["accuracy"],
    )
    return model
