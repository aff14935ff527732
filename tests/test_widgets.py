"""tlutils.widgets: the learning-rate explorer, the live figures of chapters 04-05 and the
static gradient-descent figures (chapter 03)."""

from __future__ import annotations

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
import pytest  # noqa: E402

import tlutils  # noqa: E402,F401  (quiet TensorFlow first)
from tlutils import livefig, optim, widgets  # noqa: E402

pytest.importorskip("plotly")


@pytest.fixture(scope="module")
def problem():
    return optim.line_problem(n=20, seed=0)


def test_lr_figure_has_one_line_per_rate(problem):
    fig = widgets.lr_figure(problem, {"a": 0.05, "b": 0.3}, steps=5)
    paths, losses = fig.axes
    assert len(losses.get_lines()) == 2
    labels = [t.get_text() for t in losses.get_legend().get_texts()]
    assert labels[0].startswith("a (η=0.05)")
    plt.close(fig)


def test_divergent_rate_is_flagged(problem):
    fig = widgets.lr_figure(problem, {"too big": 1.5 * problem.critical_lr()}, steps=200)
    labels = [t.get_text() for t in fig.axes[1].get_legend().get_texts()]
    assert labels[0].endswith("diverged")
    plt.close(fig)


def test_lr_explorer_holds_one_run_per_rate(problem):
    crit = problem.critical_lr()
    open_before = plt.get_fignums()
    fig = widgets.lr_explorer(problem, lr_range=(0.05, 2 * crit), n=4, lr=0.3, steps=30)
    assert isinstance(fig, livefig.LiveFigure) and len(fig.states) == 4
    rates = [float(k) for k in fig.states]
    assert rates[0] == pytest.approx(0.05, rel=1e-2) and rates[-1] > crit
    assert fig.initial == min(fig.states, key=lambda k: abs(np.log(float(k) / 0.3)))
    assert "below the critical" in fig.captions[list(fig.states)[0]]
    assert "above the critical" in fig.captions[list(fig.states)[-1]]
    assert "diverged" in fig.captions[list(fig.states)[-1]]
    path, gaps = fig.states[list(fig.states)[0]]
    assert path.panel == 0 and gaps.panel == 1 and len(gaps.y) == 31
    assert plt.get_fignums() == open_before  # nothing drawn with pyplot


def _budget_runs():
    rows = [{"method": m, "budget": b, "seed": s, "accuracy": base + 0.01 * s + 0.002 * b}
            for m, base in (("scratch", 0.5), ("fine_tune", 0.8)) for b in (1, 10, 50)
            for s in range(3)]
    return pd.DataFrame(rows)


def test_budget_explorer_has_a_state_per_budget():
    fig = widgets.budget_explorer(_budget_runs(), zero_label=0.75)
    assert list(fig.states) == ["1", "10", "50"] and fig.initial == "10"
    assert "fine_tune +0.300" in fig.captions["10"]
    bars = [t for t in fig.states["10"] if isinstance(t, livefig.Bars)]
    assert [b.x for b in bars] == [["scratch"], ["fine_tune"]]
    assert bars[1].y[0] == pytest.approx(0.8 + 0.01 + 0.02)
    assert any(t.name == "source model, no target labels" for t in fig.background)


def test_drift_explorer_pictures_and_zero_label():
    rows = [{"drift": d, "strength": s, "method": m, "seed": k, "accuracy": 0.5 + 0.1 * i}
            for d, s in (("rotation", 0.0), ("rotation", 90.0), ("noise", 1.0))
            for i, m in enumerate(("scratch", "fine_tune")) for k in range(2)]
    results = pd.DataFrame(rows)
    pics = {("rotation", 0): np.zeros((4, 8)), ("rotation", 90): np.ones((4, 8)),
            ("noise", 1.0): np.full((4, 8), 0.5)}
    fig = widgets.drift_explorer(results, pictures=pics, zero_label={("noise", 1): 0.2})
    assert list(fig.states) == ["rotation 0", "rotation 90", "noise 1"]
    assert isinstance(fig.states["rotation 90"][0], livefig.Picture)
    assert any(t.name == "source model, no target labels" for t in fig.states["noise 1"])
    assert "fine_tune +0.100" in fig.captions["noise 1"]
    with pytest.raises(ValueError, match="pictures"):
        widgets.drift_explorer(results, pictures={("blur", 1.0): np.zeros((4, 4))})


def test_alignment_explorer_shows_a_collapse_as_a_point():
    rng = np.random.default_rng(0)
    spread = (rng.normal(size=(30, 6)), rng.normal(size=(30, 6)) + 2)
    collapsed = (np.ones((30, 6)), np.ones((30, 6)))
    acc = {"target accuracy": 0.5, "source accuracy": 0.9}
    fig = widgets.alignment_explorer({"0": spread, "20": collapsed},
                                     {"0": acc, "20": acc}, chance=0.1, max_points=10)
    source_pts = fig.states["20"][0]
    assert np.allclose(source_pts.x, 0) and np.allclose(source_pts.y, 0)
    assert len(fig.states["0"][0].x) == 10
    assert fig.panels[0].x_range[1] > 1
    with pytest.raises(ValueError, match="accuracy"):
        widgets.alignment_explorer({"0": spread}, {"5": acc})


def test_traces_figure(problem):
    traces = optim.compare_optimizers(problem.loss, (0.0, 0.0),
                                      {"SGD": ("sgd", 0.1), "Adam": ("adam", 0.1)}, steps=3)
    fig = widgets.traces_figure(problem, traces, title="t")
    assert fig.axes[0].get_title() == "t" and len(fig.axes[1].get_lines()) == 2
    plt.close(fig)


def test_bad_input(problem):
    with pytest.raises(ValueError, match="problem"):
        widgets.lr_figure("line", {"a": 0.1})
    with pytest.raises(ValueError, match="lrs"):
        widgets.lr_figure(problem, {})
    with pytest.raises(ValueError, match="lrs"):
        widgets.lr_figure(problem, {"a": -0.1})
    with pytest.raises(ValueError, match="steps"):
        widgets.lr_figure(problem, {"a": 0.1}, steps=0)
    with pytest.raises(ValueError, match="lr_range"):
        widgets.lr_explorer(problem, lr_range=(1.0, 0.1))
    with pytest.raises(ValueError, match="lr must"):
        widgets.lr_explorer(problem, lr=5.0)
    with pytest.raises(ValueError, match="n must"):
        widgets.lr_explorer(problem, n=1)
    with pytest.raises(ValueError, match="results"):
        widgets.budget_explorer(pd.DataFrame({"method": ["a"]}))
    with pytest.raises(ValueError, match="traces"):
        widgets.traces_figure(problem, {"x": np.zeros(3)})
    plt.close("all")


def test_alignment_projection_equals_a_full_svd():
    """The top-two-components shortcut gives the full SVD's coordinates (up to sign)."""
    rng = np.random.default_rng(0)
    fs = rng.standard_normal((60, 40)) + np.linspace(0, 3, 40)
    ft = rng.standard_normal((50, 40)) * 0.5
    fs[:, 0] += 4 * rng.standard_normal(60)  # clear leading directions
    ft[:, 1] += 2 * rng.standard_normal(50)
    ps, pt = widgets._pca2(fs, ft)
    both = np.concatenate([fs, ft]).astype(np.float64)
    centred = both - both.mean(0)
    _, _, vt = np.linalg.svd(centred, full_matrices=False)
    want = centred @ vt[:2].T
    got = np.concatenate([ps, pt])
    np.testing.assert_allclose(np.abs(got), np.abs(want), atol=1e-8)
