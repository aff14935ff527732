"""Unsupervised domain adaptation: DANN, Deep CORAL and MMD, plus the A-distance diagnostic
(chapter 05, "Cross-domain transfer").

All three methods train one network on **labelled source** images and **unlabelled target**
images at once. The classification loss on the source keeps the features useful; an alignment
term pulls the source and target feature distributions together:

* **DANN** (Ganin et al. 2016): a domain classifier tries to tell source features from target
  features; a :class:`GradientReversal` layer between it and the encoder flips the sign of its
  gradient, so the encoder learns features the domain classifier *cannot* separate. The
  reversal weight follows Ganin's schedule ``lambda_p = 2 / (1 + exp(-10 p)) - 1``, where ``p``
  goes from 0 to 1 over training (:func:`ganin_lambda`).
* **Deep CORAL** (Sun & Saenko 2016): match the second-order statistics of the two feature
  batches, ``||C_s - C_t||_F^2 / (4 d^2)`` (:func:`coral_loss`).
* **MMD** (Gretton et al. 2012; Long et al. 2015): the maximum mean discrepancy between the two
  feature batches under a sum of Gaussian kernels of several bandwidths (:func:`mmd_loss`).

:class:`DomainAdapter` is a plain :class:`keras.Model` wrapped around *any* encoder and
classifier; ``fit`` takes batches ``((x_source, y_source), x_target)``. :func:`fit_adapter`
adds the data pipeline, seeds and an optional ``tf.distribute`` strategy; :func:`compare`
runs every method over several seeds on one task. :func:`a_distance` measures how separable
two feature sets are (Ben-David et al. 2010).
"""

from __future__ import annotations

import math
import time
import warnings
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import keras
import numpy as np
import pandas as pd
import tensorflow as tf

from tlutils import checks, engine, train

__all__ = [
    "METHODS",
    "DomainAdapter",
    "GradientReversal",
    "a_distance",
    "adaptation_dataset",
    "cnn_parts",
    "compare",
    "coral_loss",
    "fit_adapter",
    "inflate_channels",
    "ganin_lambda",
    "mmd_loss",
    "split_model",
]

#: The training objectives :class:`DomainAdapter` knows. ``source_only`` is the baseline.
METHODS = ("source_only", "dann", "coral", "mmd")
SCHEDULES = ("ganin", "constant")
#: Gaussian bandwidth multipliers of :func:`mmd_loss` (times the mean squared distance).
MMD_MULTIPLIERS = (0.25, 0.5, 1.0, 2.0, 4.0)


# --------------------------------------------------------------------------------------------
# The pieces: schedule, gradient reversal, alignment losses
# --------------------------------------------------------------------------------------------

def ganin_lambda(progress, gamma: float = 10.0):
    """Ganin et al.'s adaptation weight ``2 / (1 + exp(-gamma p)) - 1`` at training progress
    ``p`` in [0, 1] (chapter 05): 0 at the start, when the features are still noise, rising
    smoothly towards 1. Accepts a float (returns a float) or a tensor (returns a tensor)."""
    gamma = checks.number("gamma", gamma, low=0.0, strict=True)
    if isinstance(progress, (int, float, np.integer, np.floating)) and not isinstance(progress, bool):
        p = float(progress)
        if not 0.0 <= p <= 1.0:
            raise ValueError(f"progress must be in [0, 1], got {progress!r}")
        return 2.0 / (1.0 + math.exp(-gamma * p)) - 1.0
    if isinstance(progress, bool) or progress is None:
        raise ValueError(f"progress must be a number or a tensor, got {progress!r}")
    ops = keras.ops
    p = ops.clip(ops.cast(progress, "float32"), 0.0, 1.0)
    return 2.0 / (1.0 + ops.exp(-gamma * p)) - 1.0


def _reverse_gradient(x, lam):
    @tf.custom_gradient
    def reverse(inputs, weight):
        def grad(upstream):
            return -weight * upstream, None

        return tf.identity(inputs), grad

    return reverse(x, tf.cast(lam, x.dtype))


class GradientReversal(keras.layers.Layer):
    """Identity on the way forward; multiplies the gradient by ``-lam`` on the way back
    (Ganin et al. 2016; chapter 05, "Cross-domain transfer").

    Put it between an encoder and a domain classifier: the classifier learns to separate the
    domains while the encoder, receiving the reversed gradient, learns to confuse it. ``lam``
    is a non-trainable weight (assign to ``layer.lam`` to schedule it), or pass ``lam=`` to
    the call to override it for one step.
    """

    def __init__(self, lam: float = 1.0, **kwargs):
        super().__init__(**kwargs)
        lam = checks.number("lam", lam, low=0.0)
        self.lam = self.add_weight(shape=(), initializer=keras.initializers.Constant(lam),
                                   trainable=False, name="lambda")

    def call(self, inputs, lam=None):
        return _reverse_gradient(inputs, self.lam if lam is None else lam)

    def compute_output_shape(self, input_shape):
        return input_shape

    def get_config(self):
        return {**super().get_config(), "lam": float(np.asarray(self.lam))}


