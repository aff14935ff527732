"""The comparison engine: one compiled model per learner, rewound to a fresh start for each
seed, trained on a label budget and scored, collected into a tidy table (chapters 01-06).

Nearly every experiment in the book has the same shape: for each learner (a recipe: scratch,
feature extraction, fine-tuning, ...), each setting (a label budget, a drift strength, ...) and
each seed, start from that seed's initial weights, train for a fixed number of steps on a
seeded few-shot sample, and score on a test set. Building and compiling a fresh Keras model for
every run costs about two seconds of graph tracing on a CPU, more than the run itself, so the
engine compiles one model per learner and *rewinds* it instead:

* :class:`Trainee` builds the learner once per seed (cheap: no compiling), keeps each seed's
  starting values of ``model.variables`` (weights, BatchNorm statistics and the random-number
  state of dropout and augmentation layers), compiles one copy and builds its optimizer;
* :meth:`Trainee.rewind` writes a seed's starting values back, zeroes the optimizer's state
  and reseeds Keras with ``keras.utils.set_random_seed``. Only public Keras APIs are used, and
  a rewound run gives bit for bit what a freshly built and compiled model gives (tested);
* :func:`run` loops learners x tasks x seeds and returns the table.

Three things make the runs cheaper or fairer without changing what they compute:

* **Cached frozen features.** When the first layers of a learner are frozen and deterministic
  (no dropout, noise or augmentation among them), as in feature extraction or a linear probe,
  every training step would push the same images through the same frozen layers again.
  :class:`Trainee` splits such a model into the frozen *trunk* and the trained *learner*
  (the remaining layers, the very same layer objects); :func:`run` computes the trunk's
  features once per task and trains the learner on them. The result equals training through
  the frozen network up to float rounding (tested to the printed precision).
* **A stated stopping rule.** With ``stopping=Stopping(...)`` every run trains in rounds,
  scores a validation set (never the test set) after each round, stops when validation
  accuracy has not improved for ``patience`` rounds or at ``max_steps``, and is scored with the
  weights of its best round, so no learner is scored while it is still climbing.
* **Ten steps per call.** :func:`run` lets Keras take up to ten gradient steps per call of
  its compiled train function (``steps_per_execution``, a divisor of the run's steps or of
  the rule's round; one under a ``tf.distribute`` strategy): fewer Python round trips, the
  same batches, the same weights bit for bit (tested).
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field

import keras
import numpy as np
import pandas as pd

from tlutils import checks

__all__ = ["Stopping", "Task", "Trainee", "fit_to_rule", "mark_chosen", "run", "run_rates",
           "train_steps"]


class Trainee:
    """A compiled Keras model that can be rewound to its start for any of ``seeds``
    (chapter 04, "Target fine-tuning"; used by every comparison in the book).

    ``build(seed)`` returns the model to train, freshly initialised for ``seed`` (it is
    called once per seed, right after ``keras.utils.set_random_seed(seed)``);
    ``compile(model)`` compiles it (e.g. ``tlutils.train.compile_model``). Every seed's model
    must have the same architecture.

    If the model's first layers are frozen and deterministic (``cache_features=True``, the
    default), ``trunk`` is the model up to the last such layer and ``learner`` the rest (the
    same layer objects, compiled by ``compile`` too): :func:`run` then trains ``learner`` on
    ``features(x)``. Otherwise ``trunk`` is None and ``learner`` is ``model``.
    """

    def __init__(self, build: Callable[[int], keras.Model], seeds: Sequence[int], *,
                 compile: Callable[[keras.Model], None], cache_features: bool = True) -> None:
        if not callable(build):
            raise ValueError("build must be a function seed -> keras.Model")
        if not callable(compile):
            raise ValueError("compile must be a function that compiles a keras.Model")
        self.seeds = checks.seeds(seeds)
        self.starts: dict[int, list[np.ndarray]] = {}
        model: keras.Model | None = None
        for seed in self.seeds:
            keras.utils.set_random_seed(seed)
            candidate = checks.model(build(seed), "build(seed)")
            values = [v.numpy() for v in candidate.variables]
            if model is None:
                model = candidate
                compile(model)
                if getattr(model, "optimizer", None) is None:
                    raise ValueError("compile(model) must compile the model")
                model.optimizer.build(model.trainable_variables)
                shapes = [v.shape for v in values]
                flags = [v.trainable for v in model.variables]
            elif ([v.shape for v in values] != shapes
                  or [v.trainable for v in candidate.variables] != flags):
                raise ValueError("build(seed) must return the same architecture, with the same "
                                 "trainable weights, for every seed")
            self.starts[seed] = values
        assert model is not None
        self.model: keras.Model = model
        self.optimizer_start = [v.numpy() for v in model.optimizer.variables]
        self.trunk: keras.Model | None = None
        self.learner: keras.Model = model
        self.shared_trunk = False
        split = _frozen_split(model) if cache_features else None
        if split is not None:
            self.trunk, self.learner = split
            compile(self.learner)
            if getattr(self.learner, "optimizer", None) is None:
                raise ValueError("compile(model) must compile the model")
            self.learner.optimizer.build(self.learner.trainable_variables)
            trunk_ids = {id(v) for v in self.trunk.variables}
            where = [i for i, v in enumerate(model.variables) if id(v) in trunk_ids]
            first = self.starts[self.seeds[0]]
            self.shared_trunk = all(np.array_equal(first[i], self.starts[seed][i])
                                    for seed in self.seeds for i in where)
        self.learner_start = [v.numpy() for v in self.learner.optimizer.variables]
        self.base_lr = _learning_rate(self.learner.optimizer)

    def rewind(self, seed: int, *, lr: float | None = None) -> keras.Model:
        """Put the model, its optimizer and every random-number generator back to where a
        freshly built and compiled model for ``seed`` starts; return the model. With ``lr``
        the optimizer's learning rate is set to it, as if the model had been compiled with
        that rate (one compiled graph serves a whole grid of rates); without, the rate it was
        compiled with."""
        if seed not in self.starts:
            raise ValueError(f"seed must be one of {self.seeds}, got {seed!r}")
        if lr is not None:
            lr = checks.number("lr", lr, low=0.0, strict=True)
            if self.base_lr is None:
                raise ValueError("lr can only be set for an optimizer with a constant "
                                 "learning rate (not a schedule)")
        for variable, value in zip(self.model.variables, self.starts[seed]):
            variable.assign(value)
        for variable, value in zip(self.model.optimizer.variables, self.optimizer_start):
            variable.assign(value)
        if self.learner is not self.model:
            for variable, value in zip(self.learner.optimizer.variables, self.learner_start):
                variable.assign(value)
        if self.base_lr is not None:
            self.learner.optimizer.learning_rate = self.base_lr if lr is None else lr
        keras.utils.set_random_seed(seed)
        return self.model

    def features(self, x: np.ndarray) -> np.ndarray:
        """What ``learner`` reads for inputs ``x``: the frozen trunk's outputs (inference
        mode, in batches), or ``x`` itself when there is no trunk."""
        from tlutils import train

        if self.trunk is None:
            return x
        return train.predict_logits(self.trunk, x)


def _learning_rate(optimizer: keras.optimizers.Optimizer) -> float | None:
    """The optimizer's constant learning rate, or None when it follows a schedule."""
    if isinstance(optimizer.learning_rate, keras.optimizers.schedules.LearningRateSchedule):
        return None
    try:
        return float(np.asarray(optimizer.learning_rate))
    except (TypeError, ValueError):
        return None


