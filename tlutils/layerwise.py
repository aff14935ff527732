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
from collections.abc import Callable, Mapping, Sequence

import keras
import numpy as np
import pandas as pd

from tlutils import checks, engine, models, train

__all__ = ["MODES", "grow", "layer_sweep", "seed_runs", "transfer_first_n"]

#: How the transferred layers are treated: kept fixed, or trained on the target with the rest.
MODES = ("frozen", "fine_tuned")


def transfer_first_n(source: keras.Model, n: int, *, frozen: bool = False,
                     num_classes: int | None = None, seed: int = 0) -> keras.Model:
    """A copy of ``source``'s architecture whose first ``n`` weighted layers carry the
    source's weights and the rest fresh random ones (chapter 02, "Layer generality").

    Yosinski et al.'s AnB (``frozen=True``: the copied layers stay fixed) and AnB+
    (``frozen=False``: they are fine-tuned with the rest). ``n`` counts layers with weights
    (:func:`tlutils.models.weighted_layers`); ``n=0`` is training from scratch. With
    ``num_classes`` different from the source's, the head is new and ``n`` may not include
    it. The source is never modified.
    """
    checks.model(source, "source")
    weighted = models.weighted_layers(source)
    n = checks.int_at_least("n", n, 0)
    if n > len(weighted):
        raise ValueError(f"n must be at most {len(weighted)} (the weighted layers of "
                         f"{source.name!r}: {weighted}), got {n}")
    if not isinstance(frozen, bool):
        raise ValueError(f"frozen must be a bool, got {frozen!r}")
    checks.int_at_least("seed", seed, 0)
    n_out = int(source.output_shape[-1])
    num_classes = checks.int_at_least("num_classes",
                                      n_out if num_classes is None else num_classes, 2)
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


def grow(source: keras.Model, upto: str, new_layers: Callable[[keras.KerasTensor], object], *,
         num_classes: int, pretrained: bool = True, freeze: bool = True, seed: int = 0,
         head: str = "head") -> keras.Model:
    """Structural transfer (chapter 02): keep ``source`` from its input up to layer ``upto``
    and grow new layers on it, then a fresh ``Dense(num_classes)`` named ``head``.

    ``new_layers`` is a function from a Keras tensor to a Keras tensor that creates its layers
    when called, e.g. ``lambda h: keras.layers.GlobalAveragePooling2D()(
    keras.layers.Conv2D(32, 3, activation="relu")(h))``. ``pretrained=False`` gives the same
    architecture freshly initialised (the no-transfer control); ``freeze`` keeps the reused
    part fixed. The source is never modified.
    """
    checks.model(source, "source")
    names = [layer.name for layer in source.layers]
    if upto not in names:
        raise ValueError(f"upto={upto!r} is not a layer of {source.name!r}; it has {names}")
    if not callable(new_layers):
        raise ValueError("new_layers must be a function from a Keras tensor to a Keras tensor")
    checks.int_at_least("num_classes", num_classes, 2)
    checks.int_at_least("seed", seed, 0)
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


def seed_runs(build: Callable[[int], keras.Model], x_pool: np.ndarray, y_pool: np.ndarray,
              x_test: np.ndarray, y_test: np.ndarray, *, budget: int, seeds: Sequence[int],
              steps: int = 100, lr: float = 1e-3, batch_size: int = 32) -> list[float]:
    """Test accuracy of ``build(seed)`` trained on ``budget`` labels per class, one run per
    seed (chapter 02). Each run draws its own few-shot sample and initial weights from the
    seed and takes ``steps`` Adam steps at ``lr``.

    The model is compiled once and rewound between seeds by the comparison engine
    (:class:`tlutils.engine.Trainee`). Every ``build(seed)`` must return the same
    architecture with the same trainable layers.
    """
    if not callable(build):
        raise ValueError("build must be a function seed -> keras.Model")
    checks.xy(x_pool, y_pool, names=("x_pool", "y_pool"))
    checks.xy(x_test, y_test, names=("x_test", "y_test"))
    lr = checks.number("lr", lr, low=0.0, strict=True)
    trainee = engine.Trainee(build, seeds, compile=lambda m: train.compile_model(m, lr=lr))
    task = engine.Task(x_pool, y_pool, x_test, y_test, checks.int_at_least("budget", budget))
    results = engine.run({"run": trainee}, [task], steps=steps, batch_size=batch_size)
    return [float(a) for a in results["accuracy"]]


