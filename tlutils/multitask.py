"""Multi-task learning beside transfer learning: a two-head model with a shared trunk, trained
jointly on two tasks, and a side-by-side run against sequential transfer (chapter 06, "FAQ").

Transfer learning is *sequential*: learn task A, then adapt the model to task B. Multi-task
learning (Caruana 1997) is *joint*: one shared representation, one output head per task, and
one loss that adds the tasks' losses, so that each task's training signal shapes the features
the other uses. Everything here is plain Keras: :func:`build_two_head` returns a
``keras.Model`` with a dict of two inputs and a dict of two outputs, and :func:`fit_joint`
is ``compile`` + ``fit`` on a zipped ``tf.data`` pipeline.
"""

from __future__ import annotations

import time
from collections.abc import Mapping, Sequence

import keras
import numpy as np
import pandas as pd
import tensorflow as tf

from tlutils import checks, data, engine, models, train, transfer
from tlutils.config import setup

__all__ = ["build_two_head", "compare_joint_sequential", "fit_joint", "task_model"]


def _check_tasks(tasks: object) -> tuple[str, str]:
    if (not isinstance(tasks, (tuple, list)) or len(tasks) != 2
            or not all(isinstance(t, str) and t.isidentifier() for t in tasks)
            or tasks[0] == tasks[1]):
        raise ValueError(f"tasks must be two distinct identifier names, got {tasks!r}")
    return tuple(tasks)


def build_two_head(input_shape: tuple[int, ...] = (28, 28, 1),
                   num_classes: tuple[int, int] = (10, 10), *,
                   tasks: tuple[str, str] = ("a", "b"), seed: int = 0,
                   name: str = "two_head") -> keras.Model:
    """A multi-task model: the book's CNN up to ``dropout`` as a shared ``trunk``, then one
    ``Dense`` head per task, ``head_<task>`` (chapter 06, "Transfer vs multi-task learning").

    The model takes a dict of images ``{task: batch}`` and returns a dict of logits
    ``{task: logits}``, so each step can feed each task its own batch. The trunk's layers keep
    the source CNN's names (``conv1`` ... ``dense``), so :func:`tlutils.models.copy_weights`
    can initialise it from a source model. Use :func:`task_model` for one task's classifier.
    """
    tasks = _check_tasks(tasks)
    if (not isinstance(num_classes, (tuple, list)) or len(num_classes) != 2
            or not all(isinstance(k, int) and not isinstance(k, bool) and k >= 2
                       for k in num_classes)):
        raise ValueError(f"num_classes must be two ints >= 2, got {num_classes!r}")
    seed = checks.int_at_least("seed", seed, 0)
    keras.utils.set_random_seed(seed)
    cnn = models.build_cnn(input_shape, num_classes[0])
    trunk = keras.Model(cnn.input, cnn.get_layer("dropout").output, name="trunk")
    inputs, outputs = {}, {}
    for i, (task, k) in enumerate(zip(tasks, num_classes)):
        inputs[task] = keras.Input(tuple(input_shape), name=task)
        head = keras.layers.Dense(k, name=f"head_{task}",
                                  kernel_initializer=keras.initializers.GlorotUniform(seed + i))
        outputs[task] = head(trunk(inputs[task]))
    return keras.Model(inputs, outputs, name=name)


def _tasks_of(model: keras.Model) -> list[str]:
    return [layer.name[len("head_"):] for layer in model.layers if layer.name.startswith("head_")]


def task_model(model: keras.Model, task: str) -> keras.Model:
    """One task's classifier from a :func:`build_two_head` model: image -> that task's logits.
    It shares the trunk and head weights with ``model`` (chapter 06)."""
    checks.model(model)
    names = [layer.name for layer in model.layers]
    if "trunk" not in names:
        raise ValueError(f"model {model.name!r} has no 'trunk' layer; build it with build_two_head")
    if f"head_{task}" not in names:
        raise ValueError(f"task={task!r} is not a task of {model.name!r}; it has {_tasks_of(model)}")
    trunk = model.get_layer("trunk")
    inp = keras.Input(tuple(trunk.inputs[0].shape[1:]), name="image")
    return keras.Model(inp, model.get_layer(f"head_{task}")(trunk(inp)), name=f"{model.name}_{task}")


