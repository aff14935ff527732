"""Transfer recipes: building target models from a source, L2-SP, discriminative learning
rates, and the seed x label-budget comparison (chapters 01-06).

Three ways to use a source model on a target task, compared throughout the book:

* ``scratch``: the same architecture, freshly initialised (no transfer; the baseline);
* ``feature_extraction``: copy the source, freeze everything but the head, train the head;
* ``fine_tune``: copy the source and train every layer, usually with a smaller learning rate.

A :class:`Recipe` says how to build and train one target model; :func:`compare` runs recipes
over label budgets and seeds through the comparison engine (:mod:`tlutils.engine`).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import keras
import numpy as np
import pandas as pd

from tlutils import checks, engine, models

__all__ = [
    "METHODS",
    "L2SP",
    "LayerwiseAdam",
    "Recipe",
    "apply_l2",
    "apply_l2sp",
    "compare",
    "make_target",
    "recipes_table",
    "rate_grids",
    "run_grid",
    "summarise",
    "transfer_efficiency",
]

METHODS = ("scratch", "feature_extraction", "fine_tune")


def make_target(source: keras.Model, method: str, *, num_classes: int | None = None,
                keep_head: bool = False, freeze_upto: str | int = "dense",
                seed: int = 0) -> keras.Model:
    """A target model built from ``source`` by ``method`` (chapter 04, "Target fine-tuning").

    ``method`` is one of :data:`METHODS`. ``keep_head=True`` keeps the source's output layer
    (only valid when source and target share their label set, as MNIST and scikit-learn
    digits do); otherwise a fresh ``Dense(num_classes)`` head replaces it. For
    ``feature_extraction`` every layer up to ``freeze_upto`` is frozen. The source model is
    never modified.
    """
    checks.model(source, "source")
    checks.one_of("method", method, METHODS)
    seed = checks.int_at_least("seed", seed, 0)
    n_out = int(source.output_shape[-1])
    num_classes = n_out if num_classes is None else checks.int_at_least("num_classes",
                                                                         num_classes, 2)
    if keep_head and num_classes != n_out:
        raise ValueError(f"keep_head=True needs num_classes == {n_out} (the source's), "
                         f"got {num_classes}")
    keras.utils.set_random_seed(seed)
    if method == "scratch":
        fresh = keras.models.clone_model(source)  # same architecture, new initial weights
        return fresh if num_classes == n_out else models.replace_head(fresh, num_classes,
                                                                       seed=seed, copy=False)
    target = models.clone(source) if keep_head else models.replace_head(source, num_classes,
                                                                        seed=seed)
    models.unfreeze(target)
    if method == "feature_extraction":
        models.freeze(target, upto=freeze_upto)
    return target


@keras.saving.register_keras_serializable(package="tlutils")
class L2SP(keras.regularizers.Regularizer):
    """The L2-SP penalty ``alpha * ||w - w0||^2`` that pulls a weight towards its pretrained
    value ``w0`` (the ``anchor``) instead of towards zero (Li et al. 2018; chapter 03,
    "Regularisation"). A Keras regulariser: assign one to ``variable.regularizer``."""

    def __init__(self, anchor: np.ndarray | Sequence[Any], alpha: float) -> None:
        self.alpha = checks.number("alpha", alpha, low=0.0)
        self.anchor = checks.finite_array("anchor", np.asarray(anchor, dtype=np.float32),
                                          min_ndim=0)

    def __call__(self, x: Any) -> Any:
        return self.alpha * keras.ops.sum(keras.ops.square(x - self.anchor))

    def get_config(self) -> dict[str, Any]:
        return {"anchor": self.anchor.tolist(), "alpha": self.alpha}


def apply_l2sp(model: keras.Model, *, alpha: float = 1e-2, beta: float = 1e-4,
               head: str = "head") -> dict[str, str]:
    """Attach L2-SP to every trainable weight except the head's, and plain L2 (``beta``) to
    the head's (chapter 03). The anchors are the weights *now*: call this right after copying
    the source weights, before training. Returns ``{variable path: penalty}``.
    """
    checks.model(model)
    alpha = checks.number("alpha", alpha, low=0.0)
    beta = checks.number("beta", beta, low=0.0)
    names = [layer.name for layer in model.layers]
    if head not in names:
        raise ValueError(f"head={head!r} is not a layer of {model.name!r}; it has {names}")
    applied = {}
    for layer in model.layers:
        for var in layer.trainable_weights:
            if layer.name == head:
                var.regularizer = keras.regularizers.L2(beta) if beta > 0 else None
                applied[var.path] = f"L2({beta:g})"
            else:
                var.regularizer = L2SP(np.asarray(var), alpha) if alpha > 0 else None
                applied[var.path] = f"L2-SP({alpha:g})"
    return applied


def apply_l2(model: keras.Model, factor: float) -> list[str]:
    """Plain L2 weight decay ``factor * ||w||^2`` on every trainable weight: the classic
    regulariser, which pulls transferred weights towards zero, i.e. away from what the source
    learned (chapter 03 compares it with :func:`apply_l2sp`). Returns the variable paths."""
    checks.model(model)
    factor = checks.number("factor", factor, low=0.0)
    paths = []
    for var in model.trainable_weights:
        var.regularizer = keras.regularizers.L2(factor) if factor > 0 else None
        paths.append(var.path)
    return paths


@keras.saving.register_keras_serializable(package="tlutils")
class LayerwiseAdam(keras.optimizers.Adam):
    """Adam with a learning-rate multiplier per layer: discriminative fine-tuning, e.g. the
    head at 1x and the first convolution at 0.1x (chapter 03, "The fine-tuning procedure").

    ``multipliers`` maps layer names to factors; a variable takes the factor of the innermost
    named layer on its path, others take ``default``. A plain Keras optimizer: pass it to
    ``compile`` or to ``tlutils.train.fit(optimizer=...)``. Not for ``tf.distribute``
    strategies (it matches variables by identity).
    """

    def __init__(self, learning_rate: float = 1e-3,
                 multipliers: Mapping[str, float] | None = None, *, default: float = 1.0,
                 name: str = "layerwise_adam", **kwargs: Any) -> None:
        learning_rate = checks.number("learning_rate", learning_rate, low=0.0, strict=True)
        multipliers = {} if multipliers is None else multipliers
        if not isinstance(multipliers, Mapping):
            raise ValueError(f"multipliers must map layer names to numbers, got {multipliers!r}")
        table = {str(k): checks.number(f"multipliers[{k!r}]", v, low=0.0)
                 for k, v in multipliers.items()}
        default = checks.number("default", default, low=0.0)
        super().__init__(learning_rate, name=name, **kwargs)
        self.multipliers = table
        self.default = default
        self.factors: dict[int, float] = {}

    def factor_of(self, path: str) -> float:
        """The multiplier for the variable at ``path`` (e.g. ``"target/conv1/kernel"``)."""
        for part in reversed(path.split("/")[:-1]):
            if part in self.multipliers:
                return self.multipliers[part]
        return self.default

    def build(self, variables: list[Any]) -> None:
        # ``update_step`` receives each variable's backend value; key the factors by it.
        self.factors = {id(v.value): self.factor_of(v.path) for v in variables}
        super().build(variables)

    def update_step(self, gradient: Any, variable: Any, learning_rate: Any) -> None:
        key = id(variable.value) if isinstance(variable, keras.Variable) else id(variable)
        if key not in self.factors:
            raise ValueError("LayerwiseAdam got a variable it was not built for (it does not "
                             "support tf.distribute strategies)")
        lr = keras.ops.cast(learning_rate, variable.dtype) * self.factors[key]
        super().update_step(gradient, variable, lr)

    def get_config(self) -> dict[str, Any]:
        config = super().get_config()
        config.update({"multipliers": dict(self.multipliers), "default": self.default})
        return config


def run_grid(run: Callable[..., float], *, seeds: Sequence[int], verbose: bool = False,
             **axes: Sequence[Any]) -> pd.DataFrame:
    """Call ``run(**setting, seed=seed)`` for every combination of the ``axes`` (keyword
    name -> values, outermost first) and every seed; return a tidy DataFrame with one column
    per axis, then ``seed, accuracy, seconds`` (chapters 01-06). ``run`` returns an accuracy
    in [0, 1]. E.g. ``run_grid(run, budget=[1, 10], method=["probe", "tf-idf"], seeds=[0, 1])``.
    """
    if not callable(run):
        raise ValueError("run must be callable as run(**setting, seed=seed)")
    seeds = checks.seeds(seeds)
    if not axes:
        raise ValueError("give at least one axis, e.g. method=[...]")
    values = {name: checks.sequence(name, vals) for name, vals in axes.items()}
    settings: list[dict[str, Any]] = [{}]
    for name, vals in values.items():
        settings = [{**setting, name: v} for setting in settings for v in vals]
    rows = []
    for setting in settings:
        accs = []
        for seed in seeds:
            start = time.perf_counter()
            acc = float(run(**setting, seed=seed))
            if not 0.0 <= acc <= 1.0:
                raise ValueError(f"run returned accuracy {acc} outside [0, 1]")
            accs.append(acc)
            rows.append({**setting, "seed": seed, "accuracy": acc,
                         "seconds": time.perf_counter() - start})
        if verbose:
            where = "  ".join(f"{k} {v}" for k, v in setting.items())
            print(f"{where}  accuracy {np.mean(accs):.3f} +/- {np.std(accs):.3f}")
    return pd.DataFrame(rows)


def summarise(results: pd.DataFrame, *, value: str = "accuracy",
              by: Sequence[str] = ("budget", "method"), digits: int = 3) -> pd.DataFrame:
    """Mean, standard deviation and count of ``value`` per group, as a table (chapters 04-06)."""
    if not isinstance(results, pd.DataFrame):
        raise ValueError(f"results must be a DataFrame, got {type(results).__name__}")
    missing = [c for c in (*by, value) if c not in results.columns]
    if missing:
        raise ValueError(f"results lacks columns {missing}")
    table = results.groupby(list(by), sort=False)[value].agg(["mean", "std", "count"])
    return table.round(digits)


def transfer_efficiency(scratch: float, transfer: float, oracle: float) -> float:
    """``(transfer - scratch) / (oracle - scratch)``: the share of the gap between training
    from scratch and the full-label oracle that transfer closes (chapter 04, "Evaluation")."""
    scratch = checks.number("scratch", scratch, low=0.0, high=1.0)
    transfer = checks.number("transfer", transfer, low=0.0, high=1.0)
    oracle = checks.number("oracle", oracle, low=0.0, high=1.0)
    if oracle <= scratch:
        raise ValueError(f"oracle ({oracle}) must be above scratch ({scratch})")
    return (transfer - scratch) / (oracle - scratch)


@dataclass(frozen=True)
class Recipe:
    """How to build and train one target model (chapters 03-05).

    ``method`` is one of :data:`METHODS`; ``keep_head`` reuses the source's output layer
    (same label set); ``l2sp`` is L2-SP's alpha and ``l2`` plain weight decay's factor on every
    trainable weight (``None``: off; not both); ``lr_multipliers`` maps layer names to
    learning-rate factors (discriminative fine-tuning); ``augment`` adds
    :func:`tlutils.data.augmenter` to training batches.
    """

    method: str
    lr: float = 1e-3
    keep_head: bool = True
    freeze_upto: str | int = "dense"
    l2sp: float | None = None
    l2: float | None = None
    lr_multipliers: tuple[tuple[str, float], ...] = ()
    augment: bool = False

    def __post_init__(self) -> None:
        checks.one_of("method", self.method, METHODS)
        checks.number("lr", self.lr, low=0.0, strict=True)
        for name in ("l2sp", "l2"):
            if getattr(self, name) is not None:
                checks.number(name, getattr(self, name), low=0.0)
        if self.l2 is not None and self.l2sp is not None:
            raise ValueError("give l2 or l2sp, not both")
        if isinstance(self.lr_multipliers, Mapping):
            object.__setattr__(self, "lr_multipliers", tuple(self.lr_multipliers.items()))

    def build(self, source: keras.Model, num_classes: int, seed: int) -> keras.Model:
        """The model this recipe trains, freshly initialised for ``seed``: the target from
        :func:`make_target` with its penalty attached, behind the augmenter if any."""
        from tlutils import data

        model = make_target(source, self.method, num_classes=num_classes,
                            keep_head=self.keep_head, freeze_upto=self.freeze_upto, seed=seed)
        if self.l2sp is not None:
            apply_l2sp(model, alpha=self.l2sp)
        if self.l2 is not None:
            apply_l2(model, self.l2)
        if not self.augment:
            return model
        return keras.Sequential([keras.Input(model.input_shape[1:]),
                                 data.augmenter(seed=seed), model],
                                name=f"{model.name}_augmented")

    def compile(self, model: keras.Model) -> None:
        """Compile ``model`` with this recipe's optimizer and learning rate."""
        from tlutils import train

        optimizer = (LayerwiseAdam(self.lr, dict(self.lr_multipliers))
                     if self.lr_multipliers else "adam")
        train.compile_model(model, lr=self.lr, optimizer=optimizer)

    def trainee(self, source: keras.Model, num_classes: int,
                seeds: Sequence[int]) -> engine.Trainee:
        """This recipe as an :class:`tlutils.engine.Trainee`: compiled once, rewound per seed."""
        return engine.Trainee(lambda seed: self.build(source, num_classes, seed), seeds,
                              compile=self.compile)


