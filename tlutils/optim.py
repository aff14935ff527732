"""Gradient descent written out with ``tf.GradientTape``, and traces of Keras's optimizers on
the same problems (chapter 03, "Loss and gradient descent").

The update the source article gives is

.. math:: \\theta_{t+1} = \\theta_t - \\eta\\,\\nabla_\\theta L(\\theta_t).

:func:`gradient_descent` runs exactly that on any differentiable ``loss_fn(theta)`` and
records the path; :func:`optimizer_trace` runs a Keras optimizer (plain SGD, SGD with
momentum, Adam) on the same function so their paths can be compared. :class:`LineProblem`
is a two-parameter least-squares fit whose loss surface can be drawn and whose largest stable
learning rate, :math:`2/\\lambda_{\\max}(H)`, can be computed in closed form.
:func:`softmax_regression` trains a linear classifier with the chapter's hand-written
cross-entropy (:func:`tlutils.losses.cross_entropy`).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass

import numpy as np

__all__ = [
    "OPTIMIZERS",
    "LineProblem",
    "Trace",
    "compare_optimizers",
    "gradient_descent",
    "line_problem",
    "make_optimizer",
    "optimizer_trace",
    "softmax_regression",
    "traces_table",
]

#: Optimizer names :func:`make_optimizer` understands.
OPTIMIZERS = ("sgd", "momentum", "adam")


def _tf():
    import tensorflow as tf

    return tf


def _check_lr(lr: object) -> float:
    if not isinstance(lr, (int, float)) or isinstance(lr, bool) or not np.isfinite(lr) or lr <= 0:
        raise ValueError(f"lr must be a positive number, got {lr!r}")
    return float(lr)


def _check_steps(steps: object) -> int:
    if not isinstance(steps, int) or isinstance(steps, bool) or steps < 1:
        raise ValueError(f"steps must be a positive int, got {steps!r}")
    return steps


def _check_theta0(theta0: object) -> np.ndarray:
    try:
        arr = np.asarray(theta0, dtype=np.float32)
    except (TypeError, ValueError):
        raise ValueError(f"theta0 must be a 1-D sequence of numbers, got {theta0!r}") from None
    if arr.ndim != 1 or arr.size == 0 or not np.all(np.isfinite(arr)):
        raise ValueError(f"theta0 must be a non-empty 1-D vector of finite numbers, got {theta0!r}")
    return arr


@dataclass
class Trace:
    """The path of one optimisation run: ``thetas[t]`` and ``losses[t]`` before step ``t``
    (so ``len(losses) == steps + 1`` unless the run diverged and was stopped early)."""

    name: str
    lr: float
    thetas: np.ndarray
    losses: np.ndarray
    diverged: bool

    def steps_to(self, target: float) -> int | None:
        """The first step at which the loss is at most ``target``, or None if never."""
        if not isinstance(target, (int, float)) or isinstance(target, bool):
            raise ValueError(f"target must be a number, got {target!r}")
        hits = np.flatnonzero(self.losses <= target)
        return int(hits[0]) if hits.size else None


def _run(loss_fn: Callable, theta0: np.ndarray, steps: int, update: Callable, max_loss: float
         ) -> tuple[np.ndarray, np.ndarray, bool]:
    """Record ``theta`` and the loss before every update; stop early on divergence. One
    step (loss, gradient, update) is compiled with ``tf.function``: same arithmetic as
    eager mode, ~20x less Python overhead per step."""
    tf = _tf()
    theta = tf.Variable(theta0, dtype=tf.float32, name="theta")

    @tf.function(autograph=False)
    def step():
        with tf.GradientTape() as tape:
            loss = loss_fn(theta)
        before = tf.identity(theta)
        with tf.control_dependencies([before]):
            update(tape.gradient(loss, theta), theta)
        return before, loss

    thetas, losses = [], []
    diverged = False
    for t in range(steps + 1):
        if t < steps:
            before, loss = step()
        else:  # after the last update: just measure
            before, loss = tf.identity(theta), loss_fn(theta)
        value = float(loss)
        thetas.append(before.numpy())
        losses.append(value)
        if not np.isfinite(value) or value > max_loss:
            diverged = True
            break
    return np.stack(thetas), np.asarray(losses, dtype=np.float64), diverged


def gradient_descent(loss_fn: Callable, theta0: Sequence[float] | np.ndarray, *, lr: float,
                     steps: int, max_loss: float = 1e6, name: str = "gradient descent"
                     ) -> Trace:
    """Plain gradient descent from scratch (chapter 03): ``steps`` updates
    :math:`\\theta \\leftarrow \\theta - \\eta\\nabla L(\\theta)` with the gradient from
    ``tf.GradientTape``.

    ``loss_fn`` maps a float32 ``tf.Variable`` of ``theta0``'s shape to a scalar tensor. The
    run stops early, with ``diverged=True``, once the loss is not finite or exceeds
    ``max_loss``.
    """
    if not callable(loss_fn):
        raise ValueError("loss_fn must be callable as loss_fn(theta)")
    theta0 = _check_theta0(theta0)
    lr = _check_lr(lr)
    steps = _check_steps(steps)

    def update(grad, theta):
        theta.assign_sub(lr * grad)  # theta_{t+1} = theta_t - eta * grad L(theta_t)

    thetas, losses, diverged = _run(loss_fn, theta0, steps, update, max_loss)
    return Trace(name, lr, thetas, losses, diverged)


def make_optimizer(kind: str, lr: float, *, momentum: float = 0.9):
    """A fresh Keras optimizer by name: ``"sgd"``, ``"momentum"`` (SGD with ``momentum``) or
    ``"adam"`` (chapter 03)."""
    import keras

    lr = _check_lr(lr)
    if kind not in OPTIMIZERS:
        raise ValueError(f"kind must be one of {OPTIMIZERS}, got {kind!r}")
    if not isinstance(momentum, (int, float)) or not 0.0 <= momentum < 1.0:
        raise ValueError(f"momentum must be in [0, 1), got {momentum!r}")
    if kind == "sgd":
        return keras.optimizers.SGD(lr)
    if kind == "momentum":
        return keras.optimizers.SGD(lr, momentum=momentum)
    return keras.optimizers.Adam(lr)


def optimizer_trace(loss_fn: Callable, theta0: Sequence[float] | np.ndarray, kind: str, *,
                    lr: float, steps: int, max_loss: float = 1e6, name: str | None = None
                    ) -> Trace:
    """Run a Keras optimizer (``kind`` as in :func:`make_optimizer`) on ``loss_fn`` from
    ``theta0`` and record its path, like :func:`gradient_descent` (chapter 03)."""
    if not callable(loss_fn):
        raise ValueError("loss_fn must be callable as loss_fn(theta)")
    theta0 = _check_theta0(theta0)
    steps = _check_steps(steps)
    opt = make_optimizer(kind, lr)

    def update(grad, theta):
        opt.apply_gradients([(grad, theta)])

    thetas, losses, diverged = _run(loss_fn, theta0, steps, update, max_loss)
    return Trace(name or kind, float(lr), thetas, losses, diverged)


def compare_optimizers(loss_fn: Callable, theta0: Sequence[float] | np.ndarray,
                       settings: Mapping[str, tuple[str, float]], *, steps: int
                       ) -> dict[str, Trace]:
    """One :func:`optimizer_trace` per entry of ``settings`` (``{label: (kind, lr)}``), all
    from the same start for the same number of steps (chapter 03)."""
    if not isinstance(settings, Mapping) or not settings:
        raise ValueError(f"settings must be a non-empty mapping label -> (kind, lr), "
                         f"got {settings!r}")
    out = {}
    for label, value in settings.items():
        if not (isinstance(value, (tuple, list)) and len(value) == 2):
            raise ValueError(f"settings[{label!r}] must be a pair (kind, lr), got {value!r}")
        kind, lr = value
        out[label] = optimizer_trace(loss_fn, theta0, kind, lr=lr, steps=steps, name=label)
    return out


def traces_table(traces: Mapping[str, Trace], *, optimum: float, tol: float = 1e-3):
    """A table with one row per trace: learning rate, final loss, whether it diverged, and
    the first step at which the loss came within ``tol`` of ``optimum`` (chapter 03)."""
    import pandas as pd

    if not isinstance(traces, Mapping) or not traces:
        raise ValueError("traces must be a non-empty mapping of Trace objects")
    if not isinstance(tol, (int, float)) or tol <= 0:
        raise ValueError(f"tol must be a positive number, got {tol!r}")
    rows = []
    for label, tr in traces.items():
        if not isinstance(tr, Trace):
            raise ValueError(f"traces[{label!r}] must be a Trace, got {type(tr).__name__}")
        reached = tr.steps_to(optimum + tol)
        rows.append({"optimizer": label, "lr": tr.lr, "steps run": len(tr.losses) - 1,
                     "final loss": tr.losses[-1], "diverged": tr.diverged,
                     f"steps to optimum+{tol:g}": "never" if reached is None else reached})
    return pd.DataFrame(rows).set_index("optimizer")


@dataclass(frozen=True)
class LineProblem:
    """Fit :math:`\\hat y = w x + b` by least squares,
    :math:`L(w, b) = \\frac{1}{2N}\\sum_i (w x_i + b - y_i)^2` (chapter 03).

    A quadratic: its Hessian :math:`H` is constant, gradient descent converges exactly when
    :math:`\\eta < 2/\\lambda_{\\max}(H)`, and the loss surface can be drawn in 2-D.
    """

    x: np.ndarray
    y: np.ndarray

    def loss(self, theta):
        """The loss at ``theta = (w, b)``, as a differentiable TensorFlow scalar."""
        tf = _tf()
        x = tf.constant(self.x, tf.float32)
        y = tf.constant(self.y, tf.float32)
        residual = theta[0] * x + theta[1] - y
        return 0.5 * tf.reduce_mean(tf.square(residual))

    def loss_grid(self, w: np.ndarray, b: np.ndarray) -> np.ndarray:
        """The loss on a grid of ``w`` and ``b`` values of the same shape (NumPy, for contours)."""
        w = np.asarray(w, dtype=np.float64)
        b = np.asarray(b, dtype=np.float64)
        if w.shape != b.shape:
            raise ValueError(f"w and b must have the same shape, got {w.shape} and {b.shape}")
        res = w[..., None] * self.x + b[..., None] - self.y
        return 0.5 * np.mean(res ** 2, axis=-1)

    def hessian(self) -> np.ndarray:
        """:math:`H = \\frac{1}{N}\\sum_i [x_i, 1]^\\top [x_i, 1]`."""
        x = self.x.astype(np.float64)
        return np.array([[np.mean(x * x), np.mean(x)], [np.mean(x), 1.0]])

    def solution(self) -> np.ndarray:
        """The least-squares optimum ``(w*, b*)``."""
        a = np.stack([self.x, np.ones_like(self.x)], axis=1).astype(np.float64)
        return np.linalg.lstsq(a, self.y.astype(np.float64), rcond=None)[0]

    def min_loss(self) -> float:
        w, b = self.solution()
        return float(self.loss_grid(np.array(w), np.array(b)))

    def critical_lr(self) -> float:
        """:math:`2/\\lambda_{\\max}(H)`: gradient descent diverges above this learning rate."""
        return float(2.0 / np.linalg.eigvalsh(self.hessian()).max())


def line_problem(n: int = 40, *, slope: float = 2.0, intercept: float = -1.0,
                 noise: float = 0.5, x_range: tuple[float, float] = (0.0, 3.0), seed: int = 0
                 ) -> LineProblem:
    """Noisy points around ``y = slope * x + intercept`` with ``x`` uniform in ``x_range``
    (chapter 03's learning-rate explorer). Inputs away from zero make the loss surface a
    long, narrow valley, which is what separates the optimizers."""
    if not isinstance(n, int) or isinstance(n, bool) or n < 2:
        raise ValueError(f"n must be an int >= 2, got {n!r}")
    if not isinstance(noise, (int, float)) or noise < 0:
        raise ValueError(f"noise must be a non-negative number, got {noise!r}")
    if (not isinstance(x_range, (tuple, list)) or len(x_range) != 2
            or not x_range[0] < x_range[1]):
        raise ValueError(f"x_range must be a pair (low, high) with low < high, got {x_range!r}")
    if not isinstance(seed, int) or seed < 0:
        raise ValueError(f"seed must be a non-negative int, got {seed!r}")
    rng = np.random.default_rng(seed)
    x = rng.uniform(x_range[0], x_range[1], n).astype(np.float32)
    y = (slope * x + intercept + noise * rng.normal(size=n)).astype(np.float32)
    return LineProblem(x, y)


def softmax_regression(x: np.ndarray, y: np.ndarray, *, lr: float, steps: int,
                       optimizer: str = "gd", num_classes: int | None = None
                       ) -> tuple[dict[str, np.ndarray], np.ndarray]:
    """Train a linear classifier :math:`z = xW + b` on all of ``(x, y)`` (full batch) with the
    hand-written :func:`tlutils.losses.cross_entropy` (chapter 03).

    ``optimizer="gd"`` applies the update :math:`\\theta \\leftarrow \\theta - \\eta\\nabla L`
    by hand; ``"sgd"``, ``"momentum"`` and ``"adam"`` use Keras's optimizers. Weights start
    at zero, so runs are deterministic. Returns ``({"W": ..., "b": ...}, losses)`` with the
    loss before every step and after the last.
    """
    from tlutils import losses as losses_mod

    tf = _tf()
    if not isinstance(x, np.ndarray) or x.ndim < 2 or len(x) == 0:
        raise ValueError(f"x must be a non-empty numpy array of samples, got {type(x).__name__}")
    if not isinstance(y, np.ndarray) or y.shape != (len(x),) or not np.issubdtype(y.dtype, np.integer):
        raise ValueError(f"y must be integer labels of shape ({len(x)},)")
    lr = _check_lr(lr)
    steps = _check_steps(steps)
    if optimizer != "gd" and optimizer not in OPTIMIZERS:
        raise ValueError(f"optimizer must be 'gd' or one of {OPTIMIZERS}, got {optimizer!r}")
    k = int(y.max()) + 1 if num_classes is None else num_classes
    if not isinstance(k, int) or k < 2 or y.min() < 0 or y.max() >= k:
        raise ValueError(f"num_classes must be an int >= 2 covering the labels, got {num_classes!r}")
    feats = tf.constant(x.reshape(len(x), -1), tf.float32)
    W = tf.Variable(tf.zeros((feats.shape[1], k)), name="W")
    b = tf.Variable(tf.zeros((k,)), name="b")
    opt = None if optimizer == "gd" else make_optimizer(optimizer, lr)
    labels = y.astype(np.int64)

    @tf.function(autograph=False)
    def step():
        with tf.GradientTape() as tape:
            loss = losses_mod.cross_entropy(labels, feats @ W + b)
        grads = tape.gradient(loss, [W, b])
        with tf.control_dependencies([loss]):
            if opt is None:  # theta <- theta - eta * grad, by hand
                ops = [var.assign_sub(lr * grad) for var, grad in zip((W, b), grads)]
            else:
                ops = [opt.apply_gradients(zip(grads, (W, b)))]
        with tf.control_dependencies([op for op in ops if op is not None]):
            return tf.identity(loss)

    history = [float(step()) for _ in range(steps)]
    history.append(float(losses_mod.cross_entropy(labels, feats @ W + b)))
    return {"W": W.numpy(), "b": b.numpy()}, np.asarray(history)
