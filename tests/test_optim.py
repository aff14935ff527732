"""tlutils.optim: gradient descent by hand and optimizer traces (section 3.1)."""

from __future__ import annotations

import numpy as np
import pytest

import tlutils  # noqa: F401  (quiet TensorFlow first)
from tlutils import optim

tf = pytest.importorskip("tensorflow")


def quadratic(theta):
    """L = 0.5 * (4 a^2 + b^2): Hessian diag(4, 1), critical learning rate 0.5."""
    return 0.5 * (4.0 * theta[0] ** 2 + theta[1] ** 2)


def test_gradient_descent_is_the_update_rule():
    tr = optim.gradient_descent(quadratic, (1.0, 1.0), lr=0.1, steps=3)
    assert tr.thetas.shape == (4, 2) and tr.losses.shape == (4,)
    # theta_{t+1} = (1 - lr * h) theta_t per coordinate
    expected = np.array([[(1 - 0.4) ** t, (1 - 0.1) ** t] for t in range(4)])
    np.testing.assert_allclose(tr.thetas, expected, rtol=1e-5)
    assert tr.losses[0] == pytest.approx(2.5)
    assert not tr.diverged


def test_divergence_above_critical_rate():
    assert not optim.gradient_descent(quadratic, (1.0, 1.0), lr=0.49, steps=60).diverged
    tr = optim.gradient_descent(quadratic, (1.0, 1.0), lr=0.55, steps=500, max_loss=1e3)
    assert tr.diverged and len(tr.losses) < 501


def test_keras_sgd_equals_hand_written_descent():
    a = optim.gradient_descent(quadratic, (1.0, -2.0), lr=0.2, steps=5)
    b = optim.optimizer_trace(quadratic, (1.0, -2.0), "sgd", lr=0.2, steps=5)
    np.testing.assert_allclose(a.thetas, b.thetas, atol=1e-6)


def test_traces_use_the_one_optimizer_factory(monkeypatch):
    """optim builds its Keras optimizers with tlutils.train.make_optimizer, nothing else."""
    from tlutils import train

    built = []
    real = train.make_optimizer

    def spy(optimizer, lr, **kwargs):
        built.append((optimizer, lr))
        return real(optimizer, lr, **kwargs)

    monkeypatch.setattr(train, "make_optimizer", spy)
    optim.optimizer_trace(quadratic, (1.0, 1.0), "momentum", lr=0.05, steps=2)
    optim.softmax_regression(np.eye(2, dtype=np.float32), np.array([0, 1]), lr=0.1, steps=1,
                             optimizer="adam")
    assert built == [("momentum", 0.05), ("adam", 0.1)]
    assert not hasattr(optim, "make_optimizer")


def test_momentum_and_adam_move_differently_and_converge():
    traces = optim.compare_optimizers(quadratic, (1.0, 1.0),
                                      {"m": ("momentum", 0.05), "a": ("adam", 0.1)}, steps=150)
    assert set(traces) == {"m", "a"}
    assert not np.allclose(traces["m"].thetas[1:5], traces["a"].thetas[1:5])
    for tr in traces.values():
        assert tr.losses[-1] < 1e-2 * tr.losses[0]


def test_steps_to_and_table():
    tr = optim.gradient_descent(quadratic, (1.0, 1.0), lr=0.4, steps=40)
    reached = tr.steps_to(1e-3)
    assert reached is not None and tr.losses[reached] <= 1e-3 < tr.losses[reached - 1]
    assert tr.steps_to(-1.0) is None
    table = optim.traces_table({"gd": tr}, optimum=0.0, tol=1e-3)
    assert table.loc["gd", "steps to optimum+0.001"] == reached
    with pytest.raises(ValueError, match="target"):
        tr.steps_to("low")