def _joint_pipeline(task_data: dict, batch_sizes: dict, seed: int) -> tf.data.Dataset:
    parts = []
    for i, (task, (x, y)) in enumerate(task_data.items()):
        ds = tf.data.Dataset.from_tensor_slices((x, y))
        ds = ds.shuffle(len(x), seed=seed + i, reshuffle_each_iteration=True).repeat()
        parts.append(ds.batch(batch_sizes[task]))
    names = list(task_data)

    def regroup(*batches):
        return ({t: b[0] for t, b in zip(names, batches)}, {t: b[1] for t, b in zip(names, batches)})

    return tf.data.Dataset.zip(tuple(parts)).map(regroup).prefetch(2)


def _check_task_data(model: keras.Model, task_data: object) -> dict:
    if not isinstance(task_data, dict) or not task_data:
        raise ValueError("task_data must be a dict {task: (x, y)}")
    tasks = _tasks_of(model)
    if sorted(task_data) != sorted(tasks):
        raise ValueError(f"task_data must have one entry per task {tasks}, got {sorted(task_data)}")
    for task, pair in task_data.items():
        if not isinstance(pair, tuple) or len(pair) != 2:
            raise ValueError(f"task_data[{task!r}] must be a tuple (x, y)")
        checks.xy(*pair, names=(f"task_data[{task!r}][0]", f"task_data[{task!r}][1]"))
    return {t: task_data[t] for t in tasks}


def _compile_joint(model: keras.Model, tasks: list[str], *, lr: float,
                   loss_weights: dict | None) -> None:
    weights = {t: 1.0 for t in tasks} if loss_weights is None else dict(loss_weights)
    if sorted(weights) != sorted(tasks) or not all(
            isinstance(w, (int, float)) and not isinstance(w, bool) and w >= 0
            for w in weights.values()):
        raise ValueError(f"loss_weights must map each task {tasks} to a non-negative number, "
                         f"got {loss_weights!r}")
    loss = {t: keras.losses.SparseCategoricalCrossentropy(from_logits=True) for t in tasks}
    model.compile(optimizer=keras.optimizers.Adam(lr), loss=loss, loss_weights=weights)


def fit_joint(model: keras.Model, task_data: dict, *, steps: int,
              batch_sizes: dict | None = None, lr: float = 1e-3,
              loss_weights: dict | None = None, seed: int = 0) -> pd.DataFrame:
    """Train a :func:`build_two_head` model on both tasks at once (chapter 06).

    Every step draws one batch per task (``batch_sizes``, default 32 each) and minimises
    ``sum_t loss_weights[t] * cross_entropy_t``. ``task_data`` maps each task name to its
    ``(x, y)`` arrays. Returns a one-row DataFrame with the final losses.
    """
    checks.model(model)
    task_data = _check_task_data(model, task_data)
    tasks = list(task_data)
    steps = checks.int_at_least("steps", steps)
    lr = checks.number("lr", lr, low=0.0, strict=True)
    sizes = {t: 32 for t in tasks} if batch_sizes is None else dict(batch_sizes)
    if sorted(sizes) != sorted(tasks) or not all(
            isinstance(b, int) and not isinstance(b, bool) and b > 0 for b in sizes.values()):
        raise ValueError(f"batch_sizes must map each task {tasks} to a positive int, "
                         f"got {batch_sizes!r}")
    setup(seed)
    _compile_joint(model, tasks, lr=lr, loss_weights=loss_weights)
    hist = model.fit(_joint_pipeline(task_data, sizes, seed), epochs=1, steps_per_epoch=steps,
                     verbose=0)
    table = pd.DataFrame(hist.history)
    table.insert(0, "steps", [steps])
    return table


#: The two approaches :func:`compare_joint_sequential` compares, as named in its table.
APPROACHES = ("sequential transfer", "multi-task (joint)")


