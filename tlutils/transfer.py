"""Transfer recipes: building target models from a source, L2-SP, discriminative learning
rates, and the seed x label-budget experiment runner (chapters 02-05).

Three ways to use a source model on a target task, compared throughout the book:

* ``scratch``: the same architecture, freshly initialised (no transfer; the baseline);
* ``feature_extraction``: copy the source, freeze everything but the head, train the head;
* ``fine_tune``: copy the source and train every layer, usually with a smaller learning rate.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass

import numpy as np

from tlutils import models

__all__ = [
    "METHODS",
    "L2SP",
    "LayerwiseAdam",
    "Recipe",
    "apply_l2",
    "apply_l2sp",
    "compare",
    "make_target",
    "run_grid",
    "summarise",
    "transfer_efficiency",
]

METHODS = ("scratch", "feature_extraction", "fine_tune")


def _keras():
    import keras

    return keras


def make_target(source, method: str, *, num_classes: int | None = None,
                keep_head: bool = False, freeze_upto: str | int = "dense", seed: int = 0):
    """A target model built from ``source`` by ``method`` (chapter 04, "Target fine-tuning").

    ``method`` is one of :data:`METHODS`. ``keep_head=True`` keeps the source's output layer
    (only valid when source and target share their label set, as MNIST and scikit-learn
    digits do); otherwise a fresh ``Dense(num_classes)`` head replaces it. For
    ``feature_extraction`` every layer up to ``freeze_upto`` is frozen. The source model is
    never modified.
    """
    keras = _keras()
    if not isinstance(source, keras.Model):
        raise ValueError(f"source must be a keras.Model, got {type(source).__name__}")
    if method not in METHODS:
        raise ValueError(f"method must be one of {METHODS}, got {method!r}")
    n_out = int(source.output_shape[-1])
    if num_classes is None:
        num_classes = n_out
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


class L2SP:
    """The L2-SP penalty ``alpha * ||w - w0||^2`` that pulls a weight towards its pretrained
    value ``w0`` instead of towards zero (Li et al. 2018; chapter 03, "Regularisation").

    Instances are Keras-compatible regularisers: assign one to ``variable.regularizer``.
    """

    def __new__(cls, anchor: np.ndarray, alpha: float):
        keras = _keras()
        if not isinstance(alpha, (int, float)) or isinstance(alpha, bool) or alpha < 0:
            raise ValueError(f"alpha must be a non-negative number, got {alpha!r}")
        anchor = np.asarray(anchor, dtype=np.float32)

        class _L2SP(keras.regularizers.Regularizer):
            def __init__(self):
                self.anchor = keras.ops.convert_to_tensor(anchor)
                self.alpha = float(alpha)

            def __call__(self, x):
                return self.alpha * keras.ops.sum(keras.ops.square(x - self.anchor))

            def get_config(self):
                return {"alpha": self.alpha}

        return _L2SP()


def apply_l2sp(model, *, alpha: float = 1e-2, beta: float = 1e-4, head: str = "head"
               ) -> dict[str, str]:
    """Attach L2-SP to every trainable weight except the head's, and plain L2 (``beta``) to
    the head's (chapter 03). The anchors are the weights *now*: call this right after copying
    the source weights, before training. Returns ``{variable path: penalty}``.
    """
    keras = _keras()
    if not isinstance(model, keras.Model):
        raise ValueError(f"model must be a keras.Model, got {type(model).__name__}")
    for name, value in (("alpha", alpha), ("beta", beta)):
        if not isinstance(value, (int, float)) or isinstance(value, bool) or value < 0:
            raise ValueError(f"{name} must be a non-negative number, got {value!r}")
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


def apply_l2(model, factor: float) -> list[str]:
    """Plain L2 weight decay ``factor * ||w||^2`` on every trainable weight: the classic
    regulariser, which pulls transferred weights towards zero, i.e. away from what the source
    learned (chapter 03 compares it with :func:`apply_l2sp`). Returns the variable paths."""
    keras = _keras()
    if not isinstance(model, keras.Model):
        raise ValueError(f"model must be a keras.Model, got {type(model).__name__}")
    if not isinstance(factor, (int, float)) or isinstance(factor, bool) or factor < 0:
        raise ValueError(f"factor must be a non-negative number, got {factor!r}")
    paths = []
    for var in model.trainable_weights:
        var.regularizer = keras.regularizers.L2(factor) if factor > 0 else None
        paths.append(var.path)
    return paths


class LayerwiseAdam:
    """Adam with a learning-rate multiplier per layer: discriminative fine-tuning, e.g. the
    head at 1x and the first convolution at 0.1x (chapter 03, "The fine-tuning procedure").

    ``multipliers`` maps layer names to factors; unnamed layers use ``default``. A plain Keras
    optimizer: pass it to ``compile`` or to ``tlutils.train.fit(optimizer=...)``.
    """

    def __new__(cls, learning_rate: float, multipliers: Mapping[str, float], *,
                default: float = 1.0):
        keras = _keras()
        if not isinstance(learning_rate, (int, float)) or learning_rate <= 0:
            raise ValueError(f"learning_rate must be a positive number, got {learning_rate!r}")
        if not isinstance(multipliers, Mapping):
            raise ValueError(f"multipliers must map layer names to numbers, got {multipliers!r}")
        for key, value in list(multipliers.items()) + [("default", default)]:
            if not isinstance(value, (int, float)) or isinstance(value, bool) or value < 0:
                raise ValueError(f"multipliers[{key!r}] must be a non-negative number, "
                                 f"got {value!r}")
        table = dict(multipliers)

        def factor_of(variable) -> float:
            for part in reversed(variable.path.split("/")[:-1]):
                if part in table:
                    return float(table[part])
            return float(default)

        class _LayerwiseAdam(keras.optimizers.Adam):
            def build(self, var_list):
                # Keras variables (with layer paths) are only visible here; update_step later
                # sees backend variables, matched by their index.
                self._lr_factors = [factor_of(v) for v in var_list]
                super().build(var_list)

            def update_step(self, gradient, variable, learning_rate):
                factor = self._lr_factors[self._get_variable_index(variable)]
                lr = keras.ops.cast(learning_rate, variable.dtype) * factor
                return super().update_step(gradient, variable, lr)

        return _LayerwiseAdam(learning_rate, name="layerwise_adam")


def run_grid(run: Callable[..., float], *, methods: Sequence[str], budgets: Sequence[int],
             seeds: Sequence[int], verbose: bool = False):
    """Call ``run(method=, budget=, seed=)`` for every combination; return a tidy DataFrame
    with columns ``method, budget, seed, accuracy, seconds`` (chapters 01, 04, 05, 06).
    ``run`` returns an accuracy in [0, 1]."""
    import pandas as pd

    if not callable(run):
        raise ValueError("run must be callable as run(method=, budget=, seed=)")
    for name, values in (("methods", methods), ("budgets", budgets), ("seeds", seeds)):
        if isinstance(values, (str, bytes)) or not isinstance(values, Iterable) or not list(values):
            raise ValueError(f"{name} must be a non-empty sequence, got {values!r}")
    rows = []
    for budget in budgets:
        for method in methods:
            for seed in seeds:
                start = time.perf_counter()
                acc = float(run(method=method, budget=budget, seed=seed))
                if not 0.0 <= acc <= 1.0:
                    raise ValueError(f"run returned accuracy {acc} outside [0, 1]")
                rows.append({"method": method, "budget": budget, "seed": seed,
                             "accuracy": acc, "seconds": time.perf_counter() - start})
            if verbose:
                mean = np.mean([r["accuracy"] for r in rows[-len(seeds):]])
                print(f"budget {budget:>4}  {method:<20} mean accuracy {mean:.3f}")
    return pd.DataFrame(rows)


def summarise(results, *, value: str = "accuracy", by: Sequence[str] = ("budget", "method"),
              digits: int = 3):
    """Mean, standard deviation and count of ``value`` per group, as a table (chapters 04-06)."""
    import pandas as pd

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
    for name, value in (("scratch", scratch), ("transfer", transfer), ("oracle", oracle)):
        if not isinstance(value, (int, float)) or not 0.0 <= value <= 1.0:
            raise ValueError(f"{name} must be an accuracy in [0, 1], got {value!r}")
    if oracle <= scratch:
        raise ValueError(f"oracle ({oracle}) must be above scratch ({scratch})")
    return (transfer - scratch) / (oracle - scratch)


@dataclass(frozen=True)
class Recipe:
    """How to build and train one target model (chapters 03-05).

    ``method`` is one of :data:`METHODS`; ``keep_head`` reuses the source's output layer
    (same label set); ``l2sp`` is L2-SP's alpha and ``l2`` plain weight decay's factor on every
    trainable weight (``None``: off; not both); ``lr_multipliers`` maps
    layer names to learning-rate factors (discriminative fine-tuning); ``augment`` adds
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
        if self.method not in METHODS:
            raise ValueError(f"method must be one of {METHODS}, got {self.method!r}")
        if not isinstance(self.lr, (int, float)) or isinstance(self.lr, bool) or self.lr <= 0:
            raise ValueError(f"lr must be a positive number, got {self.lr!r}")
        if self.l2sp is not None and (not isinstance(self.l2sp, (int, float)) or self.l2sp < 0):
            raise ValueError(f"l2sp must be None or a non-negative number, got {self.l2sp!r}")
        if self.l2 is not None and (not isinstance(self.l2, (int, float)) or self.l2 < 0):
            raise ValueError(f"l2 must be None or a non-negative number, got {self.l2!r}")
        if self.l2 is not None and self.l2sp is not None:
            raise ValueError("give l2 or l2sp, not both")
        if isinstance(self.lr_multipliers, Mapping):
            object.__setattr__(self, "lr_multipliers", tuple(self.lr_multipliers.items()))