def test_line_problem_closed_forms():
    p = optim.line_problem(n=30, slope=1.5, intercept=0.5, noise=0.0, seed=1)
    np.testing.assert_allclose(p.solution(), [1.5, 0.5], atol=1e-5)
    assert p.min_loss() == pytest.approx(0.0, abs=1e-10)
    eig = np.linalg.eigvalsh(p.hessian())
    assert p.critical_lr() == pytest.approx(2 / eig.max())
    theta = tf.Variable([0.3, -0.2])
    assert float(p.loss(theta)) == pytest.approx(float(p.loss_grid(np.array(0.3), np.array(-0.2))),
                                                 rel=1e-5)
    below = optim.gradient_descent(p.loss, (0.0, 0.0), lr=0.95 * p.critical_lr(), steps=50)
    above = optim.gradient_descent(p.loss, (0.0, 0.0), lr=1.05 * p.critical_lr(), steps=400)
    assert not below.diverged and above.diverged


def test_softmax_regression_learns_and_gd_matches_sgd():
    rng = np.random.default_rng(0)
    x = rng.normal(size=(60, 4)).astype(np.float32)
    y = (x[:, 0] > 0).astype(np.int64)
    params, hist = optim.softmax_regression(x, y, lr=0.5, steps=30)
    assert params["W"].shape == (4, 2) and hist.shape == (31,)
    assert hist[0] == pytest.approx(np.log(2), rel=1e-5) and hist[-1] < 0.5 * hist[0]
    acc = np.mean((x @ params["W"] + params["b"]).argmax(1) == y)
    assert acc > 0.9
    _, hist_sgd = optim.softmax_regression(x, y, lr=0.5, steps=30, optimizer="sgd")
    np.testing.assert_allclose(hist, hist_sgd, rtol=1e-5)


@pytest.mark.parametrize("kwargs, match", [
    ({"lr": 0}, "lr"), ({"lr": -1.0}, "lr"), ({"lr": True}, "lr"), ({"steps": 0}, "steps"),
    ({"steps": 2.5}, "steps"), ({"theta0": []}, "theta0"), ({"theta0": [[1.0]]}, "theta0"),
    ({"theta0": [np.nan, 1.0]}, "theta0"),
])
def test_gradient_descent_bad_input(kwargs, match):
    args = {"lr": 0.1, "steps": 3, "theta0": (1.0, 1.0)} | kwargs
    theta0 = args.pop("theta0")
    with pytest.raises(ValueError, match=match):
        optim.gradient_descent(quadratic, theta0, **args)


def test_other_bad_input():
    with pytest.raises(ValueError, match="loss_fn"):
        optim.gradient_descent("not callable", (1.0,), lr=0.1, steps=1)
    with pytest.raises(ValueError, match="kind"):
        optim.optimizer_trace(quadratic, (1.0, 1.0), "rmsprop", lr=0.1, steps=1)
    with pytest.raises(ValueError, match="lr"):
        optim.optimizer_trace(quadratic, (1.0, 1.0), "adam", lr=0.0, steps=1)
    with pytest.raises(ValueError, match="kind"):
        optim.compare_optimizers(quadratic, (1.0, 1.0), {"x": ("rmsprop", 0.1)}, steps=2)
    with pytest.raises(ValueError, match="settings"):
        optim.compare_optimizers(quadratic, (1.0, 1.0), {}, steps=2)
    with pytest.raises(ValueError, match="settings"):
        optim.compare_optimizers(quadratic, (1.0, 1.0), {"x": "sgd"}, steps=2)
    with pytest.raises(ValueError, match="traces"):
        optim.traces_table({}, optimum=0.0)
    with pytest.raises(ValueError, match="n"):
        optim.line_problem(n=1)
    with pytest.raises(ValueError, match="x_range"):
        optim.line_problem(x_range=(3.0, 0.0))
    with pytest.raises(ValueError, match="noise"):
        optim.line_problem(noise=-1.0)
    p = optim.line_problem()
    with pytest.raises(ValueError, match="w and b"):
        p.loss_grid(np.zeros(3), np.zeros(4))
    x = np.zeros((4, 3), np.float32)
    with pytest.raises(ValueError, match="y"):
        optim.softmax_regression(x, np.array([0.0, 1.0, 0.0, 1.0]), lr=0.1, steps=2)
    with pytest.raises(ValueError, match="optimizer"):
        optim.softmax_regression(x, np.array([0, 1, 0, 1]), lr=0.1, steps=2, optimizer="lbfgs")
    with pytest.raises(ValueError, match="num_classes"):
        optim.softmax_regression(x, np.array([0, 1, 0, 3]), lr=0.1, steps=2, num_classes=2)
