"""Gradient descent written out with ``tf.GradientTape``, and traces of Keras's optimizers on
the same problems (section 3.1, "Loss minimisation, cross-entropy and gradient descent").

The update the source article gives is

.. math:: \\theta_{t+1} = \\theta_t - \\eta\\,\\nabla_\\theta L(\\theta_t).

:func:`gradient_descent` runs exactly that on any differentiable ``loss_fn(theta)`` and
records the path; :func:`optimizer_trace` runs a Keras optimizer (plain SGD, SGD with
momentum, Adam; built by :func:`tlutils.train.make_optimizer`) on the same function so
their paths can be compared. :class:`LineProblem`
is a two-parameter least-squares fit whose loss surface can be drawn and whose largest stable
learning rate, :math:`2/\\lambda_{\\max}(H)`, can be computed in closed form.
:func:`softmax_regression` trains a linear classifier with the chapter's hand-written
cross-entropy (:func:`tlutils.losses.cross_entropy`).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd
import tensorflow as tf

from tlutils import checks, losses, train

__all__ = [
    "LineProblem",
    "LossFn",
    "Trace",
    "compare_optimizers",
    "gradient_descent",
    "line_problem",
    "optimizer_trace",
    "softmax_regression",
    "traces_table",
]

#: A differentiable loss: maps a float32 ``tf.Variable`` of parameters to a scalar tensor.
LossFn = Callable[[tf.Variable], tf.Tensor]


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
        target = checks.number("target", target)
        hits = np.flatnonzero(self.losses <= target)
        return int(hits[0]) if hits.size else None


def _run(loss_fn: LossFn, theta0: np.ndarray, steps: int,
         update: Callable[[tf.Tensor, tf.Variable], object], max_loss: float
         ) -> tuple[np.ndarray, np.ndarray, bool]:
    """Record ``theta`` and the loss before every update; stop early on divergence. One
    step (loss, gradient, update) is compiled with ``tf.function``: same arithmetic as
    eager mode, ~20x less Python overhead per step."""
    theta = tf.Variable(theta0, dtype=tf.float32, name="theta")

    @tf.function(autograph=False)
    def step() -> tuple[tf.Tensor, tf.Tensor]:
        with tf.GradientTape() as tape:
            loss = loss_fn(theta)
        before = tf.identity(theta)
        with tf.control_dependencies([before]):
            update(tape.gradient(loss, theta), theta)
        return before, loss

    thetas: list[np.ndarray] = []
    values: list[float] = []
    diverged = False
    for t in range(steps + 1):
        if t < steps:
            before, loss = step()
        else:  # after the last update: just measure
            before, loss = tf.identity(theta), loss_fn(theta)
        value = float(loss)
        thetas.append(before.numpy())
        values.append(value)
        if not np.isfinite(value) or value > max_loss:
            diverged = True
            break
    return np.stack(thetas), np.asarray(values, dtype=np.float64), diverged


def _start(loss_fn: object, theta0: object, steps: object, max_loss: object
           ) -> tuple[np.ndarray, int, float]:
    """The arguments every traced run shares, checked: start, steps and divergence bound."""
    if not callable(loss_fn):
        raise ValueError("loss_fn must be callable as loss_fn(theta)")
    return (checks.vector("theta0", theta0).astype(np.float32),
            checks.int_at_least("steps", steps),
            checks.number("max_loss", max_loss, low=0.0, strict=True))


def gradient_descent(loss_fn: LossFn, theta0: Sequence[float] | np.ndarray, *, lr: float,
                     steps: int, max_loss: float = 1e6, name: str = "gradient descent"
                     ) -> Trace:
    """Plain gradient descent from scratch (section 3.1, "Gradient descent by hand"):
    ``steps`` updates
    :math:`\\theta \\leftarrow \\theta - \\eta\\nabla L(\\theta)` with the gradient from
    ``tf.GradientTape``.

    ``loss_fn`` maps a float32 ``tf.Variable`` of ``theta0``'s shape to a scalar tensor. The
    run stops early, with ``diverged=True``, once the loss is not finite or exceeds
    ``max_loss``.
    """
    theta0, steps, max_loss = _start(loss_fn, theta0, steps, max_loss)
    lr = checks.number("lr", lr, low=0.0, strict=True)

    def update(grad: tf.Tensor, theta: tf.Variable) -> object:
        return theta.assign_sub(lr * grad)  # theta_{t+1} = theta_t - eta * grad L(theta_t)

    thetas, values, diverged = _run(loss_fn, theta0, steps, update, max_loss)
    return Trace(name, lr, thetas, values, diverged)


def _trace(loss_fn: LossFn, theta0: np.ndarray, kind: str, lr: float, steps: int,
           max_loss: float, name: str) -> Trace:
    opt = train.make_optimizer(kind, lr)

    def update(grad: tf.Tensor, theta: tf.Variable) -> object:
        return opt.apply_gradients([(grad, theta)])

    thetas, values, diverged = _run(loss_fn, theta0, steps, update, max_loss)
    return Trace(name, lr, thetas, values, diverged)


def optimizer_trace(loss_fn: LossFn, theta0: Sequence[float] | np.ndarray, kind: str, *,
                    lr: float, steps: int, max_loss: float = 1e6, name: str | None = None
                    ) -> Trace:
    """Run the Keras optimizer ``kind`` (``"sgd"``, ``"momentum"`` or ``"adam"``, built by
    :func:`tlutils.train.make_optimizer`) on ``loss_fn`` from ``theta0`` and record its path,
    like :func:`gradient_descent` (section 3.1, "SGD, momentum and Adam on the same
    problem")."""
    theta0, steps, max_loss = _start(loss_fn, theta0, steps, max_loss)
    checks.one_of("kind", kind, train.OPTIMIZERS)
    lr = checks.number("lr", lr, low=0.0, strict=True)
    return _trace(loss_fn, theta0, kind, lr, steps, max_loss, kind if name is None else name)


def compare_optimizers(loss_fn: LossFn, theta0: Sequence[float] | np.ndarray,
                       settings: Mapping[str, tuple[str, float]], *, steps: int
                       ) -> dict[str, Trace]:
    """One :func:`optimizer_trace` per entry of ``settings`` (``{label: (kind, lr)}``), all
    from the same start for the same number of steps (section 3.1, "SGD, momentum and Adam on
    the same problem")."""
    start, steps, max_loss = _start(loss_fn, theta0, steps, 1e6)
    if not isinstance(settings, Mapping) or not settings:
        raise ValueError(f"settings must be a non-empty mapping label -> (kind, lr), "
                         f"got {settings!r}")
    runs = []
    for label, value in settings.items():
        if not (isinstance(value, (tuple, list)) and len(value) == 2):
            raise ValueError(f"settings[{label!r}] must be a pair (kind, lr), got {value!r}")
        kind = checks.one_of(f"settings[{label!r}] kind", value[0], train.OPTIMIZERS)
        lr = checks.number(f"settings[{label!r}] lr", value[1], low=0.0, strict=True)
        runs.append((label, kind, lr))
    return {label: _trace(loss_fn, start, kind, lr, steps, max_loss, label)
            for label, kind, lr in runs}


def traces_table(traces: Mapping[str, Trace], *, optimum: float, tol: float = 1e-3
                 ) -> pd.DataFrame:
    """A table with one row per trace: learning rate, final loss, whether it diverged, and
    the first step at which the loss came within ``tol`` of ``optimum`` (section 3.1, "SGD,
    momentum and Adam on the same problem")."""
    if not isinstance(traces, Mapping) or not traces:
        raise ValueError("traces must be a non-empty mapping of Trace objects")
    optimum = checks.number("optimum", optimum)
    tol = checks.number("tol", tol, low=0.0, strict=True)
    rows = []
    for label, tr in traces.items():
        checks.instance(f"traces[{label!r}]", tr, Trace)
        reached = tr.steps_to(optimum + tol)
        rows.append({"optimizer": label, "lr": tr.lr, "steps run": len(tr.losses) - 1,
                     "final loss": tr.losses[-1], "diverged": tr.diverged,
                     f"steps to optimum+{tol:g}": "never" if reached is None else reached})
    return pd.DataFrame(rows).set_index("optimizer")


@dataclass(frozen=True)
class LineProblem:
    """Fit :math:`\\hat y = w x + b` by least squares,
    :math:`L(w, b) = \\frac{1}{2N}\\sum_i (w x_i + b - y_i)^2` (section 3.1,
    "Gradient descent by hand").

    A quadratic: its Hessian :math:`H` is constant, gradient descent converges exactly when
    :math:`\\eta < 2/\\lambda_{\\max}(H)`, and the loss surface can be drawn in 2-D.
    """

    x: np.ndarray
    y: np.ndarray

    def loss(self, theta: tf.Variable) -> tf.Tensor:
        """The loss at ``theta = (w, b)``, as a differentiable TensorFlow scalar."""
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
        """The loss at :meth:`solution`."""
        w, b = self.solution()
        return float(self.loss_grid(np.array(w), np.array(b)))

    def critical_lr(self) -> float:
        """:math:`2/\\lambda_{\\max}(H)`: gradient descent diverges above this learning rate."""
        return float(2.0 / np.linalg.eigvalsh(self.hessian()).max())


def line_problem(n: int = 40, *, slope: float = 2.0, intercept: float = -1.0,
                 noise: float = 0.5, x_range: tuple[float, float] = (0.0, 3.0), seed: int = 0
                 ) -> LineProblem:
    """Noisy points around ``y = slope * x + intercept`` with ``x`` uniform in ``x_range``
    (section 3.1, "The learning-rate explorer"). Inputs away from zero make the loss surface
    a long, narrow valley, which is what separates the optimizers."""
    n = checks.int_at_least("n", n, 2)
    slope = checks.number("slope", slope)
    intercept = checks.number("intercept", intercept)
    noise = checks.number("noise", noise, low=0.0)
    bounds = checks.vector("x_range", x_range)
    if len(bounds) != 2 or not bounds[0] < bounds[1]:
        raise ValueError(f"x_range must be a pair (low, high) with low < high, got {x_range!r}")
    rng = np.random.default_rng(checks.int_at_least("seed", seed, 0))
    x = rng.uniform(bounds[0], bounds[1], n).astype(np.float32)
    y = (slope * x + intercept + noise * rng.normal(size=n)).astype(np.float32)
    return LineProblem(x, y)


def softmax_regression(x: np.ndarray, y: np.ndarray, *, lr: float, steps: int,
                       optimizer: str = "gd", num_classes: int | None = None
                       ) -> tuple[dict[str, np.ndarray], np.ndarray]:
    """Train a linear classifier :math:`z = xW + b` on all of ``(x, y)`` (full batch) with the
    hand-written :func:`tlutils.losses.cross_entropy` (section 3.1, "The same comparison on
    a real classifier").

    ``optimizer="gd"`` applies the update :math:`\\theta \\leftarrow \\theta - \\eta\\nabla L`
    by hand; ``"sgd"``, ``"momentum"`` and ``"adam"`` use Keras's optimizers
    (:func:`tlutils.train.make_optimizer`). Weights start at zero, so runs are deterministic.
    Returns ``({"W": ..., "b": ...}, losses)`` with the loss before every step and after the
    last.
    """
    x, y = checks.xy(x, y)
    lr = checks.number("lr", lr, low=0.0, strict=True)
    steps = checks.int_at_least("steps", steps)
    checks.one_of("optimizer", optimizer, ("gd", *train.OPTIMIZERS))
    k = int(y.max()) + 1 if num_classes is None else checks.int_at_least("num_classes",
                                                                         num_classes, 2)
    if k < 2 or y.max() >= k:
        raise ValueError(f"num_classes must be an int >= 2 covering the labels, "
                         f"got {num_classes!r}")
    feats = tf.constant(x.reshape(len(x), -1), tf.float32)
    W = tf.Variable(tf.zeros((feats.shape[1], k)), name="W")
    b = tf.Variable(tf.zeros((k,)), name="b")
    opt = None if optimizer == "gd" else train.make_optimizer(optimizer, lr)
    labels = y.astype(np.int64)

    @tf.function(autograph=False)
    def step() -> tf.Tensor:
        with tf.GradientTape() as tape:
            loss = losses.cross_entropy(labels, feats @ W + b)
        grads = tape.gradient(loss, [W, b])
        with tf.control_dependencies([loss]):
            if opt is None:  # theta <- theta - eta * grad, by hand
                ops = [var.assign_sub(lr * grad) for var, grad in zip((W, b), grads)]
            else:
                ops = [opt.apply_gradients(zip(grads, (W, b)))]
        with tf.control_dependencies([op for op in ops if op is not None]):
            return tf.identity(loss)

    history = [float(step()) for _ in range(steps)]
    history.append(float(losses.cross_entropy(labels, feats @ W + b)))
    return {"W": W.numpy(), "b": b.numpy()}, np.asarray(history)