def _as_recipes(recipes) -> dict[str, Recipe]:
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


def _reset_rng_state(model, seed: int) -> None:
    """Put every layer's random-number state (dropout, augmentation) back to a seed."""
    import keras

    for i, layer in enumerate(model._flatten_layers(include_self=False)):
        for attr in vars(layer).values():
            if isinstance(attr, keras.random.SeedGenerator):
                attr.state.assign(np.array([seed * 1000 + i, 0], dtype=attr.state.dtype))


def _reset_optimizer(optimizer) -> None:
    """Zero the step counter and the moment slots, as a freshly built optimizer has them.
    The learning rate is an optimizer variable too, and must be kept."""
    keep = {id(optimizer._learning_rate)} if hasattr(optimizer, "_learning_rate") else set()
    for var in optimizer.variables:
        if id(var) not in keep and not var.path.endswith("learning_rate"):
            var.assign(np.zeros(var.shape, dtype=var.dtype))


def compare(source, x_pool: np.ndarray, y_pool: np.ndarray, x_test: np.ndarray,
            y_test: np.ndarray, *, recipes=METHODS, budgets: Sequence[int] = (1, 10, 50),
            seeds: Sequence[int] = (0, 1, 2), steps: int = 100, batch_size: int = 32,
            verbose: bool = False):
    """Train every recipe at every label budget (examples per class) for every seed on the
    same few-shot samples, and score it on the same test set (chapters 01, 03-06).

    Every run takes the same number of gradient ``steps``. Returns a tidy DataFrame with
    columns ``method, budget, seed, accuracy, seconds``; ``method`` is the recipe's name.

    Each recipe's model is compiled once and reset before every run (weights, optimizer
    slots, dropout and augmentation RNG state), which skips ~2 s of graph tracing per run
    on a CPU; a run is still a plain ``model.fit``.
    """
    import keras
    import pandas as pd

    from tlutils import data, train

    table = _as_recipes(recipes)
    if not isinstance(source, keras.Model):
        raise ValueError(f"source must be a keras.Model, got {type(source).__name__}")
    train._check_xy(x_pool, y_pool)
    train._check_xy(x_test, y_test)
    for name, values in (("budgets", budgets), ("seeds", seeds)):
        if (isinstance(values, (str, bytes)) or not isinstance(values, Sequence) or not values
                or not all(isinstance(v, int) and v >= 0 for v in values)):
            raise ValueError(f"{name} must be a non-empty sequence of non-negative ints, "
                             f"got {values!r}")
    if any(b == 0 for b in budgets):
        raise ValueError("budgets must be positive (examples per class)")
    for name, value in (("steps", steps), ("batch_size", batch_size)):
        if not isinstance(value, int) or isinstance(value, bool) or value <= 0:
            raise ValueError(f"{name} must be a positive int, got {value!r}")
    n_classes = int(y_pool.max()) + 1
    rows = []
    for name, recipe in table.items():
        # Initial weights per seed: a fresh head (or fresh network, for scratch) per seed.
        inits = {seed: make_target(source, recipe.method, num_classes=n_classes,
                                   keep_head=recipe.keep_head, freeze_upto=recipe.freeze_upto,
                                   seed=seed).get_weights() for seed in seeds}
        model = make_target(source, recipe.method, num_classes=n_classes,
                            keep_head=recipe.keep_head, freeze_upto=recipe.freeze_upto,
                            seed=seeds[0])
        if recipe.l2sp is not None:
            apply_l2sp(model, alpha=recipe.l2sp)
        if recipe.l2 is not None:
            apply_l2(model, recipe.l2)
        trainee = model
        if recipe.augment:
            trainee = keras.Sequential([keras.Input(model.input_shape[1:]),
                                        data.augmenter(seed=seeds[0]), model])
        optimizer = (LayerwiseAdam(recipe.lr, dict(recipe.lr_multipliers))
                     if recipe.lr_multipliers else "adam")
        train.compile_model(trainee, lr=recipe.lr, optimizer=optimizer)
        for budget in budgets:
            for seed in seeds:
                start = time.perf_counter()
                xs, ys = data.few_shot(x_pool, y_pool, budget, seed=seed)
                model.set_weights(inits[seed])
                if trainee.optimizer.built:
                    _reset_optimizer(trainee.optimizer)
                _reset_rng_state(trainee, seed)
                bs = min(batch_size, len(ys))
                trainee.fit(train._pipeline(xs, ys, batch_size=bs, seed=seed), epochs=1,
                            steps_per_epoch=steps, verbose=0)
                acc = train.accuracy(model, x_test, y_test)
                rows.append({"method": name, "budget": budget, "seed": seed, "accuracy": acc,
                             "seconds": time.perf_counter() - start})
            if verbose:
                accs = [r["accuracy"] for r in rows[-len(seeds):]]
                print(f"{name:<24} {budget:>4} per class  accuracy {np.mean(accs):.3f} "
                      f"+/- {np.std(accs):.3f}")
    return pd.DataFrame(rows)