def _as_matrix(name: str, x):
    ops = keras.ops
    if isinstance(x, np.ndarray):
        if x.ndim != 2 or x.shape[0] < 2 or x.shape[1] < 1:
            raise ValueError(f"{name} must be a 2-D array of at least 2 feature vectors, "
                             f"got shape {x.shape}")
        x = x.astype(np.float32)
    elif len(getattr(x, "shape", ())) != 2:
        raise ValueError(f"{name} must be a 2-D (batch, features) tensor, "
                         f"got {getattr(x, 'shape', type(x).__name__)!r}")
    return ops.cast(ops.convert_to_tensor(x), "float32")


def _check_pair(source, target):
    s, t = _as_matrix("source", source), _as_matrix("target", target)
    if s.shape[1] is not None and t.shape[1] is not None and s.shape[1] != t.shape[1]:
        raise ValueError(f"target must have as many features as source: {t.shape[1]} != "
                         f"{s.shape[1]}")
    return s, t


def _covariance(x):
    ops = keras.ops
    n = ops.cast(ops.shape(x)[0], x.dtype)
    centred = x - ops.mean(x, axis=0, keepdims=True)
    return ops.matmul(ops.transpose(centred), centred) / (n - 1.0)


def coral_loss(source, target):
    """Deep CORAL's loss ``||C_s - C_t||_F^2 / (4 d^2)`` between the feature covariances of a
    source and a target batch, each ``(batch, d)`` (Sun & Saenko 2016; chapter 05).

    Differentiable Keras ops: use it in a custom ``train_step``, ``add_loss`` or
    :class:`DomainAdapter`. Zero for identical batches.
    """
    ops = keras.ops
    s, t = _check_pair(source, target)
    d = ops.cast(ops.shape(s)[1], "float32")
    n_s, n_t, width = s.shape[0], t.shape[0], s.shape[1]
    if None not in (n_s, n_t, width) and width > n_s + n_t:
        return _coral_by_gram(s, t) / (4.0 * d * d)
    diff = _covariance(s) - _covariance(t)
    return ops.sum(ops.square(diff)) / (4.0 * d * d)


def _coral_by_gram(s, t):
    """``||C_s - C_t||_F^2`` through the small Gram matrices of the centred batches:
    ``||A A^T||^2 / (n-1)^2 + ||B B^T||^2 / (m-1)^2 - 2 ||A B^T||^2 / ((n-1)(m-1))``.
    The same number as the d x d covariances give, at O(n^2 d) instead of O(n d^2) cost
    (a 32-image batch of 1,568 features: about 50 times fewer operations)."""
    ops = keras.ops
    a = s - ops.mean(s, axis=0, keepdims=True)
    b = t - ops.mean(t, axis=0, keepdims=True)
    n = ops.cast(ops.shape(a)[0], "float32") - 1.0
    m = ops.cast(ops.shape(b)[0], "float32") - 1.0
    ss = ops.sum(ops.square(ops.matmul(a, ops.transpose(a)))) / (n * n)
    tt = ops.sum(ops.square(ops.matmul(b, ops.transpose(b)))) / (m * m)
    st = ops.sum(ops.square(ops.matmul(a, ops.transpose(b)))) / (n * m)
    return ops.maximum(ss + tt - 2.0 * st, 0.0)


def mmd_loss(source, target, *, multipliers: Sequence[float] = MMD_MULTIPLIERS):
    """Multi-kernel Gaussian MMD^2 between two feature batches (Gretton et al. 2012, as used
    by Long et al. 2015's DAN; chapter 05).

    The kernel is ``sum_k exp(-||a - b||^2 / (m_k * s))`` where ``s`` is the mean squared
    distance between all pairs of the pooled batch (treated as a constant) and ``m_k`` are
    ``multipliers``. Returns the biased (V-statistic) estimate
    ``mean K_ss + mean K_tt - 2 mean K_st``: exactly 0 for identical batches, growing as the
    two distributions move apart.
    """
    ops = keras.ops
    if (isinstance(multipliers, (str, bytes)) or not isinstance(multipliers, Sequence)
            or not multipliers):
        raise ValueError(f"multipliers must be a non-empty sequence of positive numbers, "
                         f"got {multipliers!r}")
    mults = [checks.number("multipliers", m, low=0.0, strict=True) for m in multipliers]
    s, t = _check_pair(source, target)
    n = ops.shape(s)[0]
    pooled = ops.concatenate([s, t], axis=0)
    sq = ops.sum(ops.square(pooled), axis=1, keepdims=True)
    dist = ops.maximum(sq + ops.transpose(sq) - 2.0 * ops.matmul(pooled, ops.transpose(pooled)),
                       0.0)
    scale = ops.stop_gradient(ops.mean(dist)) + 1e-8
    kernel = sum(ops.exp(-dist / (m * scale)) for m in mults)
    k_ss = kernel[:n, :n]
    k_tt = kernel[n:, n:]
    k_st = kernel[:n, n:]
    return ops.mean(k_ss) + ops.mean(k_tt) - 2.0 * ops.mean(k_st)


# --------------------------------------------------------------------------------------------
# Encoders and classifiers
# --------------------------------------------------------------------------------------------

