"""Scale-out with ``tf.distribute``: the same training call on one CPU, several GPUs, several
machines or a TPU (chapter 05, "Scale-out").

A ``tf.distribute.Strategy`` decides where the replicas of a model live and how their
gradients are combined. Keras does the rest: build the model under ``strategy.scope()`` and
``fit`` splits every global batch across the replicas and sums their gradients. Every tlutils
training entry point takes a strategy: :func:`tlutils.train.fit` and
:func:`tlutils.text.fine_tune_grid` as ``strategy=``; :func:`compare` (for
:func:`tlutils.transfer.compare`) and :func:`run` (for anything else that builds and trains
models) run a call inside a strategy's scope. (:func:`tlutils.zoo.source_model` trains a
missing entry in a child process on the default strategy; under :func:`run` it only loads the
model it returns inside the scope.)

On a machine without accelerators, :func:`logical_cpus` splits the CPU into several logical
devices so that ``MirroredStrategy`` has replicas to mirror over; the results then match the
single-device run, which is how the chapter checks the distributed path.

A model built under a strategy makes Keras read one batch from a first iterator (to build the
model symbolically) and then train from a *second* iterator of the same dataset. With a plain
``shuffle(reshuffle_each_iteration=True)`` every iterator gets a new order, so the distributed
run would see different batches from the single-device run. tlutils' one training pipeline,
:func:`tlutils.train.batches` (:func:`stable_pipeline` here), starts the seeded shuffle afresh
for every iterator, so every set-up sees the same batches.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from typing import Any

import numpy as np
import pandas as pd
import tensorflow as tf

from tlutils import checks, train, transfer

__all__ = ["KINDS", "compare", "describe", "fit", "global_batch_size", "logical_cpus",
           "make_strategy", "run", "stable_pipeline"]

#: The strategies :func:`make_strategy` knows, besides ``"auto"``.
KINDS = ("default", "mirrored", "multi_worker", "tpu")


def logical_cpus(n: int = 2) -> list[str]:
    """Split the first physical CPU into ``n`` logical devices and return their names,
    e.g. ``['/device:CPU:0', '/device:CPU:1']`` (chapter 05, "Scale-out").

    TensorFlow fixes its devices the first time it runs anything, so call this right after
    ``import tlutils`` (importing tlutils, Keras and ``tlutils.setup`` are fine), before any
    model, tensor or dataset exists. Calling it again with the same ``n`` is harmless; with
    another ``n`` after start-up it raises RuntimeError, since only a fresh process can change
    it. The replicas share the same cores: this demonstrates distribution, it does not speed
    anything up.
    """
    if not isinstance(n, int) or isinstance(n, bool) or not 1 <= n <= 64:
        raise ValueError(f"n must be an int in [1, 64], got {n!r}")
    cpu = tf.config.list_physical_devices("CPU")[0]
    current = tf.config.get_logical_device_configuration(cpu)
    if not (current is None and n == 1) and (current is None or len(current) != n):
        try:
            tf.config.set_logical_device_configuration(
                cpu, [tf.config.LogicalDeviceConfiguration() for _ in range(n)])
        except RuntimeError as exc:
            have = len(tf.config.list_logical_devices("CPU"))
            raise RuntimeError(
                f"TensorFlow has already initialised its devices ({have} logical CPU(s)), so "
                f"logical_cpus({n}) cannot take effect. Call it right after `import tlutils`, "
                "before any model, tensor or dataset is created (or restart the kernel)."
            ) from exc
    return [d.name for d in tf.config.list_logical_devices("CPU")]


def make_strategy(kind: str = "auto", *, devices: list[str] | None = None,
                  tpu: str | None = None):
    """A ``tf.distribute.Strategy`` by name (chapter 05, "Scale-out").

    * ``"default"``: the current strategy (one device; what you get without asking).
    * ``"mirrored"``: ``MirroredStrategy`` over ``devices`` (default: every GPU, or every
      logical CPU when there is no GPU): synchronous data parallelism on one machine.
    * ``"multi_worker"``: ``MultiWorkerMirroredStrategy``: the same across machines; each
      worker runs the same script with its own ``TF_CONFIG``. Create it first thing in the
      program, before other TensorFlow work.
    * ``"tpu"``: ``TPUStrategy`` on the TPU named ``tpu`` (``""``: the local one, as in a
      Colab TPU runtime). Raises RuntimeError if no TPU answers.
    * ``"auto"``: a TPU if one is visible, else ``"mirrored"`` with two or more GPUs or
      logical CPUs, else ``"default"``.
    """
    if kind not in (*KINDS, "auto"):
        raise ValueError(f"kind must be 'auto' or one of {KINDS}, got {kind!r}")
    if devices is not None and (isinstance(devices, str) or not all(
            isinstance(d, str) for d in devices) or not devices):
        raise ValueError(f"devices must be a non-empty list of device names, got {devices!r}")
    if kind == "auto":
        tpu_visible = (tf.config.list_physical_devices("TPU")
                       or os.environ.get("COLAB_TPU_ADDR") or os.environ.get("TPU_NAME"))
        if tpu_visible:
            kind = "tpu"
        elif len(tf.config.list_physical_devices("GPU")) >= 2 or (
                not tf.config.list_physical_devices("GPU")
                and len(tf.config.list_logical_devices("CPU")) >= 2):
            kind = "mirrored"
        else:
            kind = "default"
    if kind == "default":
        return tf.distribute.get_strategy()
    if kind == "mirrored":
        if devices is None:
            gpus = tf.config.list_logical_devices("GPU")
            devices = [d.name for d in (gpus or tf.config.list_logical_devices("CPU"))]
        return tf.distribute.MirroredStrategy(devices)
    if kind == "multi_worker":
        return tf.distribute.MultiWorkerMirroredStrategy()
    try:  # kind == "tpu"
        resolver = tf.distribute.cluster_resolver.TPUClusterResolver(tpu=tpu or "")
        tf.config.experimental_connect_to_cluster(resolver)
        tf.tpu.experimental.initialize_tpu_system(resolver)
    except Exception as exc:  # no TPU here
        raise RuntimeError("no TPU found: in Colab choose Runtime > Change runtime type > "
                           f"TPU ({type(exc).__name__}: {str(exc)[:120]})") from exc
    return tf.distribute.TPUStrategy(resolver)


def describe(strategy=None) -> dict:
    """The strategy's class, number of replicas and devices, as a small dict (chapter 05)."""
    strategy = strategy or tf.distribute.get_strategy()
    if not isinstance(strategy, tf.distribute.Strategy):
        raise ValueError(f"strategy must be a tf.distribute.Strategy, got {strategy!r}")
    try:
        devices = list(strategy.extended.worker_devices)
    except RuntimeError:  # the default strategy: whatever device TensorFlow places ops on
        devices = ["(default placement)"]
    return {"strategy": type(strategy).__name__, "replicas": int(strategy.num_replicas_in_sync),
            "devices": [d[d.index("/device:"):] if "/device:" in d else d for d in devices]}


