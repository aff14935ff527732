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

from collections.abc import Mapping, Sequence

import keras
import numpy as np
import pandas as pd

from tlutils import checks, engine, transfer

__all__ = ["DRIFTS", "add_noise", "apply", "gain_table", "invert", "rotate", "sweep"]

#: The drift kinds :func:`apply` knows, with the unit of their strength.
DRIFTS = {"rotation": "degrees", "noise": "noise sd", "inversion": "inverted fraction"}


def rotate(x: np.ndarray, degrees: float) -> np.ndarray:
    """Rotate every image by ``degrees`` counter-clockwise about its centre, keeping its size
    and filling the corners with 0 (chapter 05, "Generalisation and negative transfer")."""
    from scipy import ndimage

    x = checks.images("x", x)
    degrees = checks.number("degrees", degrees, low=-360.0, high=360.0)
    if degrees == 0.0:
        return x.astype(np.float32, copy=True)
    out = ndimage.rotate(x, degrees, axes=(1, 2), reshape=False, order=1, mode="constant",
                         cval=0.0)
    return np.clip(out, 0.0, 1.0).astype(np.float32)


def add_noise(x: np.ndarray, sigma: float, *, seed: int = 0) -> np.ndarray:
    """Add Gaussian pixel noise of standard deviation ``sigma`` and clip to [0, 1]; the same
    ``seed`` gives the same noise (chapter 05, "Generalisation and negative transfer")."""
    x = checks.images("x", x)
    sigma = checks.number("sigma", sigma, low=0.0)
    seed = checks.int_at_least("seed", seed, 0)
    noise = np.random.default_rng(seed).standard_normal(x.shape).astype(np.float32)
    return np.clip(x + sigma * noise, 0.0, 1.0).astype(np.float32)


def invert(x: np.ndarray, fraction: float, *, seed: int = 0) -> np.ndarray:
    """Invert the polarity (``1 - x``: white background, dark strokes) of a seeded random
    ``fraction`` of the images, ``round(fraction * n)`` of them; the rest are unchanged
    copies. At 1 every image is inverted (chapter 05, "Generalisation and negative
    transfer")."""
    x = checks.images("x", x)
    fraction = checks.number("fraction", fraction, low=0.0, high=1.0)
    seed = checks.int_at_least("seed", seed, 0)
    out = x.astype(np.float32, copy=True)
    chosen = np.random.default_rng(seed).permutation(len(x))[: int(round(fraction * len(x)))]
    out[chosen] = 1.0 - out[chosen]
    return out


def apply(x: np.ndarray, kind: str, strength: float, *, seed: int = 0) -> np.ndarray:
    """Apply the drift ``kind`` (a key of :data:`DRIFTS`) at ``strength`` (chapter 05).
    Strength 0 returns an unchanged copy for every kind."""
    checks.one_of("kind", kind, sorted(DRIFTS))
    if kind == "rotation":
        return rotate(x, strength)
    if kind == "noise":
        return add_noise(x, strength, seed=seed)
    return invert(x, strength, seed=seed)


def _strengths(drifts: object) -> dict[str, list[float]]:
    if not isinstance(drifts, Mapping) or not drifts:
        raise ValueError(f"drifts must be a non-empty mapping kind -> strengths, got {drifts!r}")
    return {checks.one_of("drifts: kind", kind, sorted(DRIFTS)):
            [checks.number(f"drifts[{kind!r}]", v) for v in checks.sequence(f"drifts[{kind!r}]",
                                                                            levels)]
            for kind, levels in drifts.items()}


