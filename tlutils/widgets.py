"""The learning-rate explorer: a slider that reruns gradient descent, plus the static figure
the built book shows (chapter 03, "Loss and gradient descent").

:func:`lr_figure` draws gradient-descent paths on :class:`tlutils.optim.LineProblem`'s loss
surface for a few learning rates, beside their loss curves. :func:`lr_explorer` returns that
figure for its default settings *and* an ipywidgets slider that redraws the picture for any
learning rate. The static figure is what a reader of the HTML book (no kernel) sees and what
the notebook tests compare; the slider only responds in a running Jupyter or Colab session.
"""

from __future__ import annotations

import io
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np

from tlutils import optim

__all__ = ["DEFAULT_LRS", "Explorer", "lr_explorer", "lr_figure", "render_png", "traces_figure"]

#: The three regimes for :class:`tlutils.optim.LineProblem` with the default data
#: (critical learning rate 2/lambda_max ~ 0.47).
DEFAULT_LRS: dict[str, float] = {"too small": 0.02, "good": 0.4, "divergent": 0.52}


def _check_problem(problem: object) -> None:
    if not isinstance(problem, optim.LineProblem):
        raise ValueError(f"problem must be a tlutils.optim.LineProblem, "
                         f"got {type(problem).__name__}")


def _check_lrs(lrs: object) -> dict[str, float]:
    if not isinstance(lrs, Mapping) or not lrs:
        raise ValueError(f"lrs must be a non-empty mapping label -> learning rate, got {lrs!r}")
    out = {}
    for label, lr in lrs.items():
        if not isinstance(lr, (int, float)) or isinstance(lr, bool) or not lr > 0:
            raise ValueError(f"lrs[{label!r}] must be a positive number, got {lr!r}")
        out[str(label)] = float(lr)
    return out


def _gd_traces(problem: optim.LineProblem, lrs: dict[str, float], steps: int,
               theta0: Sequence[float]) -> dict[str, optim.Trace]:
    return {label: optim.gradient_descent(problem.loss, theta0, lr=lr, steps=steps,
                                          name=label) for label, lr in lrs.items()}


def _draw(fig, problem: optim.LineProblem, traces: Mapping[str, optim.Trace],
          title: str) -> None:
    """Contours with one path per trace (left) and loss gaps per step (right)."""
    best = problem.solution()
    starts = np.stack([tr.thetas[0] for tr in traces.values()])
    lo = np.minimum(best, starts.min(0)) - 1.5
    hi = np.maximum(best, starts.max(0)) + 1.5
    w, b = np.meshgrid(np.linspace(lo[0], hi[0], 121), np.linspace(lo[1], hi[1], 121))
    ax_path, ax_loss = fig.subplots(1, 2)
    levels = problem.min_loss() + np.geomspace(0.01, 20, 12)
    ax_path.contour(w, b, problem.loss_grid(w, b), levels=levels, colors="0.75",
                    linewidths=0.7)
    ax_path.plot(*best, marker="*", color="k", markersize=11, linestyle="none",
                 label="optimum")
    gap_floor = 1e-6
    for i, (label, tr) in enumerate(traces.items()):
        colour = f"C{i}"
        name = f"{label} (η={tr.lr:g})"
        ax_path.plot(tr.thetas[:, 0], tr.thetas[:, 1], "-o", color=colour, markersize=2.5,
                     linewidth=1, label=name)
        gaps = np.maximum(tr.losses - problem.min_loss(), gap_floor)
        ax_loss.semilogy(np.arange(len(gaps)), gaps, color=colour,
                         label=name + ("  diverged" if tr.diverged else ""))
    ax_path.set_xlim(lo[0], hi[0])
    ax_path.set_ylim(lo[1], hi[1])
    ax_path.set_xlabel("slope w")
    ax_path.set_ylabel("intercept b")
    ax_path.set_title(title, fontsize=10)
    ax_path.legend(fontsize=7, loc="upper right")
    ax_loss.set_xlabel("step t")
    ax_loss.set_ylabel("L(θ_t) − L(θ*)")
    ax_loss.set_title(f"loss gap (critical η for GD = 2/λmax = {problem.critical_lr():.3f})",
                      fontsize=10)
    ax_loss.set_ylim(gap_floor, 1e4)
    ax_loss.legend(fontsize=7)
    fig.tight_layout()


def traces_figure(problem: optim.LineProblem, traces: Mapping[str, optim.Trace], *,
                  title: str = "optimizer paths"):
    """Paths of any optimisation runs on ``problem`` (e.g. from
    :func:`tlutils.optim.compare_optimizers`) over its loss contours, beside their loss gaps
    (chapter 03, "SGD, momentum and Adam")."""
    import matplotlib.pyplot as plt

    _check_problem(problem)
    if not isinstance(traces, Mapping) or not traces or not all(
            isinstance(t, optim.Trace) and t.thetas.shape[1:] == (2,) for t in traces.values()):
        raise ValueError("traces must be a non-empty mapping of 2-parameter Trace objects")
    fig = plt.figure(figsize=(9.0, 3.6))
    _draw(fig, problem, traces, title)
    return fig


