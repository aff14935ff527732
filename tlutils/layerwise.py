"""Transferring a network layer by layer: the first n layers (Yosinski et al. 2014), and a
reused sub-network with new layers grown on it (chapter 02).

* :func:`transfer_first_n` builds a target model whose first ``n`` weighted layers are copied
  from the source (frozen or trainable) and whose other layers are freshly initialised;
* :func:`grow` keeps the source up to a layer and grows new layers on top (structural
  transfer);
* :func:`seed_runs` trains one such builder over seeds, compiling once;
* :func:`layer_sweep` runs the whole experiment: accuracy against ``n``, frozen vs
  fine-tuned, as a tidy table.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence

import numpy as np

from tlutils import models

__all__ = ["MODES", "grow", "layer_sweep", "seed_runs", "transfer_first_n"]

#: How the transferred layers are treated: kept fixed, or trained on the target with the rest.
MODES = ("frozen", "fine_tuned")


def _keras():
    import keras

    return keras


def _check_model(name: str, model: object) -> None:
    if not isinstance(model, _keras().Model):
        raise ValueError(f"{name} must be a keras.Model, got {type(model).__name__}")


def _check_int(name: str, value: object, low: int) -> int:
    if not isinstance(value, (int, np.integer)) or isinstance(value, bool) or value < low:
        raise ValueError(f"{name} must be an int >= {low}, got {value!r}")
    return int(value)


def transfer_first_n(source, n: int, *, frozen: bool = False, num_classes: int | None = None,
                     seed: int = 0):
    """A copy of ``source``'s architecture whose first ``n`` weighted layers carry the
    source's weights and the rest fresh random ones (chapter 02, "Layer generality").

    Yosinski et al.'s AnB (``frozen=True``: the copied layers stay fixed) and AnB+
    (``frozen=False``: they are fine-tuned with the rest). ``n`` counts layers with weights
    (:func:`tlutils.models.weighted_layers`); ``n=0`` is training from scratch. With
    ``num_classes`` different from the source's, the head is new and ``n`` may not include
    it. The source is never modified.
    """
    keras = _keras()
    _check_model("source", source)
    weighted = models.weighted_layers(source)
    n = _check_int("n", n, 0)
    if n > len(weighted):
        raise ValueError(f"n must be at most {len(weighted)} (the weighted layers of "
                         f"{source.name!r}: {weighted}), got {n}")
    if not isinstance(frozen, bool):
        raise ValueError(f"frozen must be a bool, got {frozen!r}")
    _check_int("seed", seed, 0)
    n_out = int(source.output_shape[-1])
    if num_classes is None:
        num_classes = n_out
    _check_int("num_classes", num_classes, 2)
    if num_classes != n_out and n == len(weighted):
        raise ValueError(f"n={n} would copy the head, but num_classes={num_classes} differs "
                         f"from the source's {n_out}")
    keras.utils.set_random_seed(seed)
    target = keras.models.clone_model(source)  # same architecture, fresh initial weights
    if num_classes != n_out:
        target = models.replace_head(target, num_classes, seed=seed, copy=False)
    chosen = weighted[:n]
    if chosen:
        models.copy_weights(source, target, layers=chosen)
    for layer in target.layers:
        layer.trainable = not (frozen and layer.name in chosen)
    return target


def grow(source, upto: str, new_layers: Callable, *, num_classes: int,
         pretrained: bool = True, freeze: bool = True, seed: int = 0, head: str = "head"):
    """Structural transfer (chapter 02): keep ``source`` from its input up to layer ``upto``
    and grow new layers on it, then a fresh ``Dense(num_classes)`` named ``head``.

    ``new_layers`` is a function from a Keras tensor to a Keras tensor that creates its layers
    when called, e.g. ``lambda h: keras.layers.GlobalAveragePooling2D()(
    keras.layers.Conv2D(32, 3, activation="relu")(h))``. ``pretrained=False`` gives the same
    architecture freshly initialised (the no-transfer control); ``freeze`` keeps the reused
    part fixed. The source is never modified.
    """
    keras = _keras()
    _check_model("source", source)
    names = [layer.name for layer in source.layers]
    if upto not in names:
        raise ValueError(f"upto={upto!r} is not a layer of {source.name!r}; it has {names}")
    if not callable(new_layers):
        raise ValueError("new_layers must be a function from a Keras tensor to a Keras tensor")
    _check_int("num_classes", num_classes, 2)
    _check_int("seed", seed, 0)
    for name, value in (("pretrained", pretrained), ("freeze", freeze)):
        if not isinstance(value, bool):
            raise ValueError(f"{name} must be a bool, got {value!r}")
    keras.utils.set_random_seed(seed)
    base = models.clone(source) if pretrained else keras.models.clone_model(source)
    models.unfreeze(base)
    reused = keras.Model(base.inputs, base.get_layer(upto).output, name="reused")
    if freeze and pretrained:
        models.freeze(reused)
    h = new_layers(reused.output)
    if not isinstance(h, keras.KerasTensor):
        raise ValueError("new_layers must return the Keras tensor of its last layer")
    if len(h.shape) > 2:
        h = keras.layers.Flatten(name="grown_flatten")(h)
    init = keras.initializers.GlorotUniform(seed=seed)
    outputs = keras.layers.Dense(num_classes, name=head, kernel_initializer=init)(h)
    return keras.Model(reused.inputs, outputs, name=f"{source.name}_grown")


def seed_runs(build: Callable[[int], object], x_pool: np.ndarray, y_pool: np.ndarray,
              x_test: np.ndarray, y_test: np.ndarray, *, budget: int, seeds: Sequence[int],
              steps: int = 100, lr: float = 1e-3, batch_size: int = 32) -> list[float]:
    """Test accuracy of ``build(seed)`` trained on ``budget`` labels per class, one run per
    seed (chapter 02). Each run draws its own few-shot sample and initial weights from the
    seed and takes ``steps`` Adam steps.

    The model is compiled once and reset between seeds, as
    :func:`tlutils.transfer.compare` does, which saves ~2 s of graph tracing per run. Every
    ``build(seed)`` must return the same architecture with the same trainable layers.
    """
    from tlutils import data, train, transfer

    if not callable(build):
        raise ValueError("build must be a function seed -> keras.Model")
    train._check_xy(x_pool, y_pool)
    train._check_xy(x_test, y_test)
    _check_int("budget", budget, 1)
    _check_int("steps", steps, 1)
    _check_int("batch_size", batch_size, 1)
    if (isinstance(seeds, (str, bytes)) or not isinstance(seeds, Sequence) or not seeds
            or not all(isinstance(s, int) and not isinstance(s, bool) and s >= 0 for s in seeds)):
        raise ValueError(f"seeds must be a non-empty sequence of non-negative ints, got {seeds!r}")
    if isinstance(lr, bool) or not isinstance(lr, (int, float)) or lr <= 0:
        raise ValueError(f"lr must be a positive number, got {lr!r}")
    inits, flags = {}, None
    model = None
    for seed in seeds:
        candidate = build(seed)
        _check_model("build(seed)", candidate)
        these = [w.trainable for w in candidate.weights]
        if flags is not None and these != flags:
            raise ValueError("build must return models with the same trainable weights for "
                             "every seed")
        flags = these
        inits[seed] = candidate.get_weights()
        if model is None:
            model = candidate
    train.compile_model(model, lr=lr)
    accs = []
    for seed in seeds:
        xs, ys = data.few_shot(x_pool, y_pool, budget, seed=seed)
        model.set_weights(inits[seed])
        if model.optimizer.built:
            transfer._reset_optimizer(model.optimizer)
        transfer._reset_rng_state(model, seed)
        model.fit(train._pipeline(xs, ys, batch_size=min(batch_size, len(ys)), seed=seed),
                  epochs=1, steps_per_epoch=steps, verbose=0)
        accs.append(train.accuracy(model, x_test, y_test))
    return accs


def layer_sweep(source, x_pool: np.ndarray, y_pool: np.ndarray, x_test: np.ndarray,
                y_test: np.ndarray, *, ns: Sequence[int] | None = None,
                modes: Sequence[str] = MODES, budget: int = 10, seeds: Sequence[int] = (0, 1, 2),
                steps: int = 100, lr: float = 1e-3, num_classes: int | None = None,
                verbose: bool = False):
    """Yosinski et al.'s experiment (chapter 02, "Layer generality"): transfer the first
    ``n`` weighted layers of ``source`` for each ``n`` in ``ns``, frozen or fine-tuned, train
    on ``budget`` target labels per class and score on the test set.

    ``ns`` defaults to every ``n`` from 0 up to, not including, the head. Returns a tidy
    DataFrame with columns ``n, layer, mode, seed, accuracy, seconds``; ``layer`` names the
    last transferred layer. ``n=0`` (no transfer) is trained once and reported under every
    mode, so each curve starts from the same scratch baseline.
    """
    import pandas as pd

    _check_model("source", source)
    weighted = models.weighted_layers(source)
    if num_classes is None:
        num_classes = int(y_pool.max()) + 1 if isinstance(y_pool, np.ndarray) else None
    if ns is None:
        ns = list(range(len(weighted)))
    if (isinstance(ns, (str, bytes)) or not isinstance(ns, Sequence) or not ns
            or not all(isinstance(n, int) and not isinstance(n, bool) and 0 <= n <= len(weighted)
                       for n in ns)):
        raise ValueError(f"ns must be a non-empty sequence of ints in 0..{len(weighted)}, "
                         f"got {ns!r}")
    if (isinstance(modes, (str, bytes)) or not isinstance(modes, Sequence) or not modes
            or any(m not in MODES for m in modes)):
        raise ValueError(f"modes must be a non-empty sequence drawn from {MODES}, got {modes!r}")
    rows = []
    for n in ns:
        for mode in (modes[:1] if n == 0 else modes):
            start = time.perf_counter()
            accs = seed_runs(
                lambda seed, n=n, mode=mode: transfer_first_n(
                    source, n, frozen=mode == "frozen", num_classes=num_classes, seed=seed),
                x_pool, y_pool, x_test, y_test, budget=budget, seeds=list(seeds),
                steps=steps, lr=lr)
            seconds = (time.perf_counter() - start) / len(accs)
            for reported in (modes if n == 0 else [mode]):
                for seed, acc in zip(seeds, accs):
                    rows.append({"n": n, "layer": weighted[n - 1] if n else "(none)",
                                 "mode": reported, "seed": seed, "accuracy": acc,
                                 "seconds": seconds})
            if verbose:
                print(f"n={n} {mode:<10} accuracy {np.mean(accs):.3f} +/- {np.std(accs):.3f}")
    return pd.DataFrame(rows)
