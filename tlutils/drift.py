"""Seeded distribution drift and the transfer-versus-scratch sweep over it (chapter 05,
"Generalisation and negative transfer").

A *drift* moves the target domain away from the source by a known amount: rotate the digits,
bury them in noise, or invert the polarity (white background, dark strokes) of a share of
them. Each transform is deterministic (random choices are seeded), so every method sees
exactly the same target images.
:func:`sweep` trains every recipe at every drift strength and seed; :func:`gain_table` turns
the result into *transfer gain* (transfer minus scratch, paired by seed). A negative gain is
negative transfer in the sense of Wang et al. (2019): the source made the target worse.
"""

from __future__ import annotations

import time
from collections.abc import Mapping, Sequence

import numpy as np

__all__ = ["DRIFTS", "add_noise", "apply", "gain_table", "invert", "rotate", "sweep"]

#: The drift kinds :func:`apply` knows, with the unit of their strength.
DRIFTS = {"rotation": "degrees", "noise": "noise sd", "inversion": "inverted fraction"}


def _check_images(x: object) -> np.ndarray:
    if not isinstance(x, np.ndarray) or x.ndim != 4 or x.shape[0] == 0:
        raise ValueError(f"x must be a non-empty (n, h, w, c) image array, "
                         f"got {getattr(x, 'shape', type(x).__name__)!r}")
    return x


def _check_number(name: str, value: object, lo: float | None = None,
                  hi: float | None = None) -> float:
    if not isinstance(value, (int, float)) or isinstance(value, bool) or not np.isfinite(value):
        raise ValueError(f"{name} must be a finite number, got {value!r}")
    if (lo is not None and value < lo) or (hi is not None and value > hi):
        raise ValueError(f"{name} must be in [{lo}, {hi}], got {value!r}")
    return float(value)


def rotate(x: np.ndarray, degrees: float) -> np.ndarray:
    """Rotate every image by ``degrees`` counter-clockwise about its centre, keeping its size
    and filling the corners with 0 (chapter 05, "Generalisation and negative transfer")."""
    from scipy import ndimage

    x = _check_images(x)
    degrees = _check_number("degrees", degrees, -360.0, 360.0)
    if degrees == 0.0:
        return x.astype(np.float32, copy=True)
    out = ndimage.rotate(x, degrees, axes=(1, 2), reshape=False, order=1, mode="constant",
                         cval=0.0)
    return np.clip(out, 0.0, 1.0).astype(np.float32)


def add_noise(x: np.ndarray, sigma: float, *, seed: int = 0) -> np.ndarray:
    """Add Gaussian pixel noise of standard deviation ``sigma`` and clip to [0, 1]; the same
    ``seed`` gives the same noise (chapter 05, "Generalisation and negative transfer")."""
    x = _check_images(x)
    sigma = _check_number("sigma", sigma, 0.0, None)
    if not isinstance(seed, int) or isinstance(seed, bool) or seed < 0:
        raise ValueError(f"seed must be a non-negative int, got {seed!r}")
    noise = np.random.default_rng(seed).standard_normal(x.shape).astype(np.float32)
    return np.clip(x + sigma * noise, 0.0, 1.0).astype(np.float32)


def invert(x: np.ndarray, fraction: float, *, seed: int = 0) -> np.ndarray:
    """Invert the polarity (``1 - x``: white background, dark strokes) of a seeded random
    ``fraction`` of the images, ``round(fraction * n)`` of them; the rest are unchanged
    copies. At 1 every image is inverted (chapter 05, "Generalisation and negative
    transfer")."""
    x = _check_images(x)
    fraction = _check_number("fraction", fraction, 0.0, 1.0)
    if not isinstance(seed, int) or isinstance(seed, bool) or seed < 0:
        raise ValueError(f"seed must be a non-negative int, got {seed!r}")
    out = x.astype(np.float32, copy=True)
    chosen = np.random.default_rng(seed).permutation(len(x))[: int(round(fraction * len(x)))]
    out[chosen] = 1.0 - out[chosen]
    return out


def apply(x: np.ndarray, kind: str, strength: float, *, seed: int = 0) -> np.ndarray:
    """Apply the drift ``kind`` (a key of :data:`DRIFTS`) at ``strength`` (chapter 05).
    Strength 0 returns an unchanged copy for every kind."""
    if kind not in DRIFTS:
        raise ValueError(f"kind must be one of {sorted(DRIFTS)}, got {kind!r}")
    if kind == "rotation":
        return rotate(x, strength)
    if kind == "noise":
        return add_noise(x, strength, seed=seed)
    return invert(x, strength, seed=seed)


def _check_drifts(drifts: object) -> dict[str, list[float]]:
    if not isinstance(drifts, Mapping) or not drifts:
        raise ValueError(f"drifts must be a non-empty mapping kind -> strengths, got {drifts!r}")
    out = {}
    for kind, levels in drifts.items():
        if kind not in DRIFTS:
            raise ValueError(f"drifts: kind must be one of {sorted(DRIFTS)}, got {kind!r}")
        if isinstance(levels, (str, bytes)) or not isinstance(levels, Sequence) or not levels:
            raise ValueError(f"drifts[{kind!r}] must be a non-empty sequence of strengths")
        out[kind] = [_check_number(f"drifts[{kind!r}]", v) for v in levels]
    return out