def sweep(source: keras.Model, x_pool: np.ndarray, y_pool: np.ndarray, x_test: np.ndarray,
          y_test: np.ndarray, *, drifts: Mapping[str, Sequence[float]],
          recipes: Mapping[str, transfer.Recipe] | Sequence[str] = ("scratch", "fine_tune"),
          budget: int = 10, seeds: Sequence[int] = (0, 1, 2), steps: int | None = 100,
          batch_size: int = 32, drift_seed: int = 0,
          validation: tuple[np.ndarray, np.ndarray] | None = None,
          lrs: Sequence[float] | Mapping[str, Sequence[float]] | None = None,
          stopping: engine.Stopping | None = None, all_rates: bool = False,
          verbose: bool = False) -> pd.DataFrame:
    """Train every recipe on the drifted target at every strength and seed; score it on the
    equally drifted test set (chapter 05, "Generalisation and negative transfer").

    ``drifts`` maps a kind to its strengths, e.g. ``{"rotation": (0, 90, 180)}``; ``recipes``
    is a list of method names or a dict of :class:`tlutils.transfer.Recipe` as in
    :func:`tlutils.transfer.compare`, whose conventions and engine this shares (``budget``
    labelled examples per class drawn per seed, ``steps`` gradient steps per run). With a
    ``validation`` set ``(x_val, y_val)``, drifted like the test set, and a ``stopping`` rule
    (:class:`tlutils.engine.Stopping`, with ``steps=None``) every run stops when its
    validation accuracy stops improving; each recipe trains at its own ``lr``, or, with
    ``lrs`` (one grid, or a dict recipe name -> grid, as in ``compare``), at the rate of its
    grid with the best mean validation accuracy *at each drift condition*
    (:func:`tlutils.engine.run_rates`; the test set plays no part).

    Returns a tidy DataFrame: ``drift, strength, method, seed, accuracy, seconds``, plus
    ``steps`` and ``val_accuracy`` with a validation set and ``lr`` with ``lrs``: the runs
    at the chosen rates, or (``all_rates=True``) every run of the grids with a boolean
    column ``chosen``.
    """
    table = transfer.recipes_table(recipes)
    checks.model(source, "source")
    checks.xy(x_pool, y_pool, names=("x_pool", "y_pool"))
    checks.xy(x_test, y_test, names=("x_test", "y_test"))
    checks.images("x_pool", x_pool)
    checks.images("x_test", x_test)
    levels = _strengths(drifts)
    budget = checks.int_at_least("budget", budget)
    seeds = checks.seeds(seeds)
    drift_seed = checks.int_at_least("drift_seed", drift_seed, 0)
    x_val, y_val = checks.validation(validation)
    if x_val is not None:
        checks.images("x_val", x_val)
    if lrs is not None:
        checks.needs_validation(x_val, "choosing learning rates (lrs)")
    grid = transfer.rate_grids(table, lrs) if lrs is not None else None
    if not isinstance(all_rates, bool) or (all_rates and grid is None):
        raise ValueError(f"all_rates must be True or False, and True only with lrs; got "
                         f"{all_rates!r}")

    # The drifted datasets, made once and shared by every recipe and seed. Pool, test and
    # validation get different random draws (seeds drift_seed, + 1 and + 2).
    tasks = [engine.Task(apply(x_pool, kind, s, seed=drift_seed), y_pool,
                         apply(x_test, kind, s, seed=drift_seed + 1), y_test, budget,
                         {"drift": kind, "strength": s},
                         x_val=None if x_val is None else apply(x_val, kind, s,
                                                                seed=drift_seed + 2),
                         y_val=y_val)
             for kind, strengths in levels.items() for s in strengths]
    n_classes = int(max(y_pool.max(), y_test.max())) + 1
    trainees = {name: recipe.trainee(source, n_classes, seeds) for name, recipe in table.items()}
    extra = ["steps", "val_accuracy"] if validation is not None else []
    if grid is None:
        results = engine.run(trainees, tasks, steps=steps, stopping=stopping,
                             batch_size=batch_size, verbose=verbose)
        return results[["drift", "strength", "method", "seed", "accuracy", *extra, "seconds"]]
    results = engine.run_rates(trainees, tasks, grid, steps=steps, stopping=stopping,
                              batch_size=batch_size, verbose=verbose)
    # Condition by condition, in the order of ``drifts``; methods and rates as run.
    rank = {(t.columns["drift"], t.columns["strength"]): i for i, t in enumerate(tasks)}
    order = np.argsort([rank[key] for key in zip(results.drift, results.strength)],
                       kind="stable")
    results = results.iloc[order].reset_index(drop=True)
    columns = ["drift", "strength", "method", "lr", "seed", "accuracy", *extra, "seconds"]
    if all_rates:
        return results[[*columns, "chosen"]]
    return results[results.chosen][columns].reset_index(drop=True)


def gain_table(results: pd.DataFrame, *, baseline: str = "scratch",
               by: Sequence[str] = ("drift", "strength"), digits: int = 3) -> pd.DataFrame:
    """Transfer gain per condition: each method's accuracy minus ``baseline``'s on the same
    seed, then mean, sd and count over seeds (chapter 05). A negative mean gain is negative
    transfer: Wang et al. (2019) call ``-gain`` (the error with the source minus the error
    without it) the *negative transfer gap*. Returns one row per condition and non-baseline
    method, indexed by ``by`` and ``method``.
    """
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
