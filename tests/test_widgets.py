"""tlutils.widgets: the learning-rate explorer and its static figures (chapter 03)."""

from __future__ import annotations

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pytest  # noqa: E402

import tlutils  # noqa: E402,F401  (quiet TensorFlow first)
from tlutils import optim, widgets  # noqa: E402

pytest.importorskip("ipywidgets")


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


def test_render_png_is_png_and_deterministic(problem):
    a = widgets.render_png(problem, 0.2, steps=5)
    assert a[:8] == b"\x89PNG\r\n\x1a\n"
    assert a == widgets.render_png(problem, 0.2, steps=5)


def test_explorer_returns_figure_and_live_widget(problem):
    plt.close("all")
    ex = widgets.lr_explorer(problem, lrs={"small": 0.01, "good": 0.3}, steps=5)
    assert ex.lr == 0.3 and len(ex.figure.axes) == 2
    slider, image = ex.widget.children
    assert slider.value == pytest.approx(0.3)
    assert repr(ex.widget) == "LearningRateExplorer(lr=0.3, steps=5)"
    before = image.value
    slider.value = 0.02  # what dragging the slider does: the picture is redrawn
    assert image.value != before and image.value[:4] == b"\x89PNG"
    assert plt.get_fignums() == [ex.figure.number]  # the widget's pictures are not pyplot figures
    plt.close("all")


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
    with pytest.raises(ValueError, match="traces"):
        widgets.traces_figure(problem, {"x": np.zeros(3)})
    plt.close("all")