def split_model(model: keras.Model, at: str = "dense") -> tuple[keras.Model, keras.Model]:
    """Split a chain model such as :func:`tlutils.models.build_cnn` into ``(encoder,
    classifier)`` at layer ``at`` (chapter 05): the encoder maps images to ``at``'s output, the
    classifier maps those features to logits. Both share the original layers' weights."""
    checks.model(model)
    names = [layer.name for layer in model.layers]
    if not isinstance(at, str) or at not in names:
        raise ValueError(f"at={at!r} is not a layer of {model.name!r}; it has {names}")
    index = names.index(at)
    if index == len(names) - 1:
        raise ValueError(f"at={at!r} is the output layer; nothing would be left to classify")
    encoder = keras.Model(model.inputs, model.get_layer(at).output, name=f"{model.name}_encoder")
    features = keras.Input(tuple(encoder.output.shape[1:]), name="features")
    h = features
    for layer in model.layers[index + 1:]:
        h = layer(h)
    classifier = keras.Model(features, h, name=f"{model.name}_classifier")
    return encoder, classifier


def inflate_channels(model: keras.Model, channels: int = 3) -> keras.Model:
    """A copy of a grey-input model that reads ``channels``-channel images (chapter 05).

    The first layer's kernel is repeated across the new channels and divided by
    ``channels``, so on a grey image repeated into every channel the copy computes exactly
    what the original computes on the grey image (the "inflation" trick). Every other weight
    is copied unchanged; the original model is untouched.
    """
    checks.model(model)
    channels = checks.int_at_least("channels", channels)
    shape = tuple(model.input_shape[1:])
    if shape[-1] != 1:
        raise ValueError(f"model must read 1-channel images, its input shape is {shape}")
    copy = keras.models.clone_model(model, input_tensors=keras.Input(shape[:-1] + (channels,),
                                                                     name="image"))
    first = True
    for src, dst in zip(model.layers, copy.layers):
        weights = src.get_weights()
        if weights and first:
            kernel = np.repeat(weights[0], channels, axis=-2) / channels
            weights = [kernel.astype(weights[0].dtype), *weights[1:]]
            first = False
        if weights:
            dst.set_weights(weights)
        dst.trainable = src.trainable
    return copy


def cnn_parts(seed: int = 0, *, input_shape: tuple[int, ...] = (28, 28, 3), num_classes: int = 10,
              at: str = "dense", **cnn_kwargs):
    """The book's CNN (:func:`tlutils.models.build_cnn`), freshly initialised with ``seed`` and
    split into ``(encoder, classifier)`` at ``at`` (chapter 05's default networks)."""
    from tlutils import models

    seed = checks.int_at_least("seed", seed, 0)
    keras.utils.set_random_seed(seed)
    return split_model(models.build_cnn(input_shape, num_classes, **cnn_kwargs), at=at)


def _domain_classifier(hidden: Sequence[int], seed: int) -> keras.Sequential:
    layers = []
    for i, width in enumerate(hidden, start=1):
        layers.append(keras.layers.Dense(
            width, activation="relu", name=f"domain_dense{i}",
            kernel_initializer=keras.initializers.GlorotUniform(seed=seed + i)))
    layers.append(keras.layers.Dense(1, name="domain_logit",
                                     kernel_initializer=keras.initializers.GlorotUniform(seed)))
    return keras.Sequential(layers, name="domain_classifier")


# --------------------------------------------------------------------------------------------
# The adapter model
# --------------------------------------------------------------------------------------------

