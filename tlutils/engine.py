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
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field

import keras
import numpy as np
import pandas as pd

from tlutils import checks

__all__ = ["Task", "Trainee", "run", "train_steps"]


class Trainee:
    """A compiled Keras model that can be rewound to its start for any of ``seeds``
    (chapter 04, "Target fine-tuning"; used by every comparison in the book).

    ``build(seed)`` returns the model to train, freshly initialised for ``seed`` (it is
    called once per seed, right after ``keras.utils.set_random_seed(seed)``);
    ``compile(model)`` compiles it (e.g. ``tlutils.train.compile_model``). Every seed's model
    must have the same architecture.
    """

    def __init__(self, build: Callable[[int], keras.Model], seeds: Sequence[int], *,
                 compile: Callable[[keras.Model], None]) -> None:
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

    def rewind(self, seed: int) -> keras.Model:
        """Put the model, its optimizer and every random-number generator back to where a
        freshly built and compiled model for ``seed`` starts; return the model."""
        if seed not in self.starts:
            raise ValueError(f"seed must be one of {self.seeds}, got {seed!r}")
        for variable, value in zip(self.model.variables, self.starts[seed]):
            variable.assign(value)
        for variable, value in zip(self.model.optimizer.variables, self.optimizer_start):
            variable.assign(value)
        keras.utils.set_random_seed(seed)
        return self.model


def train_steps(model: keras.Model, x: np.ndarray, y: np.ndarray, *, steps: int,
                batch_size: int, seed: int) -> None:
    """``steps`` gradient steps of a compiled ``model`` on seeded, shuffled batches of
    ``(x, y)`` (reshuffled every pass), as one Keras ``fit`` call (chapter 04)."""
    from tlutils import train

    model.fit(train.batches(x, y, batch_size=min(batch_size, len(y)), seed=seed), epochs=1,
              steps_per_epoch=steps, shuffle=False, verbose=0)


@dataclass(frozen=True)
class Task:
    """One setting of a comparison (section 4.3): a labelled pool to draw ``budget`` examples per class
    from (per seed), a test set, and the columns that name the setting in the results table,
    e.g. ``{"budget": 10}`` or ``{"drift": "rotation", "strength": 90}``."""

    x_pool: np.ndarray
    y_pool: np.ndarray
    x_test: np.ndarray
    y_test: np.ndarray
    budget: int
    columns: Mapping[str, object] = field(default_factory=dict)


def run(trainees: Mapping[str, Trainee], tasks: Sequence[Task], *, steps: int,
        batch_size: int = 32, name: str = "method", verbose: bool = False) -> pd.DataFrame:
    """Train every trainee on every task for each of its seeds and score it (chapters 01-06).

    Each run rewinds the trainee to its seed, draws the seed's few-shot sample of the task's
    pool (``tlutils.data.few_shot``), takes ``steps`` gradient steps of ``batch_size`` and
    scores top-1 accuracy on the task's test set. Returns a tidy DataFrame with columns
    ``name`` (the trainee's key), the task's columns, ``seed``, ``accuracy``, ``seconds``.
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
    steps = checks.int_at_least("steps", steps)
    batch_size = checks.int_at_least("batch_size", batch_size)
    rows = []
    for key, trainee in trainees.items():
        for task in tasks:
            accs = []
            for seed in trainee.seeds:
                start = time.perf_counter()
                xs, ys = data.few_shot(task.x_pool, task.y_pool, task.budget, seed=seed)
                model = trainee.rewind(seed)
                train_steps(model, xs, ys, steps=steps, batch_size=batch_size, seed=seed)
                acc = train.accuracy(model, task.x_test, task.y_test)
                accs.append(acc)
                rows.append({name: key, **task.columns, "seed": seed, "accuracy": acc,
                             "seconds": time.perf_counter() - start})
            if verbose:
                where = "  ".join(f"{k} {v}" for k, v in task.columns.items())
                print(f"{key:<24} {where}  accuracy {np.mean(accs):.3f} +/- {np.std(accs):.3f}")
    return pd.DataFrame(rows)