#: Layers that draw random numbers in training mode, beyond those that own a seed generator.
_RANDOM_LAYERS: tuple[type, ...] = tuple(
    getattr(keras.layers, name) for name in (
        "Dropout", "SpatialDropout1D", "SpatialDropout2D", "SpatialDropout3D", "GaussianNoise",
        "GaussianDropout", "AlphaDropout") if hasattr(keras.layers, name))


def _deterministic_and_frozen(layer: keras.layers.Layer) -> bool:
    if layer.trainable_weights or layer.losses or isinstance(layer, _RANDOM_LAYERS):
        return False
    if any("seed_generator" in v.path for v in layer.variables):
        return False
    if isinstance(layer, keras.Model):  # a nested model: only if all of it qualifies
        return all(_deterministic_and_frozen(inner) for inner in layer.layers)
    return True


def _frozen_split(model: keras.Model) -> tuple[keras.Model, keras.Model] | None:
    """``(trunk, learner)`` when ``model`` is a plain chain of layers whose leading layers are
    frozen and deterministic and at least one later layer trains; otherwise None."""
    try:
        layers = [layer for layer in model.layers
                  if not isinstance(layer, keras.layers.InputLayer)]
        if len(model.inputs) != 1 or len(model.outputs) != 1 or len(layers) < 2:
            return None
        if layers[0].input is not model.inputs[0] or layers[-1].output is not model.outputs[0]:
            return None
        if any(b.input is not a.output for a, b in zip(layers, layers[1:])):
            return None  # not a chain (branches, shared layers)
        k = 0
        while k < len(layers) and _deterministic_and_frozen(layers[k]):
            k += 1
        if k == 0 or k == len(layers) or not model.trainable_weights:
            return None
        trunk = keras.Model(model.inputs[0], layers[k - 1].output, name=f"{model.name}_trunk")
        learner = keras.Sequential([keras.Input(tuple(layers[k - 1].output.shape[1:])),
                                    *layers[k:]], name=f"{model.name}_learner")
    except (AttributeError, ValueError, TypeError):
        return None  # a model we cannot split safely is trained as it is
    return trunk, learner