class DomainAdapter(keras.Model):
    """A Keras model that trains ``classifier(encoder(x))`` on labelled source data while
    aligning source and target features (chapter 05, "Cross-domain transfer").

    ``method`` is one of :data:`METHODS`:

    * ``"source_only"``: cross-entropy on the source only (the baseline);
    * ``"dann"``: plus a domain classifier behind a :class:`GradientReversal` layer;
    * ``"coral"``: plus ``weight`` x :func:`coral_loss` of the two feature batches;
    * ``"mmd"``: plus ``weight`` x :func:`mmd_loss`.

    The alignment weight is ``lambda = weight x s(p)`` with ``p`` the training progress
    (``optimizer.iterations / total_steps``) and ``s`` Ganin's ramp (``schedule="ganin"``,
    the default for DANN) or 1 (``"constant"``, the default for CORAL and MMD, as in their
    papers). With ``weight=0`` every method trains exactly like ``source_only``.

    ``fit`` expects batches ``((x_source, y_source), x_target)``
    (:func:`adaptation_dataset` makes them); ``predict``/``__call__`` classify images. The
    source and target batches go through the encoder in separate calls, so an encoder with
    BatchNormalization normalises each domain with its own batch statistics during training.
    """

    def __init__(self, encoder, classifier, *, method: str = "dann", weight: float = 1.0,
                 schedule: str | None = None, total_steps: int = 1000,
                 domain_hidden: Sequence[int] = (64,), mmd_multipliers: Sequence[float] =
                 MMD_MULTIPLIERS, seed: int = 0, **kwargs):
        checks.model(encoder, "encoder")
        checks.model(classifier, "classifier")
        checks.one_of("method", method, METHODS)
        weight = checks.number("weight", weight, low=0.0)
        if schedule is None:
            schedule = "ganin" if method == "dann" else "constant"
        if schedule not in SCHEDULES:
            raise ValueError(f"schedule must be one of {SCHEDULES}, got {schedule!r}")
        total_steps = checks.int_at_least("total_steps", total_steps)
        if (isinstance(domain_hidden, (str, bytes)) or not isinstance(domain_hidden, Sequence)
                or not all(isinstance(h, int) and not isinstance(h, bool) and h > 0
                           for h in domain_hidden)):
            raise ValueError(f"domain_hidden must be a sequence of positive ints, "
                             f"got {domain_hidden!r}")
        seed = checks.int_at_least("seed", seed, 0)
        mmd_loss(np.zeros((2, 1), np.float32), np.zeros((2, 1), np.float32),
                 multipliers=mmd_multipliers)  # validates multipliers
        kwargs.setdefault("name", f"{method}_adapter")
        super().__init__(**kwargs)
        self.encoder = encoder
        self.classifier = classifier
        self.method = method
        self.weight = weight
        self.schedule = schedule
        self.mmd_multipliers = tuple(float(m) for m in mmd_multipliers)
        self.reversal = GradientReversal(0.0, name="gradient_reversal")
        self.discriminator = (_domain_classifier(tuple(domain_hidden), seed)
                              if method == "dann" else None)
        self.total_steps = self.add_weight(
            shape=(), initializer=keras.initializers.Constant(float(total_steps)),
            trainable=False, name="total_steps", aggregation="only_first_replica")
        self.ce = keras.losses.SparseCategoricalCrossentropy(from_logits=True)
        self.bce = keras.losses.BinaryCrossentropy(from_logits=True)
        self.trackers = {name: keras.metrics.Mean(name=name)
                          for name in ("loss", "class_loss", "align_loss", "lambda")}
        if self.discriminator is not None:
            # compute_output_shape works for every built encoder, Sequential included.
            out_shape = encoder.compute_output_shape(encoder.input_shape)
            n_features = int(np.prod(out_shape[1:]))
            self.discriminator.build((None, n_features))
        # Every variable exists now. Saying so stops Keras from "building" the model on a
        # data batch under a tf.distribute strategy: our batches are ((xs, ys), xt), not x.
        self.reversal.built = True
        self.built = True

    # Keras plumbing ------------------------------------------------------------------------
    def call(self, inputs, training=False):
        return self.classifier(self.encoder(inputs, training=training), training=training)

    @property
    def metrics(self):
        return list(self.trackers.values())

    def set_total_steps(self, steps: int) -> None:
        """Set the length of training that the schedule's progress ``p`` is measured against."""
        self.total_steps.assign(float(checks.int_at_least("steps", steps)))

    def adaptation_weight(self, step):
        """``lambda`` at optimizer step ``step`` (a tensor or a number)."""
        ops = keras.ops
        if self.schedule == "constant":
            return ops.cast(self.weight, "float32") + 0.0 * ops.cast(step, "float32")
        progress = ops.cast(step, "float32") / ops.cast(self.total_steps, "float32")
        return self.weight * ganin_lambda(progress)

    # Training -----------------------------------------------------------------------------
    def objective(self, data, training=True):
        """``(class_loss, align_loss, extra, lambda)``: the training objective is
        ``class_loss + extra``; ``align_loss`` is the unweighted alignment term (DANN: the
        domain classifier's cross-entropy; CORAL/MMD: the distance between the batches)."""
        ops = keras.ops
        (xs, ys), xt = data
        fs = self.encoder(xs, training=training)
        logits = self.classifier(fs, training=training)
        class_loss = self.ce(ys, logits)
        lam = self.adaptation_weight(self.optimizer.iterations)
        if self.method == "source_only":
            zero = class_loss * 0.0
            return class_loss, zero, zero, lam
        ft = self.encoder(xt, training=training)
        if len(fs.shape) > 2:  # convolutional features: align them as flat vectors
            fs = ops.reshape(fs, (ops.shape(fs)[0], -1))
            ft = ops.reshape(ft, (ops.shape(ft)[0], -1))
        if self.discriminator is not None:  # DANN
            feats = ops.concatenate([fs, ft], axis=0)
            d_logits = self.discriminator(self.reversal(feats, lam=lam), training=training)
            labels = ops.concatenate([ops.zeros((ops.shape(fs)[0], 1)),
                                      ops.ones((ops.shape(ft)[0], 1))], axis=0)
            # The reversal layer applies -lambda to the gradient reaching the encoder, so the
            # domain classifier itself always learns at full strength.
            align = self.bce(labels, d_logits)
            return class_loss, align, align, lam
        align = (coral_loss(fs, ft) if self.method == "coral"
                 else mmd_loss(fs, ft, multipliers=self.mmd_multipliers))
        return class_loss, align, lam * align, lam

    def train_step(self, data):
        with tf.GradientTape() as tape:
            class_loss, align, extra, lam = self.objective(data)
            loss = class_loss + extra
            if self.losses:
                loss = loss + tf.add_n(self.losses)
            replicas = tf.distribute.get_strategy().num_replicas_in_sync
            scaled = loss / replicas if replicas > 1 else loss
        variables = self.trainable_variables
        grads = tape.gradient(scaled, variables)
        self.optimizer.apply_gradients(zip(grads, variables))
        for name, value in (("loss", loss), ("class_loss", class_loss),
                            ("align_loss", align), ("lambda", lam)):
            self.trackers[name].update_state(value)
        return {name: tracker.result() for name, tracker in self.trackers.items()}

    def test_step(self, data):
        x, y = data
        logits = self(x, training=False)
        loss = self.ce(y, logits)
        self.trackers["class_loss"].update_state(loss)
        return {"class_loss": self.trackers["class_loss"].result()}


