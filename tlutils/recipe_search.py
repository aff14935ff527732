"""Adaptive transfer: choose how much of a source model to transfer by validation
(chapter 05, "Adaptive transfer", the article's 自适应迁移学习).

How much to transfer is a choice among a few knobs: start from the source's weights or from
scratch, how many layers (counted from the input) to freeze, and the learning rate. Nothing
tells us the right setting in advance, so we hold out part of the few labelled target
examples, train every candidate on the rest, and keep the one that scores best on the held-out
part. The test set is never looked at while choosing.

Every candidate trains the *same* Keras model, compiled once: a frozen layer is one whose
gradient is multiplied by zero, so Adam never moves it (its moment estimates stay at zero).
That skips a compile per candidate (about 2 s each on a CPU) and makes a search of ten
candidates cost ten short training runs, which :class:`Trainer` counts.

Each candidate trains either for a fixed number of ``steps`` or under a stated stopping rule
(``stopping=tlutils.engine.Stopping(...)``, as in :func:`tlutils.engine.run`): in rounds,
scored on the held-out part after each round, stopped when that score stops improving, and
kept at its best round (:meth:`Trainer.run_to_rule`).
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass, field

import keras
import numpy as np
import pandas as pd
import tensorflow as tf

from tlutils import checks, data, engine, models, train
from tlutils.transfer import make_target

__all__ = ["Choice", "SearchResult", "Trainer", "fixed_recipes", "grid", "search"]

INITS = ("source", "scratch")


@dataclass(frozen=True)
class Choice:
    """One candidate recipe (chapter 05, "Adaptive transfer").

    ``init`` is ``"source"`` (start from the source's weights) or ``"scratch"`` (a fresh
    initialisation of the same architecture); ``freeze`` is how many weighted layers, counted
    from the input, stay fixed (0: full fine-tuning; all but the head: feature extraction;
    all of them: the source used as it is, no training); ``lr`` is Adam's learning rate.
    """

    init: str = "source"
    freeze: int = 0
    lr: float = 1e-3

    def __post_init__(self) -> None:
        if self.init not in INITS:
            raise ValueError(f"init must be one of {INITS}, got {self.init!r}")
        if not isinstance(self.freeze, int) or isinstance(self.freeze, bool) or self.freeze < 0:
            raise ValueError(f"freeze must be a non-negative int, got {self.freeze!r}")
        if self.init == "scratch" and self.freeze:
            raise ValueError("freeze must be 0 when init='scratch' (frozen random layers)")
        checks.number("lr", self.lr, low=0.0, strict=True)

    @property
    def name(self) -> str:
        """A short label such as ``"freeze 2, lr 3e-03"`` or ``"scratch, lr 1e-03"``."""
        head = "scratch" if self.init == "scratch" else f"freeze {self.freeze}"
        return f"{head}, lr {self.lr:.0e}"


def grid(freeze: Sequence[int] = (0, 1, 2, 3), lrs: Sequence[float] = (3e-4, 3e-3), *,
         scratch_lrs: Sequence[float] = (3e-3,)) -> list[Choice]:
    """The search space: every ``freeze`` depth at every ``lr`` from the source, plus training
    from scratch at each of ``scratch_lrs`` (chapter 05, "Adaptive transfer")."""
    for name, values in (("freeze", freeze), ("lrs", lrs), ("scratch_lrs", scratch_lrs)):
        if isinstance(values, (str, bytes)) or not isinstance(values, Sequence):
            raise ValueError(f"{name} must be a sequence, got {values!r}")
    if not freeze and not scratch_lrs:
        raise ValueError("freeze and scratch_lrs are both empty: the grid would be empty")
    if freeze and not lrs:
        raise ValueError("lrs must not be empty when freeze is given")
    out = [Choice("source", int(k), lr) for k in freeze for lr in lrs]
    out += [Choice("scratch", 0, lr) for lr in scratch_lrs]
    if len(set(out)) != len(out):
        raise ValueError("the grid has repeated candidates; make freeze and lrs distinct")
    return out


def fixed_recipes(model: keras.Model, *, lr: float = 1e-3,
                  head_lr: float = 1e-2) -> dict[str, Choice]:
    """Chapter 04's three fixed recipes as :class:`Choice` objects for ``model``'s depth
    (chapter 05): ``scratch`` and ``fine_tune`` (nothing frozen) at ``lr``, and
    ``feature_extraction`` (all but the head frozen) at ``head_lr``, the larger step a lone
    linear head needs."""
    checks.number("lr", lr, low=0.0, strict=True)
    checks.number("head_lr", head_lr, low=0.0, strict=True)
    depth = len(models.weighted_layers(model))
    return {"scratch": Choice("scratch", 0, lr),
            "feature_extraction": Choice("source", depth - 1, head_lr),
            "fine_tune": Choice("source", 0, lr)}


class Trainer:
    """Trains any :class:`Choice` from one source model on one target label set, with one
    compiled Keras model (chapter 05, "Adaptive transfer").

    ``run(choice, x, y, steps=, seed=)`` resets the model to the choice's starting weights
    (the source's, or a seed-specific fresh initialisation), zeroes the gradients of the
    frozen layers, trains ``steps`` Adam steps on shuffled mini-batches and returns the model
    (the same object every time: read what you need before the next run). ``keep_head`` keeps
    the source's output layer (same label set); otherwise each seed gets a fresh head.
    ``run_to_rule(choice, x, y, x_val, y_val, stopping=, seed=)`` trains the same run in
    rounds under a :class:`tlutils.engine.Stopping` rule instead.

    The counters ``runs``, ``steps`` and ``cpu_seconds`` (process CPU time spent in ``run`` and
    ``run_to_rule``) add up the cost of everything trained so far; :meth:`cost` returns them.
    """

    def __init__(self, source: keras.Model, *, num_classes: int | None = None,
                 keep_head: bool = True, batch_size: int = 32) -> None:
        checks.model(source, "source")
        self.batch_size = checks.int_at_least("batch_size", batch_size)
        n_out = int(source.output_shape[-1])
        self.num_classes = n_out if num_classes is None else num_classes
        self.keep_head = bool(keep_head)
        # make_target validates num_classes / keep_head and never modifies the source.
        self.source = source
        self.model = make_target(source, "fine_tune", num_classes=self.num_classes,
                                 keep_head=self.keep_head, seed=0)
        self.layers = models.weighted_layers(self.model)
        self.starts: dict[tuple[str, int], list[np.ndarray]] = {}
        variables = self.model.trainable_variables
        self.layer_of = [self.owner_of(v) for v in variables]
        self.masks = [tf.Variable(1.0, trainable=False, dtype=tf.float32) for _ in variables]
        self.optimizer = keras.optimizers.Adam(learning_rate=1e-3)
        self.optimizer.build(variables)
        self.optimizer_start = [v.numpy() for v in self.optimizer.variables]
        loss_fn = keras.losses.SparseCategoricalCrossentropy(from_logits=True)
        model, optimizer, masks = self.model, self.optimizer, self.masks

        @tf.function(input_signature=[tf.TensorSpec([None, *source.input_shape[1:]], tf.float32),
                                      tf.TensorSpec([None], tf.int64),
                                      tf.TensorSpec([None, None], tf.int32)],
                     reduce_retracing=True)
        def train_batches(x: tf.Tensor, y: tf.Tensor, batches: tf.Tensor) -> tf.Tensor:
            loss = tf.constant(0.0)
            for i in tf.range(tf.shape(batches)[0]):
                xb, yb = tf.gather(x, batches[i]), tf.gather(y, batches[i])
                with tf.GradientTape() as tape:
                    loss = loss_fn(yb, model(xb, training=True))
                grads = tape.gradient(loss, model.trainable_variables)
                optimizer.apply_gradients(
                    [(g * m, v) for g, m, v in zip(grads, masks, model.trainable_variables)])
            return loss

        self.train_batches = train_batches
        self.runs = 0
        self.steps = 0
        self.cpu_seconds = 0.0

    def owner_of(self, variable: keras.Variable) -> str:
        """The weighted layer a trainable variable belongs to."""
        parts = variable.path.split("/")
        for name in self.layers:
            if name in parts:
                return name
        raise ValueError(f"variable {variable.path} belongs to no weighted layer")

    def start_values(self, choice: Choice, seed: int) -> list[np.ndarray]:
        """The values of ``model.variables`` that a freshly built model for ``choice`` and
        ``seed`` starts from (weights and dropout's random-number state)."""
        key = (choice.init, seed)
        if key not in self.starts:
            method = "fine_tune" if choice.init == "source" else "scratch"
            keras.utils.set_random_seed(seed)
            fresh = make_target(self.source, method, num_classes=self.num_classes,
                                keep_head=self.keep_head and method != "scratch", seed=seed)
            self.starts[key] = [v.numpy() for v in fresh.variables]
        return self.starts[key]

    def run(self, choice: Choice, x: np.ndarray, y: np.ndarray, *, steps: int = 100,
            seed: int = 0) -> keras.Model:
        """Train ``choice`` on ``(x, y)`` for ``steps`` mini-batch steps; return the model."""
        steps = checks.int_at_least("steps", steps, 0)
        start = time.process_time()
        x, y = self.rewind(choice, x, y, seed)
        if steps and choice.freeze < len(self.layers):
            self.train_batches(x, y, self.batch_indices(len(y), steps, seed))
            self.steps += steps
        self.runs += 1
        self.cpu_seconds += time.process_time() - start
        return self.model

    def run_to_rule(self, choice: Choice, x: np.ndarray, y: np.ndarray, x_val: np.ndarray,
                    y_val: np.ndarray, *, stopping: engine.Stopping,
                    seed: int = 0) -> tuple[keras.Model, int, float]:
        """Train ``choice`` on ``(x, y)`` under a stated stopping rule (section 5.3, as
        :func:`tlutils.engine.run` does with ``stopping``); return ``(model, steps,
        val_accuracy)``.

        Training goes in rounds of ``stopping.every`` steps; after each round the model is
        scored on ``(x_val, y_val)`` (accuracy); training stops once ``stopping.patience``
        rounds in a row bring no improvement, or at ``stopping.max_steps``, and the model is
        left at the weights of its best round (the earliest, on ties). ``steps`` is that
        round's step count. The rounds continue one run: the same stream of mini-batches and
        the same Adam state, so a run stopped at round ``r`` is bit for bit a :meth:`run` of
        ``r * stopping.every`` steps (tested). A choice that freezes every layer trains
        nothing: ``steps`` is 0.
        """
        checks.instance("stopping", stopping, engine.Stopping)
        x_val, y_val = checks.xy(x_val, y_val, names=("x_val", "y_val"),
                                 num_classes=self.num_classes)
        start = time.process_time()
        x, y = self.rewind(choice, x, y, seed)
        best, best_steps, wait = -1.0, 0, 0
        best_values: list[np.ndarray] = []
        if choice.freeze == len(self.layers):  # nothing trains: score the start once
            best = float(np.mean(train.predict_labels(self.model, x_val) == y_val))
        else:
            batches = self.batch_indices(len(y), stopping.max_steps, seed)
            every = stopping.every
            for r in range(stopping.max_steps // every):
                self.train_batches(x, y, batches[r * every: (r + 1) * every])
                self.steps += every
                acc = float(np.mean(train.predict_labels(self.model, x_val) == y_val))
                if acc > best:
                    best, best_steps, wait = acc, (r + 1) * every, 0
                    best_values = [v.numpy() for v in self.model.variables]
                else:
                    wait += 1
                    if wait >= stopping.patience:
                        break
            for variable, value in zip(self.model.variables, best_values):
                variable.assign(value)
        self.runs += 1
        self.cpu_seconds += time.process_time() - start
        return self.model, best_steps, best

    def rewind(self, choice: Choice, x: np.ndarray, y: np.ndarray,
               seed: int) -> tuple[np.ndarray, np.ndarray]:
        """Check a run's inputs and put the model, Adam and the seeds back to ``choice``'s
        start for ``seed`` (section 5.3; :meth:`run` and :meth:`run_to_rule` start with it);
        return ``(x, y)`` as the training graph reads them."""
        if not isinstance(choice, Choice):
            raise ValueError(f"choice must be a Choice, got {type(choice).__name__}")
        checks.xy(x, y, num_classes=self.num_classes)
        seed = checks.int_at_least("seed", seed, 0)
        if choice.freeze > len(self.layers):
            raise ValueError(f"freeze must be at most {len(self.layers)} (the model's weighted "
                             f"layers {self.layers}), got {choice.freeze}")
        if choice.freeze == len(self.layers) and not self.keep_head:
            raise ValueError("freeze covers the new, untrained head; use keep_head=True or "
                             "freeze fewer layers")
        frozen = set(self.layers[: choice.freeze])
        # Rewind (as tlutils.engine.Trainee does): variables, optimizer state, seeds.
        for variable, value in zip(self.model.variables, self.start_values(choice, seed)):
            variable.assign(value)
        for variable, value in zip(self.optimizer.variables, self.optimizer_start):
            variable.assign(value)
        self.optimizer.learning_rate = choice.lr
        keras.utils.set_random_seed(seed)
        for mask, layer in zip(self.masks, self.layer_of):
            mask.assign(0.0 if layer in frozen else 1.0)
        return x.astype(np.float32), y.astype(np.int64)

    def batch_indices(self, n: int, steps: int, seed: int) -> np.ndarray:
        """Indices of ``steps`` mini-batches: reshuffled passes over the data, like
        ``shuffle().repeat().batch()``."""
        bs = min(self.batch_size, n)
        rng = np.random.default_rng(seed)
        passes = -(-steps * bs // n)
        order = np.concatenate([rng.permutation(n) for _ in range(passes)])
        return order[: steps * bs].reshape(steps, bs).astype(np.int32)

    def cost(self) -> dict[str, float]:
        """``{"runs", "steps", "cpu_seconds"}`` spent so far."""
        return {"runs": self.runs, "steps": self.steps, "cpu_seconds": self.cpu_seconds}


@dataclass
class SearchResult:
    """What :func:`search` returns (section 5.3): the per-candidate validation ``table`` (a DataFrame), the
    ``best`` choice, its ``test_accuracy`` after refitting on every labelled example (``None``
    without a test set), the ``cost`` of the search (runs, steps, CPU seconds), and ``steps``,
    the number of steps the winner trains for in the refit."""

    table: object
    best: Choice
    test_accuracy: float | None
    cost: dict[str, float] = field(default_factory=dict)
    steps: int | None = None


def search(trainer: Trainer, x: np.ndarray, y: np.ndarray, choices: Sequence[Choice], *,
           steps: int | None = None, stopping: engine.Stopping | None = None,
           val_fraction: float = 0.3, seed: int = 0, x_test: np.ndarray | None = None,
           y_test: np.ndarray | None = None, refit: bool = True) -> SearchResult:
    """Pick the candidate that scores best on a held-out part of the labelled target data
    (chapter 05, "Adaptive transfer").

    ``(x, y)`` are *all* the labelled target examples. A stratified ``val_fraction`` of them
    is held out; every choice trains on the rest and is scored on the held-out part (accuracy,
    ties broken by the lower validation loss, then by the order of ``choices``). Give either
    ``steps`` (every choice trains that many steps; 100 when neither is given) or
    ``stopping``, a
    :class:`tlutils.engine.Stopping` rule: every choice then trains in rounds of
    ``stopping.every`` steps, is scored on the held-out part after each round, stops after
    ``stopping.patience`` rounds without improvement (or at ``stopping.max_steps``) and is
    ranked by its best round (:meth:`Trainer.run_to_rule`). With ``refit=True`` the winner is
    retrained on every labelled example, for ``steps`` steps, or, with ``stopping``, for as
    many steps as its best round used on the search split (the refit has no held-out data
    left to stop on). ``x_test``/``y_test``, if given, are used only to score that final
    model, never to choose.

    The result's ``table`` has one row per candidate: its accuracy on the examples it trained
    on (``train_accuracy``), ``val_accuracy`` and ``val_loss``, and, when a test set is given,
    ``test_accuracy`` (of the model trained on the search split): for analysis only, e.g. to
    see how close the validation choice gets to the best candidate in hindsight. With
    ``stopping`` it also has ``steps`` (the best round's step count), and every score is of
    the model at its best round.
    """
    if not isinstance(trainer, Trainer):
        raise ValueError(f"trainer must be a Trainer, got {type(trainer).__name__}")
    checks.xy(x, y)
    if isinstance(choices, (str, bytes)) or not isinstance(choices, Sequence) or not choices:
        raise ValueError(f"choices must be a non-empty sequence of Choice, got {choices!r}")
    for c in choices:
        if not isinstance(c, Choice):
            raise ValueError(f"choices must hold Choice objects, got {type(c).__name__}")
    if (not isinstance(val_fraction, (int, float)) or isinstance(val_fraction, bool)
            or not 0.0 < val_fraction < 1.0):
        raise ValueError(f"val_fraction must be in (0, 1), got {val_fraction!r}")
    if (x_test is None) != (y_test is None):
        raise ValueError("give both x_test and y_test, or neither")
    if x_test is not None:
        checks.xy(x_test, y_test, names=("x_test", "y_test"))
    if steps is not None and stopping is not None:
        raise ValueError("give steps or stopping, not both")
    if steps is None and stopping is None:
        steps = 100  # the fixed budget it has always had
    if steps is not None:
        steps = checks.int_at_least("steps", steps, 0)
    else:
        checks.instance("stopping", stopping, engine.Stopping)
    x_tr, y_tr, x_val, y_val = data.split(x, y, test_fraction=val_fraction, seed=seed)
    before = trainer.cost()
    rows = []
    for order, choice in enumerate(choices):
        if stopping is None:
            assert steps is not None
            model = trainer.run(choice, x_tr, y_tr, steps=steps, seed=seed)
        else:
            model, used, _ = trainer.run_to_rule(choice, x_tr, y_tr, x_val, y_val,
                                                 stopping=stopping, seed=seed)
        val = train.evaluate(model, x_val, y_val)
        row = {"choice": choice.name, "init": choice.init, "freeze": choice.freeze,
               "lr": choice.lr}
        if stopping is not None:
            row["steps"] = used
        row.update({"train_accuracy": train.accuracy(model, x_tr, y_tr),
                    "val_accuracy": val["accuracy"], "val_loss": val["loss"], "order": order})
        if x_test is not None and y_test is not None:
            row["test_accuracy"] = train.accuracy(model, x_test, y_test)
        rows.append(row)
    table = pd.DataFrame(rows)
    ranked = table.sort_values(["val_accuracy", "val_loss", "order"],
                               ascending=[False, True, True])
    best = choices[int(ranked["order"].iloc[0])]
    refit_steps = int(ranked["steps"].iloc[0]) if steps is None else steps
    test_accuracy = None
    if refit:
        model = trainer.run(best, x, y, steps=refit_steps, seed=seed)
        if x_test is not None and y_test is not None:
            test_accuracy = train.accuracy(model, x_test, y_test)
    elif x_test is not None:
        test_accuracy = float(ranked["test_accuracy"].iloc[0])
    after = trainer.cost()
    cost = {k: after[k] - before[k] for k in after}
    return SearchResult(table=table.drop(columns="order"), best=best,
                        test_accuracy=test_accuracy, cost=cost, steps=refit_steps)