def recipes_table(recipes: Mapping[str, Recipe] | Sequence[str]) -> dict[str, Recipe]:
    """``recipes`` as a dict name -> :class:`Recipe`; a list of method names becomes
    ``{name: Recipe(name)}`` (chapters 04-06: every comparison accepts either)."""
    if isinstance(recipes, Mapping):
        out = dict(recipes)
    elif isinstance(recipes, (list, tuple)) and recipes:
        out = {name: Recipe(name) for name in recipes}
    else:
        raise ValueError(f"recipes must be a non-empty dict of Recipe or list of method "
                         f"names, got {recipes!r}")
    for name, recipe in out.items():
        if not isinstance(recipe, Recipe):
            raise ValueError(f"recipes[{name!r}] must be a Recipe, got {type(recipe).__name__}")
    return out


def rate_grids(recipes: Mapping[str, Recipe] | Sequence[str],
               lrs: Sequence[float] | Mapping[str, Sequence[float]] | None
               ) -> dict[str, list[float]]:
    """Each recipe's grid of learning rates, checked (section 4.3; ``compare`` and
    :func:`tlutils.drift.sweep` take it as ``lrs``): one grid for every recipe, a dict
    recipe name -> grid (every recipe and no other), or ``None`` for each recipe's own
    ``lr``. Raises ValueError naming ``lrs``."""
    table = recipes_table(recipes)
    return checks.rate_grids(list(table), lrs, {name: r.lr for name, r in table.items()})