# --------------------------------------------------------------------------------------------
# Data and training loops
# --------------------------------------------------------------------------------------------

def _check_source_target(xs: object, ys: object, xt: object) -> None:
    checks.xy(xs, ys, names=("x_source", "y_source"))
    checks.finite_array("x_target", xt, min_ndim=2)
    assert isinstance(xs, np.ndarray) and isinstance(xt, np.ndarray)
    if xs.shape[1:] != xt.shape[1:]:
        raise ValueError(f"x_target must have the source's sample shape {xs.shape[1:]}, "
                         f"got {xt.shape[1:]}")


def adaptation_dataset(x_source: np.ndarray, y_source: np.ndarray, x_target: np.ndarray, *,
                       batch_size: int = 64, seed: int = 0, shuffle: bool = True):
    """An endless ``tf.data`` stream of ``((x_source, y_source), x_target)`` batches, each
    domain shuffled with its own seeded order (chapter 05)."""
    _check_source_target(x_source, y_source, x_target)
    batch_size = checks.int_at_least("batch_size", batch_size)
    seed = checks.int_at_least("seed", seed, 0)

    def stream(arrays, offset):
        # Shuffle indices, not images: a shuffle buffer of 8,000 images copies 75 MB per epoch.
        n = len(arrays[0])
        tensors = tuple(tf.constant(a) for a in arrays)
        ds = tf.data.Dataset.range(n)
        if shuffle:
            ds = ds.shuffle(n, seed=seed + offset, reshuffle_each_iteration=True)
        ds = ds.repeat().batch(batch_size, drop_remainder=True)
        if len(tensors) == 1:
            return ds.map(lambda i: tf.gather(tensors[0], i))
        return ds.map(lambda i: tuple(tf.gather(t, i) for t in tensors))

    source = stream((x_source, y_source.astype(np.int64)), 0)
    target = stream((x_target,), 7919)
    return tf.data.Dataset.zip((source, target)).prefetch(2)


def _steps_per_execution(steps: int, wanted: int = 25) -> int:
    """Steps run inside one compiled call: fewer Python round trips, and it must divide
    ``steps`` exactly (Keras would otherwise overshoot)."""
    return math.gcd(steps, wanted)


def _check_validation(validation, x_source: np.ndarray):
    """``(x_val, y_val)`` of a ``validation=`` argument (or ``(None, None)``), with the
    source's sample shape."""
    x_val, y_val = checks.validation(validation)
    if x_val is not None and x_val.shape[1:] != x_source.shape[1:]:
        raise ValueError(f"validation images must have the source's sample shape "
                         f"{x_source.shape[1:]}, got {x_val.shape[1:]}")
    return x_val, y_val


def _check_budget(steps, stopping, x_val) -> tuple[int | None, engine.Stopping | None]:
    """Checked ``(steps, stopping)``: exactly one of the two, and a validation set for a
    stopping rule."""
    if stopping is not None:
        checks.instance("stopping", stopping, engine.Stopping)
        if steps is not None:
            raise ValueError("give steps or stopping, not both (pass steps=None with stopping)")
        checks.needs_validation(x_val, "stopping")
        return None, stopping
    if steps is None:
        raise ValueError("steps must be a positive int when no stopping rule is given")
    return checks.int_at_least("steps", steps), None


def _train(adapter: DomainAdapter, ds, *, steps: int | None, stopping: engine.Stopping | None,
           x_val: np.ndarray | None, y_val: np.ndarray | None) -> tuple[dict, int, float | None]:
    """Train a compiled ``adapter`` on the stream ``ds`` for ``steps``, or under ``stopping``
    (rounds on one stream: a run stopped at round r has taken exactly the first r x every
    batches; left at its best round). Returns (last training metrics, steps of the weights
    kept, their validation accuracy or None)."""
    if stopping is None:
        assert steps is not None
        hist = adapter.fit(ds, epochs=1, steps_per_epoch=steps, verbose=0, shuffle=False)
        val = None
        if x_val is not None and y_val is not None:
            val = train.accuracy(adapter, x_val, y_val)
        return {k: float(v[-1]) for k, v in hist.history.items()}, steps, val
    assert x_val is not None and y_val is not None
    hist, used, val_acc = engine.fit_to_rule(adapter, ds, stopping, x_val, y_val)
    return {k: float(v[-1]) for k, v in hist.history.items()}, used, val_acc