def layer_sweep(source: keras.Model, x_pool: np.ndarray, y_pool: np.ndarray, x_test: np.ndarray,
                y_test: np.ndarray, *, ns: Sequence[int] | None = None,
                modes: Sequence[str] = MODES, budget: int = 10, seeds: Sequence[int] = (0, 1, 2),
                steps: int | None = 100, lr: float = 1e-3, num_classes: int | None = None,
                validation: tuple[np.ndarray, np.ndarray] | None = None,
                lrs: Sequence[float] | Mapping[str, Sequence[float]] | None = None,
                stopping: engine.Stopping | None = None,
                verbose: bool = False) -> pd.DataFrame:
    """Yosinski et al.'s experiment (chapter 02, "Layer generality"): transfer the first
    ``n`` weighted layers of ``source`` for each ``n`` in ``ns``, frozen or fine-tuned, train
    on ``budget`` target labels per class and score on the test set.

    ``ns`` defaults to every ``n`` from 0 up to, not including, the head. By default every
    run takes ``steps`` Adam steps at ``lr``. For a fair comparison (section 2.2, as in
    section 4.3's :func:`tlutils.transfer.compare`) give a ``validation`` set ``(x_val,
    y_val)`` (labelled, disjoint from the pool and the test set) and

    * ``lrs``: a grid of learning rates, one for every run or a dict with a grid for each
      learner the sweep trains: ``"scratch"`` if ``ns`` has 0, each of the ``modes`` if it
      has an ``n > 0`` (grids for the others may be given and are unused); each ``(n,
      mode)`` keeps the rate with the best mean validation accuracy over seeds
      (:func:`tlutils.engine.run_rates`);
    * ``stopping``: a :class:`tlutils.engine.Stopping` rule instead of a fixed step count
      (pass ``steps=None``).

    Returns a tidy DataFrame with columns ``n, layer, mode, seed, accuracy, seconds``, plus
    ``lr, steps, val_accuracy`` with a validation set; ``layer`` names the last transferred
    layer. ``n=0`` (no transfer) is trained once and reported under every mode, so each
    curve starts from the same scratch baseline.
    """
    checks.model(source, "source")
    checks.xy(x_pool, y_pool, names=("x_pool", "y_pool"))
    checks.xy(x_test, y_test, names=("x_test", "y_test"))
    weighted = models.weighted_layers(source)
    if num_classes is None:
        num_classes = int(y_pool.max()) + 1
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
    budget = checks.int_at_least("budget", budget)
    seeds = checks.seeds(seeds)
    lr = checks.number("lr", lr, low=0.0, strict=True)
    x_val, y_val = checks.validation(validation)
    # A grid for each learner the sweep trains: scratch (n = 0) and the modes (n > 0). A
    # dict may also name the others (a notebook's grids for the whole sweep); a name that is
    # no learner at all is still an error.
    keys = (["scratch"] if 0 in ns else []) + (list(modes) if any(n > 0 for n in ns) else [])
    if isinstance(lrs, Mapping):
        lrs = {k: v for k, v in lrs.items() if k in keys or k not in ("scratch", *MODES)}
    grids = checks.rate_grids(keys, lrs, dict.fromkeys(keys, lr))
    if stopping is not None or any(len(g) > 1 for g in grids.values()):
        checks.needs_validation(x_val, "choosing learning rates (lrs) or stopping points "
                                "(stopping)")
    if (steps is None) == (stopping is None):
        raise ValueError("give steps or stopping, not both (pass steps=None with stopping)")
    if stopping is not None and not isinstance(stopping, engine.Stopping):
        raise ValueError(f"stopping must be a tlutils.engine.Stopping, got {stopping!r}")
    if steps is not None:
        steps = checks.int_at_least("steps", steps)
    task = engine.Task(x_pool, y_pool, x_test, y_test, budget, x_val=x_val, y_val=y_val)
    rows = []
    for n in ns:
        for mode in (modes[:1] if n == 0 else modes):
            start = time.perf_counter()
            def build(seed: int, n: int = n, mode: str = mode) -> keras.Model:
                return transfer_first_n(source, n, frozen=mode == "frozen",
                                        num_classes=num_classes, seed=seed)

            grid = grids["scratch" if n == 0 else mode]
            def compile_(m: keras.Model, lr: float = grid[0]) -> None:
                train.compile_model(m, lr=lr)

            trainee = engine.Trainee(build, seeds, compile=compile_)
            if x_val is None:
                runs = engine.run({"run": trainee}, [task], steps=steps)
            else:
                runs = engine.run_rates({"run": trainee}, [task], {"run": grid}, steps=steps,
                                       stopping=stopping)
                runs = runs[runs.chosen]
            seconds = (time.perf_counter() - start) / len(runs)
            extra = ["lr", "steps", "val_accuracy"] if x_val is not None else []
            for reported in (modes if n == 0 else [mode]):
                for _, run in runs.iterrows():
                    rows.append({"n": n, "layer": weighted[n - 1] if n else "(none)",
                                 "mode": reported, "seed": int(run.seed),
                                 "accuracy": float(run.accuracy),
                                 **{k: run[k] for k in extra}, "seconds": seconds})
            if verbose:
                accs = runs.accuracy
                print(f"n={n} {mode:<10} accuracy {np.mean(accs):.3f} +/- {np.std(accs):.3f}")
    table = pd.DataFrame(rows)
    if x_val is not None:
        table["steps"] = table.steps.astype(int)
    return table