def compare(source: keras.Model, x_pool: np.ndarray, y_pool: np.ndarray, x_test: np.ndarray,
            y_test: np.ndarray, *, recipes: Mapping[str, Recipe] | Sequence[str] = METHODS,
            budgets: Sequence[int] = (1, 10, 50), seeds: Sequence[int] = (0, 1, 2),
            steps: int | None = 100, batch_size: int = 32,
            validation: tuple[np.ndarray, np.ndarray] | None = None,
            lrs: Sequence[float] | Mapping[str, Sequence[float]] | None = None,
            stopping: engine.Stopping | None = None, choose_at: int | None = None,
            all_rates: bool = False, cache: bool = False,
            verbose: bool = False) -> pd.DataFrame:
    """Train every recipe at every label budget (examples per class) for every seed on the
    same few-shot samples, and score it on the same test set (chapters 01, 03-06).

    By default every run takes the same number of gradient ``steps`` at its recipe's
    learning rate. For a fair, converged comparison (section 4.3) give a ``validation`` set
    ``(x_val, y_val)`` (labelled, disjoint from the pool and the test set) and

    * ``lrs``: a grid of learning rates, one for all recipes or a dict recipe name -> grid.
      Every recipe runs at every rate of its grid; for each recipe and budget the rate with
      the best mean validation accuracy over seeds is kept (the test set plays no part).
      With ``choose_at=b`` the grid runs at budget ``b`` only and every other budget uses
      the rate chosen there (cheaper; say so where the results are reported);
    * ``stopping``: a :class:`tlutils.engine.Stopping` rule instead of a fixed step count
      (pass ``steps=None``): each run stops when validation accuracy stops improving.

    Returns a tidy DataFrame with columns ``method, budget, seed, accuracy, seconds``
    (``method`` is the recipe's name), plus ``lr``, ``steps`` and ``val_accuracy`` when a
    validation set is given: the runs at the chosen rates, or (``all_rates=True``) the runs
    at every rate with a boolean column ``chosen``. Each recipe is compiled once and rewound
    for every run and rate (:class:`tlutils.engine.Trainee`), which gives exactly what a
    freshly built model gives, minus ~2 s of graph tracing; recipes with a frozen base train
    their head on features computed once per budget.

    ``cache=True`` computes the table once per set of inputs and reads it back afterwards,
    in any notebook or run (:func:`tlutils.memo.cached_table`; the key covers every argument,
    the arrays' contents, the source's weights and the library versions): chapter 01 shows
    the comparison that section 4.3 runs, trained once. Either way, the random state
    afterwards is that of ``keras.utils.set_random_seed(seeds[-1])``.
    """
    table = recipes_table(recipes)
    checks.model(source, "source")
    checks.xy(x_pool, y_pool, names=("x_pool", "y_pool"))
    checks.xy(x_test, y_test, names=("x_test", "y_test"))
    budgets = checks.int_sequence("budgets", budgets, 1)
    seeds = checks.seeds(seeds)
    grid = rate_grids(table, lrs)
    checks.validation(validation)
    if stopping is not None or any(len(g) > 1 for g in grid.values()):
        checks.needs_validation(validation, "choosing learning rates (lrs) or stopping points "
                                "(stopping)")
    if choose_at is not None and choose_at not in budgets:
        raise ValueError(f"choose_at must be one of budgets {budgets}, got {choose_at!r}")
    if stopping is not None and steps is not None:
        raise ValueError("give steps or stopping, not both (pass steps=None with stopping)")
    if not isinstance(cache, bool):
        raise ValueError(f"cache must be True or False, got {cache!r}")

    def run() -> pd.DataFrame:
        return _compare(source, x_pool, y_pool, x_test, y_test, table, budgets, seeds, steps,
                        batch_size, validation, grid, stopping, choose_at, all_rates, verbose)

    if not cache:
        return run()
    from tlutils import memo

    parts = {"source": source, "x_pool": x_pool, "y_pool": y_pool, "x_test": x_test,
             "y_test": y_test, "recipes": table, "budgets": budgets, "seeds": seeds,
             "steps": steps, "batch_size": batch_size, "validation": validation,
             "lrs": grid, "stopping": stopping, "choose_at": choose_at, "all_rates": all_rates}
    results, _ = memo.cached_table("compare", parts, run)
    keras.utils.set_random_seed(seeds[-1])
    return results