def fit_adapter(adapter, x_source: np.ndarray, y_source: np.ndarray, x_target: np.ndarray, *,
                steps: int | None = 300, batch_size: int = 64, lr: float = 1e-3,
                optimizer: str | object = "adam", seed: int | None = 0, strategy=None,
                validation: tuple[np.ndarray, np.ndarray] | None = None,
                stopping: engine.Stopping | None = None, verbose: int = 0):
    """Compile ``adapter`` (a :class:`DomainAdapter`, or a zero-argument builder of one) and
    train it for ``steps`` batches of ``batch_size`` source and ``batch_size`` target images
    (chapter 05). Returns the final training metrics as a one-row DataFrame.

    ``seed`` reseeds everything and turns on deterministic ops (``None`` skips); ``strategy``
    is a ``tf.distribute.Strategy`` under whose scope the adapter is compiled: build the
    adapter under the same scope, or pass a builder. ``batch_size`` is the global batch.

    ``validation=(x_val, y_val)`` is a *labelled target* validation set (target supervision,
    if only for model selection); the table then has ``val_accuracy``. With
    ``stopping=`` a :class:`tlutils.engine.Stopping` rule (and ``steps=None``) training runs
    in rounds on one data stream, scores the validation set after each and keeps the best
    round's weights; ``steps`` is then that round's step count. The schedule's progress
    ``p`` (DANN's ramp) is measured against the cap, ``stopping.max_steps``.
    """
    from tlutils.config import setup

    builder = None
    if callable(adapter) and not isinstance(adapter, DomainAdapter):
        builder = adapter
    elif not isinstance(adapter, DomainAdapter):
        raise ValueError(f"adapter must be a DomainAdapter or a builder of one, "
                         f"got {type(adapter).__name__}")
    _check_source_target(x_source, y_source, x_target)
    x_val, y_val = _check_validation(validation, x_source)
    steps, stopping = _check_budget(steps, stopping, x_val)
    total = stopping.max_steps if stopping is not None else steps
    every = stopping.every if stopping is not None else steps
    assert total is not None and every is not None
    execution = _steps_per_execution(every)
    batch_size = checks.int_at_least("batch_size", batch_size)
    if verbose not in (0, 1):
        raise ValueError(f"verbose must be 0 or 1, got {verbose!r}")
    if seed is not None:
        setup(checks.int_at_least("seed", seed, 0))
    strategy = strategy or tf.distribute.get_strategy()
    if not isinstance(strategy, tf.distribute.Strategy):
        raise ValueError(f"strategy must be a tf.distribute.Strategy, got {strategy!r}")
    with strategy.scope():
        if builder is not None:
            adapter = builder()
            if not isinstance(adapter, DomainAdapter):
                raise ValueError("adapter builder must return a DomainAdapter")
        adapter.compile(optimizer=train.make_optimizer(optimizer, lr),
                        steps_per_execution=execution)
    adapter.set_total_steps(total)
    ds = adaptation_dataset(x_source, y_source, x_target, batch_size=batch_size,
                            seed=0 if seed is None else seed)
    row, used, val = _train(adapter, ds, steps=steps, stopping=stopping, x_val=x_val,
                            y_val=y_val)
    if verbose:
        print(f"{adapter.method}: " + "  ".join(f"{k} {v:.4f}" for k, v in row.items()))
    extra = {} if val is None else {"val_accuracy": val}
    return pd.DataFrame([{"steps": used, **extra, **row}])


# --------------------------------------------------------------------------------------------
# Experiments and diagnostics
# --------------------------------------------------------------------------------------------

def _method_table(methods) -> dict[str, dict]:
    if isinstance(methods, Mapping):
        table = {name: dict(kw) for name, kw in methods.items()}
    elif (isinstance(methods, (list, tuple)) and methods
          and all(isinstance(m, str) for m in methods)):
        table = {m: {"method": m} for m in methods}
    else:
        raise ValueError(f"methods must be a non-empty list of method names or a dict of "
                         f"DomainAdapter settings, got {methods!r}")
    if not table:
        raise ValueError("methods must not be empty")
    for name, kw in table.items():
        kw.setdefault("method", name)
        if kw["method"] not in METHODS:
            raise ValueError(f"methods[{name!r}] has method {kw['method']!r}; "
                             f"expected one of {METHODS}")
    return table


def _weight_grids(weights, table: Mapping[str, dict]) -> dict[str, list[float]]:
    """Checked ``weights=``: entry name -> a grid of distinct alignment weights."""
    if weights is None:
        return {}
    if not isinstance(weights, Mapping) or not weights:
        raise ValueError(f"weights must be a non-empty dict entry name -> grid of alignment "
                         f"weights, got {weights!r}")
    grids = {}
    for name, grid in weights.items():
        if name not in table:
            raise ValueError(f"weights names {name!r}, which is not an entry of methods "
                             f"{sorted(table)}")
        if table[name]["method"] == "source_only":
            raise ValueError(f"weights[{name!r}]: a source_only entry has no alignment weight")
        grids[name] = checks.grid(f"weights[{name!r}]", grid, strict=False)
    return grids