#: Gradient steps per call of Keras' compiled train function in :func:`run` (Keras'
#: ``steps_per_execution``; section 5.1's adapters use 25): fewer Python round trips, the same
#: batches and bit for bit the same weights (``benchmarks/bench_steps.py``). A run uses the
#: largest divisor of its step count (or of the stopping rule's round) up to this, because
#: Keras rounds an epoch up to whole calls.
_EXECUTION = 10


def _set_execution(model: keras.Model, steps: int, *, only_if_needed: bool = False) -> None:
    """Let ``model``'s ``fit`` take ``gcd(steps, _EXECUTION)`` steps per compiled call; a new
    train function is made only when that changes (the first ``fit`` then traces it). With
    ``only_if_needed`` a setting that already divides ``steps`` is kept (a caller's own
    model, e.g. section 5.1's adapters): only one that would overshoot is changed. Under a
    ``tf.distribute`` strategy it stays at one step per call: section 5.7's MirroredStrategy
    runs stopped with an InvalidArgumentError at more than one."""
    import tensorflow as tf

    current = getattr(model, "steps_per_execution", 1)
    if only_if_needed and steps % current == 0:
        return
    per_call = 1 if tf.distribute.has_strategy() else math.gcd(steps, _EXECUTION)
    if current != per_call:
        model.steps_per_execution = per_call
        model.make_train_function(force=True)


def train_steps(model: keras.Model, x: np.ndarray, y: np.ndarray, *, steps: int,
                batch_size: int, seed: int) -> None:
    """``steps`` gradient steps of a compiled ``model`` on seeded, shuffled batches of
    ``(x, y)`` (reshuffled every pass), as one Keras ``fit`` call (chapter 04)."""
    from tlutils import train

    _set_execution(model, steps, only_if_needed=True)
    model.fit(train.batches(x, y, batch_size=min(batch_size, len(y)), seed=seed), epochs=1,
              steps_per_epoch=steps, shuffle=False, verbose=0)