def global_batch_size(per_replica: int, strategy=None) -> int:
    """``per_replica * replicas``: the batch size to pass to ``fit`` so that each replica
    sees ``per_replica`` examples per step (chapter 05). Keras splits the global batch."""
    if not isinstance(per_replica, int) or isinstance(per_replica, bool) or per_replica <= 0:
        raise ValueError(f"per_replica must be a positive int, got {per_replica!r}")
    return per_replica * describe(strategy)["replicas"]


def stable_pipeline(x: np.ndarray, y: np.ndarray, *, batch_size: int,
                    seed: int) -> tf.data.Dataset:
    """Shuffled, repeated training batches whose order is the same for every iterator
    created from the dataset (chapter 05, "Scale-out"): :func:`tlutils.train.batches`, the
    pipeline every tlutils training function uses, with its arguments checked."""
    checks.xy(x, y)
    return train.batches(x, y, batch_size=checks.int_at_least("batch_size", batch_size),
                         seed=checks.int_at_least("seed", seed, 0))


def fit(model: Any, x: np.ndarray, y: np.ndarray, *,
        strategy: tf.distribute.Strategy | None = None, **kwargs: Any) -> pd.DataFrame:
    """:func:`tlutils.train.fit` with a ``strategy`` (chapter 05, "Scale-out"). Build
    ``model`` under ``strategy.scope()`` first. With ``strategy=None`` this is exactly
    ``train.fit``."""
    return train.fit(model, x, y, strategy=strategy, **kwargs)


def run(fn: Callable[..., Any], *args: Any, strategy: tf.distribute.Strategy | None = None,
        **kwargs: Any) -> Any:
    """Call ``fn(*args, **kwargs)`` inside ``strategy.scope()`` (default: the current
    strategy), so the models it builds are replicated and its Keras ``fit`` calls are
    distributed, e.g. ``run(transfer.compare, source, ..., strategy=s)`` (section 5.7)."""
    if not callable(fn):
        raise ValueError(f"fn must be callable, got {fn!r}")
    strategy = strategy or tf.distribute.get_strategy()
    if not isinstance(strategy, tf.distribute.Strategy):
        raise ValueError(f"strategy must be a tf.distribute.Strategy, got {strategy!r}")
    with strategy.scope():
        return fn(*args, **kwargs)


def compare(source: Any, x_pool: np.ndarray, y_pool: np.ndarray, x_test: np.ndarray,
            y_test: np.ndarray, *, strategy: tf.distribute.Strategy | None = None,
            **kwargs: Any) -> pd.DataFrame:
    """:func:`tlutils.transfer.compare` under ``strategy`` (chapter 05, "Scale-out"): every
    target model it builds is replicated, every run distributed. ``source`` may live
    outside the scope; it is only copied."""
    return run(transfer.compare, source, x_pool, y_pool, x_test, y_test, strategy=strategy,
               **kwargs)