def compare_joint_sequential(source: keras.Model, task_a: tuple[np.ndarray, np.ndarray],
                             target_pool: tuple[np.ndarray, np.ndarray],
                             test_a: tuple[np.ndarray, np.ndarray],
                             test_b: tuple[np.ndarray, np.ndarray], *, budget: int,
                             seeds: Sequence[int] = (0, 1), target_steps: int | None = 100,
                             joint_steps: int | None = 200, batch_size: int = 32,
                             joint_batch_sizes: tuple[int, int] = (32, 16),
                             lr: float = 1e-3,
                             validation: tuple[np.ndarray, np.ndarray] | None = None,
                             lrs: Sequence[float] | Mapping[str, Sequence[float]] | None = None,
                             stopping: engine.Stopping | None = None,
                             all_rates: bool = False) -> pd.DataFrame:
    """Sequential transfer against joint multi-task training on the same two tasks (chapter 06).

    * ``sequential transfer``: ``source`` (already trained on task A) gets a fresh head and is
      fine-tuned on ``budget`` labels per class of task B for ``target_steps`` steps of
      ``batch_size``. Its task-A accuracy is measured with the *source's* head on the
      fine-tuned trunk: what is left of task A after adapting to B.
    * ``multi-task (joint)``: a fresh :func:`build_two_head` model trained for ``joint_steps``
      steps, each with a batch of task A and a batch of task B (``joint_batch_sizes``).

    Both see the same few-shot task-B sample for a seed, and both are rewound per seed by the
    comparison engine (:class:`tlutils.engine.Trainee`). For a fair comparison (FAQ Q2) give
    a task-B ``validation`` set ``(x_val, y_val)`` (labelled, disjoint from the pool and the
    test set) and

    * ``lrs``: a grid of learning rates, one for both approaches or a dict approach -> grid;
      each approach keeps the rate with the best mean task-B validation accuracy over seeds
      (:func:`tlutils.engine.mark_chosen`; the test sets play no part);
    * ``stopping``: a :class:`tlutils.engine.Stopping` rule for both approaches instead of
      step counts (pass ``target_steps=None, joint_steps=None``): each run trains in rounds
      until its task-B validation accuracy stops improving and keeps its best round
      (:func:`tlutils.engine.fit_to_rule`; for the joint model a round is ``every`` joint
      steps, each with a batch of both tasks).

    Returns a tidy DataFrame with columns ``approach, seed, task_a_accuracy, task_b_accuracy,
    seconds``, plus ``lr``, ``steps`` and ``val_accuracy`` (task B's) when a validation set
    is given: the runs at the chosen rates, or (``all_rates=True``) every run of the grids
    with a boolean column ``chosen``.
    """
    checks.model(source, "source")
    for name, pair in (("task_a", task_a), ("target_pool", target_pool), ("test_a", test_a),
                       ("test_b", test_b)):
        if not isinstance(pair, tuple) or len(pair) != 2:
            raise ValueError(f"{name} must be a tuple (x, y)")
        checks.xy(*pair, names=(f"{name}[0]", f"{name}[1]"))
    for name, value in (("budget", budget), ("batch_size", batch_size)):
        checks.int_at_least(name, value)
    if stopping is not None:
        checks.instance("stopping", stopping, engine.Stopping)
        if target_steps is not None or joint_steps is not None:
            raise ValueError("give target_steps and joint_steps, or stopping, not both (pass "
                             "target_steps=None, joint_steps=None with stopping)")
    else:
        target_steps = checks.int_at_least("target_steps", target_steps)
        joint_steps = checks.int_at_least("joint_steps", joint_steps)
    seeds = checks.seeds(seeds)
    lr = checks.number("lr", lr, low=0.0, strict=True)
    grids = checks.rate_grids(APPROACHES, lrs, dict.fromkeys(APPROACHES, lr))
    x_val, y_val = checks.validation(validation)
    if lrs is not None or stopping is not None:
        checks.needs_validation(x_val, "choosing learning rates (lrs) or stopping points "
                                "(stopping)")
    if not isinstance(all_rates, bool) or (all_rates and x_val is None):
        raise ValueError(f"all_rates must be True or False, and True only with a validation "
                         f"set; got {all_rates!r}")
    if (not isinstance(joint_batch_sizes, (tuple, list)) or len(joint_batch_sizes) != 2
            or not all(isinstance(b, int) and b > 0 for b in joint_batch_sizes)):
        raise ValueError(f"joint_batch_sizes must be two positive ints, got {joint_batch_sizes!r}")
    n_a = int(source.output_shape[-1])
    if int(task_a[1].max()) >= n_a or int(test_a[1].max()) >= n_a:
        raise ValueError(f"task_a labels must be below the source's {n_a} outputs")
    n_b = int(max(target_pool[1].max(), test_b[1].max())) + 1

    # Sequential: the fine-tuned target, and the source's old head on its trunk; the engine
    # scores what is left of task A after each run.
    sequential = engine.Trainee(
        lambda s: transfer.make_target(source, "fine_tune", num_classes=n_b, keep_head=False,
                                       seed=s),
        seeds, compile=lambda m: train.compile_model(m, lr=lr))
    target = sequential.model
    old_head = keras.layers.Dense(n_a, name="source_head")
    left_of_a = keras.Model(target.input, old_head(target.get_layer("head").input))
    old_head.set_weights(source.get_layer("head").get_weights())
    task = engine.Task(*target_pool, *test_b, budget, x_val=x_val, y_val=y_val)
    extra = {"task_a_accuracy": lambda: train.accuracy(left_of_a, *test_a)}
    seq_name = APPROACHES[0]
    if x_val is None:
        seq = engine.run({seq_name: sequential}, [task], steps=target_steps, stopping=stopping,
                         batch_size=batch_size, name="approach", extra=extra)
    else:
        seq = engine.run_rates({seq_name: sequential}, [task], {seq_name: grids[seq_name]},
                               steps=target_steps, stopping=stopping, batch_size=batch_size,
                               name="approach", extra=extra)
    seq = seq.rename(columns={"accuracy": "task_b_accuracy"})

    # Joint: a two-head model, one batch of each task per step.
    tasks = ("a", "b")
    shape = tuple(task_a[0].shape[1:])
    joint = engine.Trainee(
        lambda s: build_two_head(shape, (n_a, n_b), tasks=tasks, seed=s), seeds,
        compile=lambda m: _compile_joint(m, list(tasks), lr=lr, loss_weights=None))
    views = {t: task_model(joint.model, t) for t in tasks}
    sizes = dict(zip(tasks, joint_batch_sizes))
    rows = []
    for rate in grids[APPROACHES[1]]:
        for seed in seeds:
            start = time.perf_counter()
            xs, ys = data.few_shot(*target_pool, budget, seed=seed)
            sizes_now = {"a": sizes["a"], "b": min(sizes["b"], len(ys))}
            model = joint.rewind(seed, lr=rate if x_val is not None else None)
            stream = _joint_pipeline({"a": task_a, "b": (xs, ys)}, sizes_now, seed)
            row: dict[str, object] = {"approach": APPROACHES[1], "seed": seed}
            used: int | None
            val_acc: float | None
            if stopping is not None:
                assert x_val is not None and y_val is not None
                _, used, val_acc = engine.fit_to_rule(model, stream, stopping, x_val, y_val,
                                                      scored=views["b"])
            else:
                model.fit(stream, epochs=1, steps_per_epoch=joint_steps, verbose=0)
                used = joint_steps
                val_acc = None if x_val is None else train.accuracy(views["b"], x_val, y_val)
            row["task_b_accuracy"] = train.accuracy(views["b"], *test_b)
            row["task_a_accuracy"] = train.accuracy(views["a"], *test_a)
            if x_val is not None:
                row.update(lr=rate, steps=used, val_accuracy=val_acc)
            row["seconds"] = time.perf_counter() - start
            rows.append(row)
    columns = ["approach", "seed", "task_a_accuracy", "task_b_accuracy", "seconds"]
    if x_val is None:
        return pd.concat([seq, pd.DataFrame(rows)], ignore_index=True)[columns]
    table = pd.concat([seq.drop(columns="chosen"), pd.DataFrame(rows)], ignore_index=True)
    table["steps"] = table.steps.astype(int)
    table["chosen"] = engine.mark_chosen(table, within=["approach"])
    columns = ["approach", "lr", "seed", "task_a_accuracy", "task_b_accuracy", "steps",
               "val_accuracy", "seconds", "chosen"]
    table = table[columns]
    if all_rates:
        return table
    return table[table.chosen].drop(columns="chosen").reset_index(drop=True)