def compare(parts: Callable[[int], tuple[keras.Model, keras.Model]], x_source: np.ndarray,
            y_source: np.ndarray, x_target: np.ndarray, x_test: np.ndarray, y_test: np.ndarray,
            *, methods: Sequence[str] | Mapping[str, Mapping[str, object]] = METHODS,
            seeds: Sequence[int] = (0, 1, 2), steps: int | None = 300, batch_size: int = 64,
            lr: float = 1e-3, optimizer: str = "adam",
            oracle: tuple[np.ndarray, np.ndarray] | None = None,
            validation: tuple[np.ndarray, np.ndarray] | None = None,
            stopping: engine.Stopping | None = None,
            weights: Mapping[str, Sequence[float]] | None = None, all_weights: bool = False,
            verbose: bool = False,
            keep: bool = False) -> pd.DataFrame | tuple[pd.DataFrame, dict[str, DomainAdapter]]:
    """Train every method for every seed on one adaptation task and score each on the target
    test set (chapter 05, "Cross-domain transfer"; ``benchmarks/bench_adapt.py``).

    ``parts(seed)`` returns a fresh ``(encoder, classifier)`` (e.g. :func:`cnn_parts`).
    ``methods`` is a list of :data:`METHODS` or a dict ``{name: DomainAdapter settings}``,
    e.g. ``{"dann": {"weight": 0.3}}``. ``oracle=(x_target_labelled, y_target_labelled)``
    adds ``target_oracle``: the same network trained on *labelled* target images, the upper
    bound. ``optimizer`` is ``"adam"``, ``"sgd"`` or ``"momentum"`` (SGD, 0.9), with learning
    rate ``lr``. Entries with equal settings share one compiled adapter, rewound for every
    seed by the comparison engine (:class:`tlutils.engine.Trainee`), so a run costs only its
    steps. Returns a tidy DataFrame ``method, seed, accuracy, seconds`` (and, with
    ``keep=True``, the dict of the last seed's trained adapters as well).

    By default every run takes the same ``steps``. For a comparison with stated model
    selection (section 5.1) give ``validation=(x_val, y_val)``, a small *labelled target*
    validation set disjoint from the test set (target supervision at selection time), and

    * ``stopping``: a :class:`tlutils.engine.Stopping` rule instead of ``steps`` (pass
      ``steps=None``): every run, the oracle's included, trains in rounds on one data
      stream, stops when validation accuracy stops improving and is scored at its best
      round. The schedule's progress ``p`` (DANN's ramp) is measured against the cap,
      ``stopping.max_steps``, so a run that stops early never reaches the end of the ramp;
    * ``weights``: a dict entry name -> grid of alignment weights. The entry runs at every
      weight of its grid for every seed; the weight with the best mean validation accuracy
      over seeds is chosen (the first of the grid on ties). The test set plays no part.

    With a validation set the table also has ``steps`` and ``val_accuracy`` after
    ``accuracy``; with ``weights`` a column ``weight`` after ``method`` (NaN for
    source-only entries) holds each run's weight, and the table holds the runs at the
    chosen weights, or (``all_weights=True``) every run with a boolean column ``chosen``.
    ``keep=True`` keeps the last seed's adapter at the chosen weight.
    """
    if not callable(parts):
        raise ValueError("parts must be callable as parts(seed) -> (encoder, classifier)")
    _check_source_target(x_source, y_source, x_target)
    checks.xy(x_test, y_test, names=("x_test", "y_test"))
    seeds = checks.seeds(seeds)
    x_val, y_val = _check_validation(validation, x_source)
    steps, stopping = _check_budget(steps, stopping, x_val)
    batch_size = checks.int_at_least("batch_size", batch_size)
    lr = checks.number("lr", lr, low=0.0, strict=True)
    checks.one_of("optimizer", optimizer, train.OPTIMIZERS)
    if not isinstance(all_weights, bool):
        raise ValueError(f"all_weights must be True or False, got {all_weights!r}")
    table = _method_table(methods)
    if oracle is not None:
        if not (isinstance(oracle, tuple) and len(oracle) == 2):
            raise ValueError("oracle must be a tuple (x_target_labelled, y_target_labelled)")
        _check_source_target(oracle[0], oracle[1], x_target)
        if "target_oracle" in table:
            raise ValueError("methods must not name an entry 'target_oracle' when oracle= is "
                             "given: compare adds that entry itself")
        table["target_oracle"] = {"method": "source_only"}
    grids = _weight_grids(weights, table)
    if grids:
        checks.needs_validation(x_val, "choosing weights")
    total = stopping.max_steps if stopping is not None else steps
    every = stopping.every if stopping is not None else steps
    assert total is not None and every is not None
    execution = _steps_per_execution(every)

    def trainee(settings: dict) -> engine.Trainee:
        def build(seed: int) -> keras.Model:
            encoder, classifier = parts(seed)
            return DomainAdapter(encoder, classifier, total_steps=total, seed=seed, **settings)

        def compile_(adapter: keras.Model) -> None:
            adapter.compile(optimizer=train.make_optimizer(optimizer, lr),
                            steps_per_execution=execution)

        return engine.Trainee(build, seeds, compile=compile_)

    rows: list[dict[str, Any]] = []
    kept: dict[str, DomainAdapter] = {}
    trainees: dict[str, engine.Trainee] = {}  # entries with equal settings share one graph
    for name, base in table.items():
        xs, ys = oracle if (oracle is not None and name == "target_oracle") else (x_source,
                                                                                  y_source)
        if name in grids:
            variants = [{**base, "weight": w} for w in grids[name]]
        else:
            variants = [base]
        entry: list[list[dict[str, Any]]] = []
        last: list[list[np.ndarray]] = []
        for settings in variants:
            key = repr(sorted(settings.items()))
            if key not in trainees:
                trainees[key] = trainee(settings)
            runs = []
            for seed in seeds:
                start = time.perf_counter()
                adapter = trainees[key].rewind(seed)
                ds = adaptation_dataset(xs, ys, x_target, batch_size=batch_size, seed=seed)
                _, used, val = _train(adapter, ds, steps=steps, stopping=stopping, x_val=x_val,
                                      y_val=y_val)
                row: dict[str, Any] = {"method": name}
                if grids:
                    row["weight"] = (float("nan") if settings["method"] == "source_only"
                                     else float(settings.get("weight", 1.0)))
                row.update(seed=seed, accuracy=train.accuracy(adapter, x_test, y_test))
                if val is not None:
                    row.update(steps=used, val_accuracy=val)
                row["seconds"] = time.perf_counter() - start
                runs.append(row)
            entry.append(runs)
            if keep:  # a copy: a later entry with the same settings retrains this adapter
                last.append(adapter.get_weights())
        # The choice: best mean validation accuracy over seeds, the first of the grid on ties.
        chosen = 0
        if len(entry) > 1:
            # Rounded: equal scores summed in another order must still tie.
            means = [round(float(np.mean([r["val_accuracy"] for r in runs])), 9)
                     for runs in entry]
            chosen = int(np.argmax(means))
        for i, runs in enumerate(entry):
            if all_weights and grids:
                for r in runs:
                    r["chosen"] = i == chosen
            if i == chosen or (all_weights and grids):
                rows.extend(runs)
        if keep:
            encoder, classifier = parts(seeds[-1])
            kept[name] = DomainAdapter(encoder, classifier, total_steps=total, seed=seeds[-1],
                                       **variants[chosen])
            kept[name].set_weights(last[chosen])
        if verbose:
            runs = entry[chosen]
            accs = [float(r["accuracy"]) for r in runs]
            where = f" (weight {variants[chosen]['weight']:g})" if name in grids else ""
            print(f"{name:<16} target accuracy {np.mean(accs):.3f} +/- {np.std(accs):.3f}"
                  f"{where}")
    results = pd.DataFrame(rows)
    return (results, kept) if keep else results