@dataclass(frozen=True)
class Task:
    """One setting of a comparison (section 4.3): a labelled pool to draw ``budget`` examples
    per class from (per seed), a test set, the columns that name the setting in the results
    table, e.g. ``{"budget": 10}`` or ``{"drift": "rotation", "strength": 90}``, and
    optionally a validation set (``x_val, y_val``: labelled, disjoint from the test set) for
    choosing learning rates and stopping points."""

    x_pool: np.ndarray
    y_pool: np.ndarray
    x_test: np.ndarray
    y_test: np.ndarray
    budget: int
    columns: Mapping[str, object] = field(default_factory=dict)
    x_val: np.ndarray | None = None
    y_val: np.ndarray | None = None


@dataclass(frozen=True)
class Stopping:
    """A stated stopping rule (chapter 04, "A fair comparison"): train in rounds of ``every``
    gradient steps; after each round score the validation set; stop once validation accuracy
    has not improved for ``patience`` rounds, or after ``max_steps``; keep the weights of the
    best round (the earliest, on ties). The table then reports that round's ``steps``."""

    every: int = 100
    max_steps: int = 500
    patience: int = 1

    def __post_init__(self) -> None:
        every = checks.int_at_least("every", self.every)
        checks.int_at_least("max_steps", self.max_steps, every)
        checks.int_at_least("patience", self.patience)
        if self.max_steps % every:
            raise ValueError(f"max_steps ({self.max_steps}) must be a multiple of every "
                             f"({every})")


class _BestRound(keras.callbacks.Callback):
    """Scores the validation set after every round (with ``scored``, or the model being
    trained), remembers the best round's weights and stops training after ``patience`` rounds
    without improvement."""

    def __init__(self, x_val: np.ndarray, y_val: np.ndarray, patience: int,
                 scored: keras.Model | None = None) -> None:
        super().__init__()
        self.x_val, self.y_val, self.patience, self.scored = x_val, y_val, patience, scored
        self.best, self.best_round, self.wait = -1.0, 0, 0
        self.best_values: list[np.ndarray] = []

    def on_epoch_end(self, epoch: int, logs: dict | None = None) -> None:
        from tlutils import train

        scored = self.model if self.scored is None else self.scored
        acc = float(np.mean(train.predict_labels(scored, self.x_val) == self.y_val))
        if acc > self.best:
            self.best, self.best_round, self.wait = acc, epoch + 1, 0
            self.best_values = [v.numpy() for v in self.model.variables]
        else:
            self.wait += 1
            if self.wait >= self.patience:
                self.model.stop_training = True


def fit_to_rule(model: keras.Model, stream: object, rule: Stopping, x_val: np.ndarray,
                y_val: np.ndarray, *, scored: keras.Model | None = None
                ) -> tuple[keras.callbacks.History, int, float]:
    """Train a compiled ``model`` on ``stream`` (anything ``model.fit`` takes that yields
    batches without end: a ``tf.data.Dataset``, a generator) under ``rule`` (chapter 04, "A
    fair comparison"; sections 5.1 and FAQ Q2 train their own streams with it): rounds of
    ``rule.every`` batches of one stream, so a run stopped at round r has taken exactly the
    first r x every batches. After each round the validation set is scored with ``scored``
    (a model sharing ``model``'s layers, e.g. one head of a multi-task model) or ``model``
    itself. The model is left at its best round. Returns ``(history, steps, val_accuracy)``:
    Keras' training history and the best round's step count and validation accuracy."""
    checks.model(model)
    checks.instance("rule", rule, Stopping)
    checks.xy(x_val, y_val, names=("x_val", "y_val"))
    if scored is not None:
        checks.model(scored, "scored")
    return _fit_to_rule(model, stream, rule, x_val, y_val, scored)


