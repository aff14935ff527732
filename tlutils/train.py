"""Seeded, deterministic training and evaluation wrappers (chapters 03-07).

:func:`fit` is ``model.compile`` + ``model.fit`` with the book's defaults, returning a tidy
pandas history table. It prints at most one line per epoch, with no timings, so notebook
outputs are reproducible and strict nbval can compare them.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import numpy as np

from tlutils.config import setup

__all__ = ["EpochLine", "accuracy", "compile_model", "evaluate", "fit", "predict_labels",
           "predict_logits"]


def _keras():
    import keras

    return keras


def _check_model(model: object) -> None:
    if not isinstance(model, _keras().Model):
        raise ValueError(f"model must be a keras.Model, got {type(model).__name__}")


def _check_xy(x: object, y: object) -> None:
    if not isinstance(x, np.ndarray) or x.ndim < 2:
        raise ValueError(f"x must be a numpy array of samples, got {type(x).__name__}")
    if not isinstance(y, np.ndarray) or y.ndim != 1:
        raise ValueError(f"y must be a 1-D numpy array of integer labels, got {getattr(y, 'shape', y)!r}")
    if len(x) != len(y) or len(x) == 0:
        raise ValueError(f"x and y must be non-empty and of equal length, got {len(x)} and {len(y)}")


class EpochLine:
    """Keras callback factory: one deterministic line per epoch (``every`` epochs), e.g.
    ``epoch  3/10  loss 0.2315  accuracy 0.9312  val_accuracy 0.9100``."""

    def __new__(cls, epochs: int, every: int = 1):
        keras = _keras()

        class _EpochLine(keras.callbacks.Callback):
            def on_epoch_end(self, epoch, logs=None):
                n = epoch + 1
                if n % every and n != epochs:
                    return
                parts = [f"epoch {n:>{len(str(epochs))}}/{epochs}"]
                for key in ("loss", "accuracy", "val_loss", "val_accuracy"):
                    if logs and key in logs:
                        parts.append(f"{key} {float(logs[key]):.4f}")
                print("  ".join(parts))

        return _EpochLine()


OPTIMIZERS = ("adam", "momentum", "sgd")


def make_optimizer(optimizer: str | object, lr: object):
    """The optimizer named ``optimizer`` (``"adam"``, ``"sgd"``, or ``"momentum"``: SGD with 0.9
    momentum) at learning rate ``lr``, a number or a Keras ``LearningRateSchedule``; a Keras
    optimizer instance is returned as it is (chapters 03-05: :func:`compile_model` and
    :mod:`tlutils.adapt` build theirs here)."""
    keras = _keras()
    if isinstance(optimizer, keras.optimizers.Optimizer):
        return optimizer
    if not isinstance(optimizer, str):
        raise ValueError(f"optimizer must be a name or a keras optimizer, got {optimizer!r}")
    if optimizer not in OPTIMIZERS:
        raise ValueError(f"optimizer must be one of {list(OPTIMIZERS)} or an optimizer, "
                         f"got {optimizer!r}")
    if optimizer == "adam":
        return keras.optimizers.Adam(lr)
    return keras.optimizers.SGD(lr, momentum=0.9 if optimizer == "momentum" else 0.0)


def compile_model(model, *, lr: float = 1e-3, optimizer: str | object = "adam",
                  loss: object = None, metrics: Sequence[str] = ("accuracy",)) -> None:
    """Compile with a logits-aware cross-entropy (chapter 03) and the chosen optimizer.

    ``optimizer`` is ``"adam"``, ``"sgd"``, ``"momentum"`` (SGD with 0.9 momentum) or a Keras
    optimizer instance (then ``lr`` is ignored).
    """
    keras = _keras()
    _check_model(model)
    if not isinstance(lr, (int, float)) or isinstance(lr, bool) or lr <= 0:
        raise ValueError(f"lr must be a positive number, got {lr!r}")
    optimizer = make_optimizer(optimizer, lr)
    if loss is None:
        loss = keras.losses.SparseCategoricalCrossentropy(from_logits=True)
    model.compile(optimizer=optimizer, loss=loss, metrics=list(metrics))


def fit(model, x: np.ndarray, y: np.ndarray, *, epochs: int = 5, batch_size: int = 32,
        lr: float = 1e-3, optimizer: str | object = "adam", validation_data=None,
        seed: int | None = 0, verbose: int = 0, augment=None, loss: object = None,
        callbacks: Sequence[object] = (), strategy=None):
    """Compile and train ``model``; return a history DataFrame (chapters 03-07).

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
    keras = _keras()
    import tensorflow as tf

    if callable(model) and not isinstance(model, keras.Model):
        builder: Callable[[], object] | None = model
    else:
        builder = None
        _check_model(model)
    _check_xy(x, y)
    for name, value in (("epochs", epochs), ("batch_size", batch_size)):
        if not isinstance(value, int) or isinstance(value, bool) or value <= 0:
            raise ValueError(f"{name} must be a positive int, got {value!r}")
    if verbose not in (0, 1):
        raise ValueError(f"verbose must be 0 or 1, got {verbose!r}")
    if validation_data is not None:
        if not (isinstance(validation_data, tuple) and len(validation_data) == 2):
            raise ValueError("validation_data must be a tuple (x_val, y_val)")
        _check_xy(*validation_data)
    if seed is not None:
        setup(seed)
    strategy = strategy or tf.distribute.get_strategy()
    if not isinstance(strategy, tf.distribute.Strategy):
        raise ValueError(f"strategy must be a tf.distribute.Strategy, got {strategy!r}")

    with strategy.scope():
        if builder is not None:
            model = builder()
            _check_model(model)
        trainee = model
        if augment is not None:
            trainee = keras.Sequential([keras.Input(model.input_shape[1:]), augment, model],
                                       name=f"{model.name}_augmented")
        compile_model(trainee, lr=lr, optimizer=optimizer, loss=loss)
    cbs = list(callbacks) + ([EpochLine(epochs)] if verbose else [])
    steps = -(-len(x) // batch_size)
    train_ds = _pipeline(x, y, batch_size=batch_size, seed=0 if seed is None else seed)
    val_ds = None
    if validation_data is not None:
        val_ds = _batches(validation_data[0], validation_data[1], 512)
    if cbs or val_ds is not None:
        hist = trainee.fit(train_ds, epochs=epochs, steps_per_epoch=steps,
                           validation_data=val_ds, verbose=0, callbacks=cbs)
        rows = hist.history
        epoch_index = np.arange(1, epochs + 1)
    else:
        # Nothing needs per-epoch results: run all epochs as one Keras epoch. Same steps,
        # same data order, minus ~30 ms of Keras bookkeeping per epoch.
        hist = trainee.fit(train_ds, epochs=1, steps_per_epoch=steps * epochs, verbose=0)
        rows = hist.history
        epoch_index = np.array([epochs])
    import pandas as pd

    table = pd.DataFrame(rows)
    table.insert(0, "epoch", epoch_index[: len(table)])
    return table


def _pipeline(x: np.ndarray, y: np.ndarray, *, batch_size: int, seed: int):
    """Shuffled, repeated training batches. tlutils feeds Keras its own ``tf.data`` pipeline:
    with NumPy input Keras builds a parallel map that TF's determinism rewrite turns into a
    C++ error message in every cell, and the pipeline is also faster."""
    import tensorflow as tf

    ds = tf.data.Dataset.from_tensor_slices((x, y))
    ds = ds.shuffle(len(x), seed=seed, reshuffle_each_iteration=True).repeat()
    return ds.batch(batch_size).prefetch(2)


def _batches(x: np.ndarray, y: np.ndarray | None, batch_size: int):
    import tensorflow as tf

    ds = tf.data.Dataset.from_tensor_slices(x if y is None else (x, y))
    return ds.batch(batch_size)


def predict_logits(model, x: np.ndarray, *, batch_size: int = 512) -> np.ndarray:
    """Model outputs for ``x`` as a NumPy array, computed eagerly in batches in inference
    mode (no ``predict`` tracing: fast for the book's small models)."""
    _check_model(model)
    if not isinstance(x, np.ndarray) or x.ndim < 2:
        raise ValueError(f"x must be a numpy array of samples, got {type(x).__name__}")
    if not isinstance(batch_size, int) or batch_size <= 0:
        raise ValueError(f"batch_size must be a positive int, got {batch_size!r}")
    outs = [np.asarray(model(x[i: i + batch_size], training=False))
            for i in range(0, len(x), batch_size)]
    return np.concatenate(outs) if outs else np.zeros((0,), np.float32)


def predict_labels(model, x: np.ndarray, *, batch_size: int = 512) -> np.ndarray:
    """Arg-max class predictions as an int64 array (chapters 04-06)."""
    _check_model(model)
    if not isinstance(x, np.ndarray) or x.ndim < 2:
        raise ValueError(f"x must be a numpy array of samples, got {type(x).__name__}")
    return predict_logits(model, x, batch_size=batch_size).argmax(axis=-1).astype(np.int64)


def accuracy(model, x: np.ndarray, y: np.ndarray, *, batch_size: int = 512) -> float:
    """Top-1 accuracy of ``model`` on ``(x, y)`` as a Python float (chapters 01-06)."""
    _check_xy(x, y)
    return float(np.mean(predict_labels(model, x, batch_size=batch_size) == y))


def evaluate(model, x: np.ndarray, y: np.ndarray, *, batch_size: int = 512) -> dict[str, float]:
    """Cross-entropy loss and accuracy on held-out data, computed without compiling
    (chapter 04, "Evaluation")."""
    _check_model(model)
    _check_xy(x, y)
    import tensorflow as tf

    logits = predict_logits(model, x, batch_size=batch_size)
    loss = tf.keras.losses.sparse_categorical_crossentropy(y, logits, from_logits=True)
    return {"loss": float(np.mean(loss)),
            "accuracy": float(np.mean(np.argmax(logits, axis=-1) == y))}