def _compare(source: keras.Model, x_pool: np.ndarray, y_pool: np.ndarray, x_test: np.ndarray,
             y_test: np.ndarray, table: dict[str, Recipe], budgets: list[int],
             seeds: list[int], steps: int | None, batch_size: int,
             validation: tuple[np.ndarray, np.ndarray] | None,
             grid: dict[str, list[float]], stopping: engine.Stopping | None,
             choose_at: int | None, all_rates: bool, verbose: bool) -> pd.DataFrame:
    """:func:`compare`'s computation, on checked arguments."""
    x_val, y_val = validation if validation is not None else (None, None)
    n_classes = int(y_pool.max()) + 1
    tasks = [engine.Task(x_pool, y_pool, x_test, y_test, budget, {"budget": budget},
                         x_val=x_val, y_val=y_val) for budget in budgets]
    front = ["method", "budget", "lr", "seed", "accuracy", "steps", "val_accuracy", "seconds"]
    choose_on = next((t for t in tasks if t.budget == choose_at), None)
    runs = []
    for name, recipe in table.items():
        trainee = recipe.trainee(source, n_classes, seeds)  # one graph for the whole grid
        if validation is not None:
            runs.append(engine.run_rates({name: trainee}, tasks, {name: grid[name]},
                                        steps=steps, stopping=stopping, choose_on=choose_on,
                                        batch_size=batch_size, verbose=verbose))
            continue
        for lr in grid[name]:
            runs.append(engine.run({name: trainee}, tasks, steps=steps, lr=lr,
                                   batch_size=batch_size, verbose=verbose))
    results = pd.concat(runs, ignore_index=True)
    if validation is None:
        return results
    order = {b: i for i, b in enumerate(budgets)}
    results = results.sort_values(["method", "budget"], key=lambda c: c.map(order)
                                  if c.name == "budget" else c.map(list(table).index),
                                  kind="stable").reset_index(drop=True)
    results = results[[*front, "chosen"]]
    if all_rates:
        return results
    return results[results.chosen][front].reset_index(drop=True)