def _fit_to_rule(model: keras.Model, stream: object, rule: Stopping, x_val: np.ndarray,
                 y_val: np.ndarray, scored: keras.Model | None = None
                 ) -> tuple[keras.callbacks.History, int, float]:
    """:func:`fit_to_rule` on checked arguments."""
    _set_execution(model, rule.every, only_if_needed=True)
    best = _BestRound(x_val, y_val, rule.patience, scored)
    history = model.fit(stream, epochs=rule.max_steps // rule.every,
                        steps_per_epoch=rule.every, shuffle=False, verbose=0, callbacks=[best])
    for variable, value in zip(model.variables, best.best_values):
        variable.assign(value)
    return history, best.best_round * rule.every, best.best


def mark_chosen(table: pd.DataFrame, within: Sequence[str] = ()) -> pd.Series:
    """Which rows of a grid of runs hold the chosen setting (chapter 04, "A fair comparison"):
    ``table`` has a column ``lr`` (the grid, in grid order) and ``val_accuracy``, one row per
    run; within each group of the ``within`` columns, the rate with the best mean validation
    accuracy over seeds is chosen (the first of the grid on ties). The test set plays no part.
    Returns a boolean Series aligned with ``table``."""
    checks.instance("table", table, pd.DataFrame)
    within = [checks.one_of("within", c, table.columns) for c in within]
    for column in ("lr", "val_accuracy"):
        checks.one_of("table's columns", column, table.columns)
    keys = [*within, "lr"]
    mean_val = table.groupby(keys, sort=False).val_accuracy.mean()
    if within:
        best = set(mean_val.groupby(level=list(range(len(within))), sort=False).idxmax())
        chosen = [pair in best for pair in zip(*(table[c] for c in keys))]
    else:
        best_lr = mean_val.idxmax()
        chosen = list(table["lr"] == best_lr)
    return pd.Series(chosen, index=table.index, name="chosen")


def _train_to_rule(model: keras.Model, x: np.ndarray, y: np.ndarray, x_val: np.ndarray,
                   y_val: np.ndarray, rule: Stopping, *, batch_size: int,
                   seed: int) -> tuple[int, float]:
    """Train ``model`` under ``rule``; leave it at its best round; return (steps, val acc)."""
    from tlutils import train

    stream = train.batches(x, y, batch_size=min(batch_size, len(y)), seed=seed)
    _, used, val_acc = _fit_to_rule(model, stream, rule, x_val, y_val)
    return used, val_acc


