"""Seeded, deterministic training and evaluation wrappers (chapters 03-06).

:func:`fit` is ``model.compile`` + ``model.fit`` with the book's defaults, returning a tidy
pandas history table. It prints at most one line per epoch, with no timings, so notebook
outputs are reproducible and strict nbval can compare them.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import keras
import numpy as np
import pandas as pd
import tensorflow as tf

from tlutils import checks
from tlutils.config import setup

__all__ = ["OPTIMIZERS", "EpochLine", "accuracy", "batches", "compile_model", "evaluate", "fit",
           "make_optimizer", "predict_labels", "predict_logits"]


@keras.saving.register_keras_serializable(package="tlutils")
class EpochLine(keras.callbacks.Callback):
    """Keras callback: one deterministic line per epoch (``every`` epochs), e.g.
    ``epoch  3/10  loss 0.2315  accuracy 0.9312  val_accuracy 0.9100`` (chapter 04)."""

    def __init__(self, epochs: int, every: int = 1) -> None:
        super().__init__()
        self.epochs = checks.int_at_least("epochs", epochs)
        self.every = checks.int_at_least("every", every)

    def on_epoch_end(self, epoch: int, logs: dict | None = None) -> None:
        n = epoch + 1
        if n % self.every and n != self.epochs:
            return
        parts = [f"epoch {n:>{len(str(self.epochs))}}/{self.epochs}"]
        for key in ("loss", "accuracy", "val_loss", "val_accuracy"):
            if logs and key in logs:
                parts.append(f"{key} {float(logs[key]):.4f}")
        print("  ".join(parts))

    def get_config(self) -> dict[str, int]:
        return {"epochs": self.epochs, "every": self.every}


OPTIMIZERS = ("adam", "momentum", "sgd")


def make_optimizer(optimizer: str | keras.optimizers.Optimizer,
                   lr: float | keras.optimizers.schedules.LearningRateSchedule = 1e-3, *,
                   momentum: float = 0.9) -> keras.optimizers.Optimizer:
    """The optimizer named ``optimizer`` at learning rate ``lr`` (a number or a Keras
    ``LearningRateSchedule``): ``"adam"``, ``"sgd"`` (plain), or ``"momentum"`` (SGD with
    ``momentum``). A Keras optimizer instance is returned as it is (section 3.1, "SGD,
    momentum and Adam on the same problem"; every training helper builds its optimizer here)."""
    if isinstance(optimizer, keras.optimizers.Optimizer):
        return optimizer
    checks.one_of("optimizer", optimizer, OPTIMIZERS)
    if not isinstance(lr, keras.optimizers.schedules.LearningRateSchedule):
        lr = checks.number("lr", lr, low=0.0, strict=True)
    momentum = checks.number("momentum", momentum, low=0.0, high=1.0)
    if optimizer == "adam":
        return keras.optimizers.Adam(lr)
    return keras.optimizers.SGD(lr, momentum=momentum if optimizer == "momentum" else 0.0)


def compile_model(model: keras.Model, *, lr: float = 1e-3,
                  optimizer: str | keras.optimizers.Optimizer = "adam",
                  loss: object = None, metrics: Sequence[str] = ("accuracy",)) -> None:
    """Compile with a logits-aware cross-entropy (chapter 03) and the chosen optimizer.

    ``optimizer`` is ``"adam"``, ``"sgd"``, ``"momentum"`` (SGD with 0.9 momentum) or a Keras
    optimizer instance (then ``lr`` is ignored).
    """
    checks.model(model)
    if loss is None:
        loss = keras.losses.SparseCategoricalCrossentropy(from_logits=True)
    model.compile(optimizer=make_optimizer(optimizer, lr), loss=loss, metrics=list(metrics))


def fit(model: keras.Model | Callable[[], keras.Model], x: np.ndarray, y: np.ndarray, *,
        epochs: int = 5, batch_size: int = 32, lr: float = 1e-3,
        optimizer: str | keras.optimizers.Optimizer = "adam",
        validation_data: tuple[np.ndarray, np.ndarray] | None = None, seed: int | None = 0,
        verbose: int = 0, augment: keras.Layer | None = None, loss: object = None,
        callbacks: Sequence[keras.callbacks.Callback] = (),
        strategy: tf.distribute.Strategy | None = None) -> pd.DataFrame:
    """Compile and train ``model``; return a history DataFrame (chapters 03-06).

    The table has one row per epoch when ``verbose``, ``validation_data`` or ``callbacks``
    ask for per-epoch results; otherwise all epochs run as one Keras epoch (same steps and
    data order, less overhead) and the table has a single row for the last epoch.

    * ``seed`` reseeds Python/NumPy/TF and enables deterministic ops first (``None`` skips).
    * ``verbose=1`` prints one line per epoch (no per-batch progress bars, no timings).
    * ``augment`` is a Keras layer (e.g. :func:`tlutils.data.augmenter`) applied to training
      batches only; the model's weights are shared, its architecture unchanged.
    * ``strategy`` is a ``tf.distribute.Strategy``; compiling happens under its scope. Build the
      model under the same scope (or pass a zero-argument builder as ``model``).
    """
    builder = model if callable(model) and not isinstance(model, keras.Model) else None
    if builder is None:
        checks.model(model)
    checks.xy(x, y)
    epochs = checks.int_at_least("epochs", epochs)
    batch_size = checks.int_at_least("batch_size", batch_size)
    checks.one_of("verbose", verbose, (0, 1))
    if validation_data is not None:
        if not (isinstance(validation_data, tuple) and len(validation_data) == 2):
            raise ValueError("validation_data must be a tuple (x_val, y_val)")
        checks.xy(*validation_data, names=("validation_data[0]", "validation_data[1]"))
    if seed is not None:
        setup(seed)
    strategy = strategy or tf.distribute.get_strategy()
    if not isinstance(strategy, tf.distribute.Strategy):
        raise ValueError(f"strategy must be a tf.distribute.Strategy, got {strategy!r}")

    with strategy.scope():
        if builder is not None:
            model = checks.model(builder(), "model()")
        assert isinstance(model, keras.Model)
        if loss is None:  # sparse cross-entropy: a label must index one of the model's outputs
            checks.labels("y", y, int(model.output_shape[-1]))
        trainee = model
        if augment is not None:
            trainee = keras.Sequential([keras.Input(model.input_shape[1:]), augment, model],
                                       name=f"{model.name}_augmented")
        compile_model(trainee, lr=lr, optimizer=optimizer, loss=loss)
    cbs = list(callbacks) + ([EpochLine(epochs)] if verbose else [])
    steps = -(-len(x) // batch_size)
    train_ds = batches(x, y, batch_size=batch_size, seed=0 if seed is None else seed)
    val_ds = None
    if validation_data is not None:
        val_ds = tf.data.Dataset.from_tensor_slices(validation_data).batch(512)
    if cbs or val_ds is not None:
        hist = trainee.fit(train_ds, epochs=epochs, steps_per_epoch=steps,
                           validation_data=val_ds, verbose=0, callbacks=cbs)
        epoch_index = np.arange(1, epochs + 1)
    else:
        # Nothing needs per-epoch results: run all epochs as one Keras epoch. Same steps,
        # same data order, minus ~30 ms of Keras bookkeeping per epoch.
        hist = trainee.fit(train_ds, epochs=1, steps_per_epoch=steps * epochs, verbose=0)
        epoch_index = np.array([epochs])
    table = pd.DataFrame(hist.history)
    table.insert(0, "epoch", epoch_index[: len(table)])
    return table


def batches(x: np.ndarray, y: np.ndarray, *, batch_size: int, seed: int) -> tf.data.Dataset:
    """Shuffled, endlessly repeated training batches of ``(x, y)``, reshuffled every pass
    (chapter 04). The order depends only on ``seed``: every iterator made from the dataset
    (one per replica set-up under ``tf.distribute``, chapter 05.7) sees the same batches, because
    the shuffle is built inside ``flat_map`` and so starts afresh for each new iterator.
    Inner helper: callers pass checked arrays."""
    base = tf.data.Dataset.from_tensor_slices((x, y))
    n = len(x)

    def passes(_: tf.Tensor) -> tf.data.Dataset:
        return base.shuffle(n, seed=seed, reshuffle_each_iteration=True).repeat()

    return tf.data.Dataset.range(1).flat_map(passes).batch(batch_size).prefetch(2)


def predict_logits(model: keras.Model, x: np.ndarray, *, batch_size: int = 512) -> np.ndarray:
    """Model outputs for ``x`` as a NumPy array, computed eagerly in batches in inference
    mode (no ``predict`` tracing: fast for the book's small models; chapter 04)."""
    checks.model(model)
    checks.finite_array("x", x, min_ndim=2)
    batch_size = checks.int_at_least("batch_size", batch_size)
    return _logits(model, x, batch_size)


def _logits(model: keras.Model, x: np.ndarray, batch_size: int) -> np.ndarray:
    outs = [np.asarray(model(x[i: i + batch_size], training=False))
            for i in range(0, len(x), batch_size)]
    return np.concatenate(outs)


def predict_labels(model: keras.Model, x: np.ndarray, *, batch_size: int = 512) -> np.ndarray:
    """Arg-max class predictions as an int64 array (chapters 04-06)."""
    return predict_logits(model, x, batch_size=batch_size).argmax(axis=-1).astype(np.int64)


def accuracy(model: keras.Model, x: np.ndarray, y: np.ndarray, *,
             batch_size: int = 512) -> float:
    """Top-1 accuracy of ``model`` on ``(x, y)`` as a Python float (chapters 01-06)."""
    checks.xy(x, y)
    return float(np.mean(predict_labels(model, x, batch_size=batch_size) == y))


def evaluate(model: keras.Model, x: np.ndarray, y: np.ndarray, *,
             batch_size: int = 512) -> dict[str, float]:
    """Cross-entropy loss and accuracy on held-out data, computed without compiling
    (chapter 04, "Evaluation")."""
    checks.xy(x, y)
    logits = predict_logits(model, x, batch_size=batch_size)
    loss = keras.losses.sparse_categorical_crossentropy(y, logits, from_logits=True)
    return {"loss": float(np.mean(loss)),
            "accuracy": float(np.mean(np.argmax(logits, axis=-1) == y))}
