"""Softmax cross-entropy written out by hand, naively and stably (chapter 03, "Loss and
gradient descent").

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

import numpy as np

__all__ = [
    "cross_entropy",
    "cross_entropy_grad",
    "cross_entropy_naive",
    "log_softmax",
    "logsumexp",
    "softmax_naive",
]

_REDUCTIONS = ("mean", "sum", "none")


def _tf():
    import tensorflow as tf

    return tf


def _as_logits(logits):
    tf = _tf()
    if isinstance(logits, (list, tuple)):
        logits = np.asarray(logits, dtype=np.float32)
    if isinstance(logits, np.ndarray):
        if not np.issubdtype(logits.dtype, np.floating):
            logits = logits.astype(np.float32)
        logits = tf.convert_to_tensor(logits)
    if not tf.is_tensor(logits) or not logits.dtype.is_floating:
        raise ValueError(f"logits must be a float array or tensor, got {type(logits).__name__}")
    if logits.shape.rank is None or logits.shape.rank < 1 or logits.shape[-1] in (None, 0):
        raise ValueError(f"logits must have a non-empty class axis, got shape {logits.shape}")
    return logits


def _check_reduction(reduction: str) -> None:
    if reduction not in _REDUCTIONS:
        raise ValueError(f"reduction must be one of {_REDUCTIONS}, got {reduction!r}")


def _target_probs(labels, logits):
    """One-hot (or soft) targets with ``logits``' shape and dtype, from integer labels or
    from targets that already have that shape."""
    tf = _tf()
    n_classes = int(logits.shape[-1])
    lab = labels.numpy() if tf.is_tensor(labels) else np.asarray(labels)
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


def _reduce(per_example, reduction: str):
    tf = _tf()
    if reduction == "mean":
        return tf.reduce_mean(per_example)
    if reduction == "sum":
        return tf.reduce_sum(per_example)
    return per_example


def softmax_naive(logits):
    """:math:`e^{z_c} / \\sum_k e^{z_k}` computed literally (chapter 03). Overflows to
    ``inf / inf = nan`` once a logit passes ~88.7 in float32: kept to show why not to."""
    tf = _tf()
    z = _as_logits(logits)
    e = tf.exp(z)
    return e / tf.reduce_sum(e, axis=-1, keepdims=True)


def logsumexp(logits):
    """:math:`\\log\\sum_k e^{z_k} = m + \\log\\sum_k e^{z_k - m}` with :math:`m = \\max_k z_k`,
    over the last axis (chapter 03). Finite for any finite logits."""
    tf = _tf()
    z = _as_logits(logits)
    m = tf.stop_gradient(tf.reduce_max(z, axis=-1, keepdims=True))
    return tf.squeeze(m, -1) + tf.math.log(tf.reduce_sum(tf.exp(z - m), axis=-1))


def log_softmax(logits):
    """Numerically stable :math:`\\log\\hat y_c = z_c - \\operatorname{logsumexp}(z)` over the
    last axis (chapter 03)."""
    z = _as_logits(logits)
    return z - logsumexp(z)[..., None]


def cross_entropy_naive(labels, logits, *, reduction: str = "mean"):
    """The article's formula taken literally: softmax first, then ``log`` (chapter 03).
    Returns ``inf`` or ``nan`` for large logits; see :func:`cross_entropy`.

    ``labels`` are integer classes (shape ``logits.shape[:-1]``) or one-hot / probability
    rows (shape ``logits.shape``). ``reduction`` is ``"mean"``, ``"sum"`` or ``"none"``.
    """
    tf = _tf()
    _check_reduction(reduction)
    z = _as_logits(logits)
    y = _target_probs(labels, z)
    p = softmax_naive(z)
    # 0 * log(p) is taken as 0 where y is 0, as in the formula's sum over classes.
    terms = tf.where(y > 0, y * tf.math.log(p), tf.zeros_like(p))
    return _reduce(-tf.reduce_sum(terms, axis=-1), reduction)


def cross_entropy(labels, logits, *, reduction: str = "mean"):
    """Softmax cross-entropy from logits via :func:`log_softmax` (chapter 03):
    :math:`L = -\\frac{1}{N}\\sum_i\\sum_c y_{ic}(z_{ic} - \\operatorname{logsumexp}(z_i))`.

    Equal to Keras's ``SparseCategoricalCrossentropy(from_logits=True)`` (integer labels) or
    ``CategoricalCrossentropy(from_logits=True)`` (one-hot rows) to float32 rounding.
    ``reduction`` is ``"mean"``, ``"sum"`` or ``"none"`` (one loss per example).
    """
    tf = _tf()
    _check_reduction(reduction)
    z = _as_logits(logits)
    y = _target_probs(labels, z)
    # -log yhat = logsumexp(z) - z, written this way round so a zero loss is +0.0, not -0.0
    return _reduce(tf.reduce_sum(y * (logsumexp(z)[..., None] - z), axis=-1), reduction)


def cross_entropy_grad(labels, logits):
    """The gradient of the *summed* cross-entropy with respect to the logits,
    :math:`\\partial L / \\partial z_{ic} = \\hat y_{ic} - y_{ic}` (chapter 03). Divide by
    :math:`N` for the mean."""
    tf = _tf()
    z = _as_logits(logits)
    y = _target_probs(labels, z)
    return tf.exp(log_softmax(z)) - y