def run(trainees: Mapping[str, Trainee], tasks: Sequence[Task], *, steps: int | None = None,
        stopping: Stopping | None = None, lr: float | None = None, batch_size: int = 32,
        name: str = "method", extra: Mapping[str, Callable[[], float]] | None = None,
        verbose: bool = False) -> pd.DataFrame:
    """Train every trainee on every task for each of its seeds and score it (chapters 01-06).

    Each run rewinds the trainee to its seed, draws the seed's few-shot sample of the task's
    pool (``tlutils.data.few_shot``), trains and scores top-1 accuracy on the task's test set.
    Training is either ``steps`` gradient steps of ``batch_size``, or (``stopping``) rounds
    until the task's validation set stops improving (:class:`Stopping`; give one of the two).
    ``lr`` overrides every trainee's learning rate (:meth:`Trainee.rewind`). A trainee with
    a frozen trunk trains its learner on features computed once per task. ``extra`` maps
    column names to functions of no arguments, called after each run (the model at the
    weights that are scored), for more scores per run: e.g. what is left of the source task
    after fine-tuning (FAQ Q2).
    Returns a tidy DataFrame with columns ``name`` (the trainee's key), the task's columns,
    ``seed``, ``accuracy``, the ``extra`` columns, then ``steps`` and ``val_accuracy`` when
    the tasks have a validation set, and ``seconds``.
    """
    from tlutils import data, train

    if not isinstance(trainees, Mapping) or not trainees:
        raise ValueError(f"trainees must be a non-empty mapping name -> Trainee, got {trainees!r}")
    for key, trainee in trainees.items():
        if not isinstance(trainee, Trainee):
            raise ValueError(f"trainees[{key!r}] must be a Trainee, got {type(trainee).__name__}")
    tasks = checks.sequence("tasks", tasks)
    for task in tasks:
        if not isinstance(task, Task):
            raise ValueError(f"tasks must hold Task objects, got {type(task).__name__}")
        checks.xy(task.x_pool, task.y_pool, names=("x_pool", "y_pool"))
        checks.xy(task.x_test, task.y_test, names=("x_test", "y_test"))
        checks.int_at_least("budget", task.budget)
        if (task.x_val is None) != (task.y_val is None):
            raise ValueError("a task's x_val and y_val must be given together")
        if task.x_val is not None:
            checks.xy(task.x_val, task.y_val, names=("x_val", "y_val"))
        elif stopping is not None:
            raise ValueError("stopping needs a validation set (x_val, y_val) in every task")
    if (steps is None) == (stopping is None):
        raise ValueError("give steps or stopping, not both and not neither")
    if stopping is not None and not isinstance(stopping, Stopping):
        raise ValueError(f"stopping must be a Stopping, got {type(stopping).__name__}")
    if steps is not None:
        steps = checks.int_at_least("steps", steps)
    batch_size = checks.int_at_least("batch_size", batch_size)
    if lr is not None:
        lr = checks.number("lr", lr, low=0.0, strict=True)
    extra = _check_extra(extra)
    rows = []
    for key, trainee in trainees.items():
        _set_execution(trainee.learner, stopping.every if stopping is not None else steps or 1)
        for task in tasks:
            accs = []
            # Frozen features of the test and validation sets, once per task when every
            # seed shares the trunk (otherwise once per seed, after its rewind).
            shared: dict[str, np.ndarray] = {}
            if trainee.shared_trunk:
                shared["test"] = trainee.features(task.x_test)
                if task.x_val is not None:
                    shared["val"] = trainee.features(task.x_val)
            for seed in trainee.seeds:
                start = time.perf_counter()
                xs, ys = data.few_shot(task.x_pool, task.y_pool, task.budget, seed=seed)
                trainee.rewind(seed, lr=lr)
                learner = trainee.learner
                x_test = shared.get("test")
                x_test = trainee.features(task.x_test) if x_test is None else x_test
                x_val = None
                if task.x_val is not None:
                    x_val = shared.get("val")
                    x_val = trainee.features(task.x_val) if x_val is None else x_val
                row: dict[str, object] = {name: key, **task.columns, "seed": seed}
                if stopping is None:
                    assert steps is not None
                    train_steps(learner, trainee.features(xs), ys, steps=steps,
                                batch_size=batch_size, seed=seed)
                    acc = train.accuracy(learner, x_test, task.y_test)
                    row["accuracy"] = acc
                    row.update({column: float(score()) for column, score in extra.items()})
                    if x_val is not None:
                        row["steps"] = steps
                        row["val_accuracy"] = train.accuracy(learner, x_val, task.y_val)
                else:
                    assert x_val is not None and task.y_val is not None
                    used, val_acc = _train_to_rule(learner, trainee.features(xs), ys, x_val,
                                                   task.y_val, stopping,
                                                   batch_size=batch_size, seed=seed)
                    acc = train.accuracy(learner, x_test, task.y_test)
                    row["accuracy"] = acc
                    row.update({column: float(score()) for column, score in extra.items()})
                    row.update(steps=used, val_accuracy=val_acc)
                accs.append(acc)
                row["seconds"] = time.perf_counter() - start
                rows.append(row)
            if verbose:
                where = "  ".join(f"{k} {v}" for k, v in task.columns.items())
                print(f"{key:<24} {where}  accuracy {np.mean(accs):.3f} +/- {np.std(accs):.3f}")
    return pd.DataFrame(rows)


