"""tlutils.losses: hand-written softmax cross-entropy (chapter 03)."""

from __future__ import annotations

import numpy as np
import pytest

import tlutils  # noqa: F401  (quiet TensorFlow first)
from tlutils import losses

tf = pytest.importorskip("tensorflow")
keras = pytest.importorskip("keras")


def _logits(n=16, c=5, scale=3.0, seed=0):
    rng = np.random.default_rng(seed)
    return (scale * rng.normal(size=(n, c))).astype(np.float32), rng.integers(0, c, n)


def test_matches_keras_sparse_and_categorical():
    z, y = _logits()
    ref = keras.losses.SparseCategoricalCrossentropy(from_logits=True, reduction=None)(y, z)
    ours = losses.cross_entropy(y, z, reduction="none")
    np.testing.assert_allclose(ours.numpy(), np.asarray(ref), atol=1e-6)
    onehot = np.eye(5, dtype=np.float32)[y]
    ref_cat = keras.losses.CategoricalCrossentropy(from_logits=True)(onehot, z)
    assert abs(float(losses.cross_entropy(onehot, z)) - float(ref_cat)) < 1e-6


def test_reductions():
    z, y = _logits()
    per = losses.cross_entropy(y, z, reduction="none").numpy()
    assert per.shape == (16,)
    assert float(losses.cross_entropy(y, z, reduction="sum")) == pytest.approx(per.sum(), rel=1e-6)
    assert float(losses.cross_entropy(y, z)) == pytest.approx(per.mean(), rel=1e-6)


def test_naive_equals_stable_on_small_logits():
    z, y = _logits(scale=1.0)
    np.testing.assert_allclose(losses.cross_entropy_naive(y, z, reduction="none").numpy(),
                               losses.cross_entropy(y, z, reduction="none").numpy(), atol=1e-5)


def test_naive_overflows_where_stable_does_not():
    z = np.array([[2000.0, -1000.0, 500.0]], np.float32)
    assert np.isnan(float(losses.cross_entropy_naive([0], z)))
    assert np.isinf(float(losses.cross_entropy_naive([1], z)))
    assert float(losses.cross_entropy([0], z)) == pytest.approx(0.0, abs=1e-6)
    assert float(losses.cross_entropy([1], z)) == pytest.approx(3000.0)


def test_float16_overflow_threshold():
    z = tf.constant([[12.0, 0.0]], tf.float16)  # e^12 > 65504
    assert not np.isfinite(float(losses.cross_entropy_naive([0], z)))
    assert np.isfinite(float(losses.cross_entropy([0], z)))


def test_logsumexp_and_log_softmax():
    z = np.array([[1000.0, 1000.0], [0.0, np.log(3.0)]], np.float32)
    np.testing.assert_allclose(losses.logsumexp(z).numpy(), [1000 + np.log(2), np.log(4)],
                               rtol=1e-6)
    ls = losses.log_softmax(z).numpy()
    np.testing.assert_allclose(np.exp(ls).sum(-1), 1.0, rtol=1e-4)  # float32 near 1000
    np.testing.assert_allclose(losses.softmax_naive(z[1:]).numpy(), [[0.25, 0.75]], rtol=1e-6)


def test_gradient_formula_matches_tape():
    z, y = _logits()
    zt = tf.constant(z)
    with tf.GradientTape() as tape:
        tape.watch(zt)
        total = losses.cross_entropy(y, zt, reduction="sum")
    np.testing.assert_allclose(tape.gradient(total, zt).numpy(),
                               losses.cross_entropy_grad(y, zt).numpy(), atol=1e-6)


def test_soft_targets_accepted():
    z, y = _logits()
    smooth = 0.9 * np.eye(5, dtype=np.float32)[y] + 0.02
    ref = keras.losses.CategoricalCrossentropy(from_logits=True, label_smoothing=0.1)(
        np.eye(5, dtype=np.float32)[y], z)
    assert float(losses.cross_entropy(smooth, z)) == pytest.approx(float(ref), abs=1e-6)


@pytest.mark.parametrize("labels, match", [
    (np.array([0, 5]), "labels"),               # out of range
    (np.array([0, -1]), "labels"),               # negative
    (np.array([0, 1, 2]), "labels"),             # wrong length
    (np.array([[1.0, 0.0, 0.0]] * 2), "labels"),  # wrong row width
    (np.array([[0.5, 0.2, 0.1, 0.1, 0.0]] * 2), "labels"),  # rows not summing to 1
    (np.array([0.5, 1.0]), "labels"),            # non-integer classes
])
def test_bad_labels(labels, match):
    z = np.zeros((2, 5), np.float32)
    with pytest.raises(ValueError, match=match):
        losses.cross_entropy(labels, z)


def test_bad_logits_and_reduction():
    with pytest.raises(ValueError, match="logits"):
        losses.cross_entropy([0], "not logits")
    with pytest.raises(ValueError, match="logits"):
        losses.log_softmax(np.zeros((2, 0), np.float32))
    with pytest.raises(ValueError, match="reduction"):
        losses.cross_entropy([0], np.zeros((1, 3), np.float32), reduction="max")
    with pytest.raises(ValueError, match="reduction"):
        losses.cross_entropy_naive([0], np.zeros((1, 3), np.float32), reduction="avg")