def sweep(source, x_pool: np.ndarray, y_pool: np.ndarray, x_test: np.ndarray,
          y_test: np.ndarray, *, drifts: Mapping[str, Sequence[float]],
          recipes=("scratch", "fine_tune"), budget: int = 10,
          seeds: Sequence[int] = (0, 1, 2), steps: int = 100, batch_size: int = 32,
          drift_seed: int = 0, verbose: bool = False):
    """Train every recipe on the drifted target at every strength and seed; score it on the
    equally drifted test set (chapter 05, "Generalisation and negative transfer").

    ``drifts`` maps a kind to its strengths, e.g. ``{"rotation": (0, 90, 180)}``; ``recipes``
    is a list of method names or a dict of :class:`tlutils.transfer.Recipe` as in
    :func:`tlutils.transfer.compare`, whose conventions this follows (``budget`` labelled
    examples per class drawn per seed, ``steps`` gradient steps per run). Each recipe's model
    is compiled once and reset before every run, so a run costs its steps and little else.

    Returns a tidy DataFrame: ``drift, strength, method, seed, accuracy, seconds``.
    """
    import keras
    import pandas as pd

    from tlutils import data, train, transfer

    table = transfer._as_recipes(recipes)
    if not isinstance(source, keras.Model):
        raise ValueError(f"source must be a keras.Model, got {type(source).__name__}")
    train._check_xy(x_pool, y_pool)
    train._check_xy(x_test, y_test)
    _check_images(x_pool)
    _check_images(x_test)
    levels = _check_drifts(drifts)
    for name, value in (("budget", budget), ("steps", steps), ("batch_size", batch_size)):
        if not isinstance(value, int) or isinstance(value, bool) or value <= 0:
            raise ValueError(f"{name} must be a positive int, got {value!r}")
    if (isinstance(seeds, (str, bytes)) or not isinstance(seeds, Sequence) or not seeds
            or not all(isinstance(s, int) and not isinstance(s, bool) and s >= 0
                       for s in seeds)):
        raise ValueError(f"seeds must be a non-empty sequence of non-negative ints, got {seeds!r}")
    if not isinstance(drift_seed, int) or isinstance(drift_seed, bool) or drift_seed < 0:
        raise ValueError(f"drift_seed must be a non-negative int, got {drift_seed!r}")

    # The drifted datasets, made once and shared by every recipe and seed. Pool and test get
    # different random draws (seeds drift_seed and drift_seed + 1).
    conditions = [(kind, s, apply(x_pool, kind, s, seed=drift_seed),
                   apply(x_test, kind, s, seed=drift_seed + 1))
                  for kind, strengths in levels.items() for s in strengths]
    n_classes = int(max(y_pool.max(), y_test.max())) + 1
    rows = []
    for name, recipe in table.items():
        def build(seed: int, recipe=recipe):
            return transfer.make_target(source, recipe.method, num_classes=n_classes,
                                        keep_head=recipe.keep_head,
                                        freeze_upto=recipe.freeze_upto, seed=seed)
        inits = {seed: build(seed).get_weights() for seed in seeds}
        model = build(seeds[0])
        if recipe.l2sp is not None:
            transfer.apply_l2sp(model, alpha=recipe.l2sp)
        if recipe.l2 is not None:
            transfer.apply_l2(model, recipe.l2)
        trainee = model
        if recipe.augment:
            trainee = keras.Sequential([keras.Input(model.input_shape[1:]),
                                        data.augmenter(seed=seeds[0]), model])
        optimizer = (transfer.LayerwiseAdam(recipe.lr, dict(recipe.lr_multipliers))
                     if recipe.lr_multipliers else "adam")
        train.compile_model(trainee, lr=recipe.lr, optimizer=optimizer)
        for kind, strength, xp, xt in conditions:
            accs = []
            for seed in seeds:
                start = time.perf_counter()
                xs, ys = data.few_shot(xp, y_pool, budget, seed=seed)
                model.set_weights(inits[seed])
                if trainee.optimizer.built:
                    transfer._reset_optimizer(trainee.optimizer)
                transfer._reset_rng_state(trainee, seed)
                trainee.fit(train._pipeline(xs, ys, batch_size=min(batch_size, len(ys)),
                                            seed=seed),
                            epochs=1, steps_per_epoch=steps, verbose=0)
                acc = train.accuracy(model, xt, y_test)
                accs.append(acc)
                rows.append({"drift": kind, "strength": strength, "method": name,
                             "seed": seed, "accuracy": acc,
                             "seconds": time.perf_counter() - start})
            if verbose:
                print(f"{name:<20} {kind:<10} {strength:>6g}  accuracy {np.mean(accs):.3f}")
    return pd.DataFrame(rows)


def gain_table(results, *, baseline: str = "scratch", by: Sequence[str] = ("drift", "strength"),
               digits: int = 3):
    """Transfer gain per condition: each method's accuracy minus ``baseline``'s on the same
    seed, then mean, sd and count over seeds (chapter 05). A negative mean gain is negative
    transfer: Wang et al. (2019) call ``-gain`` (the error with the source minus the error
    without it) the *negative transfer gap*. Returns one row per condition and non-baseline
    method, indexed by ``by`` and ``method``.
    """
    import pandas as pd

    if not isinstance(results, pd.DataFrame):
        raise ValueError(f"results must be a DataFrame, got {type(results).__name__}")
    keys = [*by, "seed"]
    missing = [c for c in (*keys, "method", "accuracy") if c not in results.columns]
    if missing:
        raise ValueError(f"results lacks columns {missing}")
    if baseline not in set(results["method"]):
        raise ValueError(f"baseline={baseline!r} is not a method in results; it has "
                         f"{sorted(set(results['method']))}")
    base = results[results["method"] == baseline][keys + ["accuracy"]]
    base = base.rename(columns={"accuracy": "baseline"})
    others = results[results["method"] != baseline]
    if others.empty:
        raise ValueError("results has no method besides the baseline")
    merged = others.merge(base, on=keys, how="inner")
    merged["gain"] = merged["accuracy"] - merged["baseline"]
    table = (merged.groupby([*by, "method"], sort=False)["gain"]
             .agg(["mean", "std", "count"]).round(digits))
    return table