def a_distance(source_features: np.ndarray, target_features: np.ndarray, *, seed: int = 0,
               max_samples: int = 2000, C: float = 0.01) -> float:
    """Proxy A-distance ``2 (1 - 2 err)`` between two feature sets (Ben-David et al. 2010;
    chapter 05): ``err`` is the held-out error of a linear classifier trained to tell the
    source features from the target features. About 0 when the domains are indistinguishable,
    2 when a line separates them perfectly. Uses equal numbers from each side (at most
    ``max_samples``), half for training and half for testing. The classifier is an
    L2-regularised logistic regression on standardised features (inverse strength ``C``).
    """
    from sklearn.exceptions import ConvergenceWarning
    from sklearn.linear_model import LogisticRegression
    from sklearn.preprocessing import StandardScaler

    for name, f in (("source_features", source_features), ("target_features", target_features)):
        if not isinstance(f, np.ndarray) or f.ndim != 2 or len(f) < 4:
            raise ValueError(f"{name} must be a 2-D array of at least 4 feature vectors, "
                             f"got {getattr(f, 'shape', type(f).__name__)!r}")
    if source_features.shape[1] != target_features.shape[1]:
        raise ValueError(f"target_features must have {source_features.shape[1]} columns like "
                         f"source_features, got {target_features.shape[1]}")
    seed = checks.int_at_least("seed", seed, 0)
    max_samples = checks.int_at_least("max_samples", max_samples, 4)
    C = checks.number("C", C, low=0.0, strict=True)
    rng = np.random.default_rng(seed)
    n = min(len(source_features), len(target_features), max_samples)
    s = source_features[rng.permutation(len(source_features))[:n]]
    t = target_features[rng.permutation(len(target_features))[:n]]
    half = n // 2
    x_tr = np.concatenate([s[:half], t[:half]]).astype(np.float64)
    x_te = np.concatenate([s[half:], t[half:]]).astype(np.float64)
    y_tr = np.r_[np.zeros(half), np.ones(half)]
    y_te = np.r_[np.zeros(n - half), np.ones(n - half)]
    scaler = StandardScaler().fit(x_tr)
    clf = LogisticRegression(C=C, max_iter=500)
    with warnings.catch_warnings():  # near-separable domains: lbfgs may stop at max_iter
        warnings.simplefilter("ignore", ConvergenceWarning)
        clf.fit(scaler.transform(x_tr), y_tr)
    err = float(np.mean(clf.predict(scaler.transform(x_te)) != y_te))
    return 2.0 * (1.0 - 2.0 * min(err, 0.5))