def lr_figure(problem: optim.LineProblem, lrs: Mapping[str, float] | None = None, *,
              steps: int = 40, theta0: Sequence[float] = (-1.0, 3.0)):
    """A matplotlib figure of gradient descent on ``problem`` at each learning rate in
    ``lrs`` (``{label: lr}``, default :data:`DEFAULT_LRS`): paths on the loss contours and
    the loss gap :math:`L(\\theta_t) - L(\\theta^*)` per step (chapter 03)."""
    import matplotlib.pyplot as plt

    _check_problem(problem)
    lrs = _check_lrs(DEFAULT_LRS if lrs is None else lrs)
    optim._check_steps(steps)
    optim._check_theta0(theta0)
    fig = plt.figure(figsize=(9.0, 3.6))
    _draw(fig, problem, _gd_traces(problem, lrs, steps, theta0), "gradient-descent paths")
    return fig


def render_png(problem: optim.LineProblem, lr: float, *, steps: int = 40,
               theta0: Sequence[float] = (-1.0, 3.0)) -> bytes:
    """The explorer's picture for one learning rate, as PNG bytes, drawn without pyplot so
    nothing is displayed twice (chapter 03)."""
    from matplotlib.figure import Figure

    _check_problem(problem)
    lrs = _check_lrs({"gradient descent": lr})
    optim._check_steps(steps)
    optim._check_theta0(theta0)
    fig = Figure(figsize=(9.0, 3.6), dpi=72)
    _draw(fig, problem, _gd_traces(problem, lrs, steps, theta0), "gradient-descent path")
    buf = io.BytesIO()
    fig.savefig(buf, format="png", metadata={"Software": None})
    return buf.getvalue()


@dataclass
class Explorer:
    """What :func:`lr_explorer` returns: the static ``figure`` (default settings) and the live
    ``widget`` (a slider and a picture). Display the widget in its own cell."""

    figure: object
    widget: object
    lr: float


def _explorer_box(children, lr: float, steps: int):
    import ipywidgets

    class LearningRateExplorer(ipywidgets.VBox):
        # A short, deterministic text form: the default repr would spell out the PNG bytes.
        def __repr__(self) -> str:
            slider = self.children[0]
            return f"LearningRateExplorer(lr={slider.value:.3g}, steps={steps})"

    return LearningRateExplorer(children)


def lr_explorer(problem: optim.LineProblem, *, lrs: Mapping[str, float] | None = None,
                lr: float | None = None, steps: int = 40,
                theta0: Sequence[float] = (-1.0, 3.0),
                lr_range: tuple[float, float] = (1e-3, 1.0)) -> Explorer:
    """The learning-rate explorer (chapter 03).

    Returns an :class:`Explorer`: ``figure`` is :func:`lr_figure` for ``lrs`` (drawn at once,
    so the built book shows it), and ``widget`` is a log-scale learning-rate slider over
    ``lr_range`` that redraws gradient descent for the chosen rate, starting at ``lr``
    (default: the ``"good"`` entry of ``lrs``, else the first).
    """
    import ipywidgets

    _check_problem(problem)
    lrs = _check_lrs(DEFAULT_LRS if lrs is None else lrs)
    if (not isinstance(lr_range, (tuple, list)) or len(lr_range) != 2
            or not all(isinstance(v, (int, float)) and v > 0 for v in lr_range)
            or not lr_range[0] < lr_range[1]):
        raise ValueError(f"lr_range must be a pair (low, high) with 0 < low < high, "
                         f"got {lr_range!r}")
    if lr is None:
        lr = lrs.get("good", next(iter(lrs.values())))
    if not isinstance(lr, (int, float)) or isinstance(lr, bool) or not (
            lr_range[0] <= lr <= lr_range[1]):
        raise ValueError(f"lr must be a number within lr_range {tuple(lr_range)}, got {lr!r}")
    figure = lr_figure(problem, lrs, steps=steps, theta0=theta0)
    slider = ipywidgets.FloatLogSlider(
        value=float(lr), base=10, min=float(np.log10(lr_range[0])),
        max=float(np.log10(lr_range[1])), step=0.05, description="learning rate",
        continuous_update=False, readout_format=".3f",
        style={"description_width": "initial"}, layout=ipywidgets.Layout(width="420px"))
    image = ipywidgets.Image(value=render_png(problem, float(lr), steps=steps, theta0=theta0),
                             format="png", layout=ipywidgets.Layout(max_width="100%"))

    def redraw(change) -> None:
        image.value = render_png(problem, float(change["new"]), steps=steps, theta0=theta0)

    slider.observe(redraw, names="value")
    return Explorer(figure=figure, widget=_explorer_box([slider, image], float(lr), steps),
                    lr=float(lr))
