"""The Keras models the trainer can build (``--tf-model-type``).

Built with tf-keras (``TF_USE_LEGACY_KERAS=1``), not Keras 3: under ``MultiWorkerMirroredStrategy``
Keras 3's ``model.fit`` fails converting PerReplica values (keras-team/keras#20585), while tf-keras'
``fit`` works and keeps ``BackupAndRestore`` and the TensorBoard callback multi-worker aware. A Keras 3
custom loop would work too, but would re-implement what ``fit`` already does right.

Every model takes ``[batch, 28, 28]`` float32 in [0, 1] and returns softmax probabilities ``[batch, 10]``.
"""

from __future__ import annotations

import os
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from collections.abc import Callable

    from mnistkit._types import TFModel, TFObject, TFTensor

os.environ.setdefault("TF_USE_LEGACY_KERAS", "1")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

__all__ = ["build_model", "learning_rate", "keras"]

from mnistkit.tf_runtime import import_tensorflow

tf = import_tensorflow()  # TensorFlow's start-up noise silenced before tf_keras loads it
import tf_keras as keras  # noqa: E402 - after import_tensorflow(), which silences it


def learning_rate(
    rate: float, schedule: str = "constant", *, total_steps: int = 0, warmup_steps: int = 0
) -> float | TFObject:
    """Adam's rate: ``constant``, or ``cosine``: a linear warm-up from ``rate / 10`` to ``rate`` over
    ``warmup_steps``, then a cosine decay to 0 at ``total_steps`` (so the last epochs fine-tune). The
    optimizer's step counter is in the backup, so a resumed run continues the same curve."""
    if schedule == "constant":
        return rate
    if schedule != "cosine":
        raise ValueError(f"unknown learning-rate schedule {schedule!r}")
    warmup_steps = max(0, min(warmup_steps, total_steps - 1))
    return keras.optimizers.schedules.CosineDecay(
        rate / 10, max(1, total_steps - warmup_steps), alpha=0.0, warmup_target=rate, warmup_steps=warmup_steps
    )


def build_model(
    model_type: str = "cnn",
    rate: float | TFObject = 0.01,
    *,
    augment: bool = False,
    label_smoothing: float = 0.0,
) -> TFModel:
    """A compiled model: ``cnn`` (the classic Keras MNIST convnet), ``bn`` (a wider convnet with batch
    normalization, for accuracy), ``small`` (a fast CNN for tests) or ``linear`` (softmax regression, as
    the seed's LINEAR type). ``rate``: a number or a schedule (``learning_rate``); ``label_smoothing``: the
    cross-entropy's target puts that much weight evenly on all ten digits (less over-confidence on few data)."""
    layers = keras.layers

    def conv_bn(h: TFTensor, filters: int, size: int, padding: str = "valid") -> TFTensor:
        h = layers.Conv2D(filters, size, padding=padding, use_bias=False)(h)
        # momentum 0.9, not Keras' 0.99: with a few dozen steps an epoch the moving statistics must follow
        # the weights within an epoch, or early epochs are evaluated (and exported) with a stale normalization.
        h = layers.BatchNormalization(momentum=0.9)(h)
        return layers.Activation("relu")(h)

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
    elif model_type == "bn":
        # 28x28 -> 14x14 -> 12x12 -> 6x6 -> 4x4x128: ~1.5x the cnn's training cost per sample.
        h = conv_bn(h, 32, 5, "same")
        h = layers.MaxPooling2D()(h)
        h = conv_bn(h, 64, 3)
        h = layers.MaxPooling2D()(h)
        h = conv_bn(h, 128, 3)
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
        optimizer=keras.optimizers.Adam(rate),
        loss=_smoothed_loss(label_smoothing) if label_smoothing else "sparse_categorical_crossentropy",
        metrics=["accuracy"],
    )
    return model


def _smoothed_loss(smoothing: float) -> Callable[[TFTensor, TFTensor], TFTensor]:
    """Sparse categorical cross-entropy with label smoothing (tf-keras' sparse loss has no such option)."""

    def smoothed_crossentropy(y_true: TFTensor, y_pred: TFTensor) -> TFTensor:
        one_hot = tf.one_hot(tf.cast(tf.reshape(y_true, [-1]), tf.int32), 10)
        return keras.losses.categorical_crossentropy(one_hot, y_pred, label_smoothing=smoothing)

    return smoothed_crossentropy
