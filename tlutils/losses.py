"""Softmax cross-entropy written out by hand, naively and stably (section 3.1, "Loss
minimisation, cross-entropy and gradient descent").

The source article's loss is

.. math:: L(\\theta) = -\\frac{1}{N}\\sum_{i=1}^{N}\\sum_{c=1}^{C} y_{ic}\\log\\hat y_{ic}(\\theta),
   \\qquad \\hat y_{ic} = \\frac{e^{z_{ic}}}{\\sum_k e^{z_{ik}}},

with logits :math:`z`. Computing :math:`\\hat y` first and taking its log afterwards
(:func:`cross_entropy_naive`) overflows for logits above ~88 in float32 and underflows to
``log(0)`` for very negative ones. :func:`log_softmax` uses the log-sum-exp identity
:math:`\\log\\hat y_{ic} = z_{ic} - m_i - \\log\\sum_k e^{z_{ik} - m_i}` with
:math:`m_i = \\max_k z_{ik}`, which never exponentiates a positive number.
:func:`cross_entropy` built on it agrees with Keras's
``SparseCategoricalCrossentropy(from_logits=True)``.

Every function takes NumPy arrays or tensors and returns TensorFlow tensors, so it can be
differentiated with ``tf.GradientTape``.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import tensorflow as tf
from numpy.typing import ArrayLike

from tlutils import checks

__all__ = [
    "REDUCTIONS",
    "cross_entropy",
    "cross_entropy_grad",
    "cross_entropy_naive",
    "log_softmax",
    "logsumexp",
    "softmax_naive",
]

#: What ``reduction`` may be: a mean or a sum over examples, or one loss per example.
REDUCTIONS = ("mean", "sum", "none")


def _logits(logits: ArrayLike | tf.Tensor) -> tf.Tensor:
    """``logits`` as a floating-point tensor with a non-empty class axis (the last)."""
    z: Any = logits
    if isinstance(z, (list, tuple)):
        z = np.asarray(z, dtype=np.float32)
    if isinstance(z, np.ndarray):
        z = tf.convert_to_tensor(z if np.issubdtype(z.dtype, np.floating)
                                 else z.astype(np.float32))
    if not tf.is_tensor(z) or not z.dtype.is_floating:
        raise ValueError(f"logits must be a float array or tensor, got {type(logits).__name__}")
    if z.shape.rank is None or z.shape.rank < 1 or z.shape[-1] in (None, 0):
        raise ValueError(f"logits must have a non-empty class axis, got shape {z.shape}")
    return z


def _targets(labels: ArrayLike | tf.Tensor, logits: tf.Tensor) -> tf.Tensor:
    """``labels`` as one-hot (or soft) targets with ``logits``' shape and dtype, from integer
    labels or from targets that already have that shape."""
    n_classes = int(logits.shape[-1])
    lab = np.asarray(labels)  # a tensor's values, or the labels given
    if lab.ndim == logits.shape.rank - 1:  # integer labels
        if lab.size and not np.issubdtype(lab.dtype, np.integer):
            if not np.all(np.mod(lab, 1) == 0):
                raise ValueError("labels must be integer class indices or one-hot/probability "
                                 "rows with the logits' shape")
        if tuple(lab.shape) != tuple(logits.shape[:-1]):
            raise ValueError(f"labels has shape {lab.shape}, expected {tuple(logits.shape[:-1])}")
        if lab.size and (lab.min() < 0 or lab.max() >= n_classes):
            raise ValueError(f"labels must be class indices in [0, {n_classes}), "
                             f"got values from {lab.min()} to {lab.max()}")
        return tf.one_hot(lab.astype(np.int64), n_classes, dtype=logits.dtype)
    if tuple(lab.shape) != tuple(logits.shape):
        raise ValueError(f"labels has shape {lab.shape}; give integer labels of shape "
                         f"{tuple(logits.shape[:-1])} or one-hot rows of shape "
                         f"{tuple(logits.shape)}")
    if lab.size and (lab.min() < 0 or not np.allclose(lab.sum(-1), 1.0, atol=1e-4)):
        raise ValueError("labels given as rows must be probabilities (non-negative, summing to 1)")
    return tf.convert_to_tensor(lab, dtype=logits.dtype)


def _reduce(per_example: tf.Tensor, reduction: str) -> tf.Tensor:
    if reduction == "mean":
        return tf.reduce_mean(per_example)
    if reduction == "sum":
        return tf.reduce_sum(per_example)
    return per_example


def _logsumexp(z: tf.Tensor) -> tf.Tensor:
    m = tf.stop_gradient(tf.reduce_max(z, axis=-1, keepdims=True))
    return tf.squeeze(m, -1) + tf.math.log(tf.reduce_sum(tf.exp(z - m), axis=-1))


def _softmax_naive(z: tf.Tensor) -> tf.Tensor:
    e = tf.exp(z)
    return e / tf.reduce_sum(e, axis=-1, keepdims=True)


def softmax_naive(logits: ArrayLike | tf.Tensor) -> tf.Tensor:
    """:math:`e^{z_c} / \\sum_k e^{z_k}` computed literally (section 3.1). Overflows to
    ``inf / inf = nan`` once a logit passes ~88.7 in float32: kept to show why not to."""
    return _softmax_naive(_logits(logits))


def logsumexp(logits: ArrayLike | tf.Tensor) -> tf.Tensor:
    """:math:`\\log\\sum_k e^{z_k} = m + \\log\\sum_k e^{z_k - m}` with :math:`m = \\max_k z_k`,
    over the last axis (section 3.1, "Why the literal formula overflows"). Finite for any
    finite logits."""
    return _logsumexp(_logits(logits))


def log_softmax(logits: ArrayLike | tf.Tensor) -> tf.Tensor:
    """Numerically stable :math:`\\log\\hat y_c = z_c - \\operatorname{logsumexp}(z)` over the
    last axis (section 3.1)."""
    z = _logits(logits)
    return z - _logsumexp(z)[..., None]


def cross_entropy_naive(labels: ArrayLike | tf.Tensor, logits: ArrayLike | tf.Tensor, *,
                        reduction: str = "mean") -> tf.Tensor:
    """The article's formula taken literally: softmax first, then ``log`` (section 3.1,
    "Cross-entropy, from the article's formula to code"). Returns ``inf`` or ``nan`` for
    large logits; see :func:`cross_entropy`.

    ``labels`` are integer classes (shape ``logits.shape[:-1]``) or one-hot / probability
    rows (shape ``logits.shape``). ``reduction`` is ``"mean"``, ``"sum"`` or ``"none"``.
    """
    checks.one_of("reduction", reduction, REDUCTIONS)
    z = _logits(logits)
    y = _targets(labels, z)
    p = _softmax_naive(z)
    # 0 * log(p) is taken as 0 where y is 0, as in the formula's sum over classes.
    terms = tf.where(y > 0, y * tf.math.log(p), tf.zeros_like(p))
    return _reduce(-tf.reduce_sum(terms, axis=-1), reduction)


def cross_entropy(labels: ArrayLike | tf.Tensor, logits: ArrayLike | tf.Tensor, *,
                  reduction: str = "mean") -> tf.Tensor:
    """Softmax cross-entropy from logits via :func:`log_softmax` (section 3.1):
    :math:`L = -\\frac{1}{N}\\sum_i\\sum_c y_{ic}(z_{ic} - \\operatorname{logsumexp}(z_i))`.

    Equal to Keras's ``SparseCategoricalCrossentropy(from_logits=True)`` (integer labels) or
    ``CategoricalCrossentropy(from_logits=True)`` (one-hot rows) to float32 rounding.
    ``reduction`` is ``"mean"``, ``"sum"`` or ``"none"`` (one loss per example).
    """
    checks.one_of("reduction", reduction, REDUCTIONS)
    z = _logits(logits)
    y = _targets(labels, z)
    # -log yhat = logsumexp(z) - z, written this way round so a zero loss is +0.0, not -0.0
    return _reduce(tf.reduce_sum(y * (_logsumexp(z)[..., None] - z), axis=-1), reduction)


def cross_entropy_grad(labels: ArrayLike | tf.Tensor, logits: ArrayLike | tf.Tensor
                       ) -> tf.Tensor:
    """The gradient of the *summed* cross-entropy with respect to the logits,
    :math:`\\partial L / \\partial z_{ic} = \\hat y_{ic} - y_{ic}` (section 3.1, "The gradient
    of cross-entropy"). Divide by :math:`N` for the mean."""
    z = _logits(logits)
    y = _targets(labels, z)
    return tf.exp(z - _logsumexp(z)[..., None]) - y