def run_rates(trainees: Mapping[str, Trainee], tasks: Sequence[Task],
              lrs: Mapping[str, Sequence[float]], *, steps: int | None = None,
              stopping: Stopping | None = None, choose_on: Task | None = None,
              batch_size: int = 32, name: str = "method",
              extra: Mapping[str, Callable[[], float]] | None = None,
              verbose: bool = False) -> pd.DataFrame:
    """:func:`run` at every learning rate of each trainee's grid, with the rate chosen on
    validation data (chapter 04, "A fair comparison"; sections 2.2, 4.3, 5.4 and 5.6).

    ``lrs`` maps every trainee's key to its grid. Each trainee runs at every rate of its grid
    on every task (or, with ``choose_on``, on that one task only); for each trainee and task
    the rate with the best mean validation accuracy over seeds is *chosen* (the first of the
    grid on ties). The test set plays no part in the choice. With ``choose_on`` the other
    tasks then run once, at the rate chosen on ``choose_on`` (cheaper; say so where the
    results are reported). Every task needs a validation set. ``extra``: as in :func:`run`.

    Returns :func:`run`'s table with the rate in a column ``lr`` after the task's columns and
    a boolean column ``chosen`` at the end: every run of the grid, so the rates that lost
    can be shown too (``results[results.chosen]`` is the comparison). One compiled graph
    serves the whole grid (:meth:`Trainee.rewind` with ``lr``), which gives bit for bit
    what compiling at each rate gives.
    """
    if not isinstance(trainees, Mapping) or not trainees:
        raise ValueError(f"trainees must be a non-empty mapping name -> Trainee, got {trainees!r}")
    tasks = checks.sequence("tasks", tasks)
    if not isinstance(lrs, Mapping):
        raise ValueError(f"lrs must map every trainee ({sorted(trainees)}) to a grid of "
                         f"learning rates, got {lrs!r}")
    grid = checks.rate_grids(list(trainees), lrs, {})
    extra = _check_extra(extra)
    if any(not isinstance(task, Task) or task.x_val is None for task in tasks):
        raise ValueError("choosing a learning rate needs a validation set (x_val, y_val) in "
                         "every task: never the test set")
    if choose_on is not None and not any(choose_on is task for task in tasks):
        raise ValueError("choose_on must be one of tasks")
    first = list(tasks) if choose_on is None else [choose_on]
    rest = [task for task in tasks if choose_on is not None and task is not choose_on]
    front: list[str] = []
    runs = []
    for key, trainee in trainees.items():
        parts = []
        for lr in grid[key]:
            part = run({key: trainee}, first, steps=steps, stopping=stopping, lr=lr,
                       batch_size=batch_size, name=name, extra=extra, verbose=verbose)
            # Which task each row belongs to: run() goes task by task, seed by seed.
            part["_task"] = np.repeat(np.arange(len(first)), len(trainee.seeds))
            parts.append(part.assign(lr=lr))
        tuned = pd.concat(parts, ignore_index=True)
        tuned["chosen"] = mark_chosen(tuned, within=["_task"])
        runs.append(tuned.drop(columns="_task"))
        if rest:
            lr = float(tuned[tuned.chosen].lr.iloc[0])
            part = run({key: trainee}, rest, steps=steps, stopping=stopping, lr=lr,
                       batch_size=batch_size, name=name, extra=extra, verbose=verbose)
            runs.append(part.assign(lr=lr, chosen=True))
        front = [c for c in runs[0].columns if c not in ("seed", "lr", "chosen")]
    results = pd.concat(runs, ignore_index=True)
    at = front.index("accuracy")
    columns = [*front[:at], "lr", "seed", *front[at:], "chosen"]
    return results[columns]


def _check_extra(extra: object) -> dict[str, Callable[[], float]]:
    """Checked ``extra=``: column name -> function of no arguments."""
    if extra is None:
        return {}
    if not isinstance(extra, Mapping) or not all(
            isinstance(k, str) and callable(f) for k, f in extra.items()):
        raise ValueError(f"extra must map column names to functions of no arguments, got "
                         f"{extra!r}")
    return dict(extra)
