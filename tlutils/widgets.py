"""Figures for exploring results: the learning-rate explorer of chapter 03 and the live
figures of chapters 04 and 05, plus the static gradient-descent figures.

:func:`lr_figure` draws gradient-descent paths on :class:`tlutils.optim.LineProblem`'s loss
surface for a few learning rates, beside their loss curves (matplotlib). The ``*_explorer``
functions return :class:`tlutils.livefig.LiveFigure` objects: the notebook computes the
results for a grid of settings, and the figure embeds them all with a slider that runs in
the reader's browser, in the built book (no kernel) as in Jupyter or Colab. Each has a
static image of its initial state for the PDF and for readers without JavaScript.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np

from tlutils import checks, optim
from tlutils.livefig import Bars, Contour, Line, LiveFigure, Panel, Picture, Trace

__all__ = ["DEFAULT_LRS", "alignment_explorer", "budget_explorer", "drift_explorer",
           "lr_explorer", "lr_figure", "traces_figure"]

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
    checks.int_at_least("steps", steps)
    checks.vector("theta0", theta0)
    fig = plt.figure(figsize=(9.0, 3.6))
    _draw(fig, problem, _gd_traces(problem, lrs, steps, theta0), "gradient-descent paths")
    return fig


def _check_range(name: str, value: object) -> tuple[float, float]:
    if (not isinstance(value, (tuple, list)) or len(value) != 2
            or not all(isinstance(v, (int, float)) and not isinstance(v, bool) and v > 0
                       for v in value)
            or not value[0] < value[1]):
        raise ValueError(f"{name} must be a pair (low, high) with 0 < low < high, "
                         f"got {value!r}")
    return float(value[0]), float(value[1])


def lr_explorer(problem: optim.LineProblem, *, lr_range: tuple[float, float] = (0.01, 0.6),
                n: int = 30, lr: float = 0.4, steps: int = 40,
                theta0: Sequence[float] = (-1.0, 3.0)) -> LiveFigure:
    """The learning-rate explorer (chapter 03, "Loss and gradient descent").

    Runs gradient descent on ``problem`` for ``n`` learning rates spaced evenly on a log scale
    over ``lr_range`` and returns a :class:`~tlutils.livefig.LiveFigure` with a slider over
    them: the path on the loss contours (left) and the loss gap per step (right). The slider
    starts at the grid rate nearest ``lr``. Every run is computed here, so the slider works
    in the browser with no kernel.
    """
    _check_problem(problem)
    low, high = _check_range("lr_range", lr_range)
    if not isinstance(n, int) or isinstance(n, bool) or not 2 <= n <= 200:
        raise ValueError(f"n must be an int in [2, 200], got {n!r}")
    if not isinstance(lr, (int, float)) or isinstance(lr, bool) or not low <= lr <= high:
        raise ValueError(f"lr must be a number within lr_range {(low, high)}, got {lr!r}")
    checks.int_at_least("steps", steps)
    checks.vector("theta0", theta0)
    grid = np.geomspace(low, high, n)
    labels = [f"{v:.3g}" for v in grid]
    traces = _gd_traces(problem, dict(zip(labels, (float(v) for v in grid))), steps, theta0)

    best = problem.solution()
    start = np.asarray(theta0, dtype=float)
    lo = np.minimum(best, start) - 1.5
    hi = np.maximum(best, start) + 1.5
    ws, bs = np.linspace(lo[0], hi[0], 61), np.linspace(lo[1], hi[1], 61)
    w, b = np.meshgrid(ws, bs)
    surface = np.log10(problem.loss_grid(w, b) - problem.min_loss() + 1e-2)
    background: list[Trace] = [Contour(ws, bs, surface, levels=12, panel=0),
                  Line([best[0]], [best[1]], name="optimum", mode="markers", color="#000000",
                       size=11)]
    floor = 1e-6
    crit = problem.critical_lr()
    states: dict[str, list[Trace]] = {}
    captions: dict[str, str] = {}
    for label, tr in traces.items():
        gaps = np.maximum(tr.losses - problem.min_loss(), floor)
        states[label] = [
            Line(tr.thetas[:, 0], tr.thetas[:, 1], name="gradient descent",
                 mode="lines+markers", size=4, width=1.5, panel=0),
            Line(np.arange(len(gaps)), gaps, name="gradient descent", panel=1, legend=False)]
        if tr.diverged:
            what = f"diverged after {len(tr.losses) - 1} steps"
        else:
            what = f"loss gap {gaps[-1]:.1e} after {steps} steps"
        side = "above" if tr.lr > crit else "below"
        captions[label] = f"η = {label}, {side} the critical 2/λmax = {crit:.3f}: {what}"
    initial = labels[int(np.argmin(np.abs(np.log(grid) - np.log(lr))))]
    panels = [Panel("gradient-descent path", "slope w", "intercept b",
                    x_range=(lo[0], hi[0]), y_range=(lo[1], hi[1])),
              Panel("loss gap L(θ_t) − L(θ*)", "step t", "", log_y=True,
                    x_range=(0, steps), y_range=(floor, 1e4))]
    return LiveFigure("lr-explorer", states, panels=panels, background=background,
                      title="Gradient descent on the line problem", control_label="learning rate η",
                      captions=captions, initial=initial)


def _check_results(results, columns: Sequence[str]):
    import pandas as pd

    if not isinstance(results, pd.DataFrame) or results.empty:
        raise ValueError("results must be a non-empty DataFrame of runs")
    missing = [c for c in columns if c not in results.columns]
    if missing:
        raise ValueError(f"results lacks columns {missing}")
    return results


def _method_traces(runs, methods: Sequence[str], panel: int) -> list:
    """One bar per method (mean ± sd over seeds) and a dot per run."""
    out: list = []
    for m in methods:
        acc = runs.loc[runs["method"] == m, "accuracy"].to_numpy(dtype=float)
        if len(acc) == 0:
            continue
        sd = float(acc.std(ddof=1)) if len(acc) > 1 else 0.0
        out.append(Bars([m], [float(acc.mean())], name=m, error=[sd], panel=panel))
    for m in methods:
        acc = runs.loc[runs["method"] == m, "accuracy"].to_numpy(dtype=float)
        if len(acc):
            out.append(Line([m] * len(acc), acc, name="single runs (seeds)", mode="markers",
                            color="#222222", size=6, panel=panel,
                            legend=m == methods[0]))
    return out


def budget_explorer(results, *, zero_label: float | None = None,
                    baseline: str = "scratch") -> LiveFigure:
    """Accuracy against the label budget, with a slider over the budgets (chapter 04,
    "Fine-tuning on the target").

    ``results`` is :func:`tlutils.transfer.compare`'s table (columns ``method``, ``budget``,
    ``seed``, ``accuracy``). Left: mean ± sd per method over the budgets, the chosen budget
    marked; right: each method's runs at the chosen budget. ``zero_label`` draws the source
    model's accuracy with no target labels; the captions give each method's gain over
    ``baseline``.
    """
    results = _check_results(results, ("method", "budget", "seed", "accuracy"))
    if zero_label is not None and not isinstance(zero_label, (int, float)):
        raise ValueError(f"zero_label must be a number or None, got {zero_label!r}")
    methods = list(dict.fromkeys(results["method"]))
    budgets = sorted(int(b) for b in results["budget"].unique())
    stats = results.groupby(["method", "budget"])["accuracy"].agg(["mean", "std"])
    background: list[Trace] = []
    for m in methods:
        s = stats.loc[m].reindex(budgets)
        background.append(Line(budgets, s["mean"].to_numpy(), name=m, mode="lines+markers",
                               error=s["std"].fillna(0).to_numpy()))
    if zero_label is not None:
        background.append(Line([budgets[0] / 1.5, budgets[-1] * 1.5], [zero_label] * 2,
                               name="source model, no target labels", color="#7f7f7f",
                               dash=True, width=1.5))
    states: dict[str, list[Trace]] = {}
    captions: dict[str, str] = {}
    for b in budgets:
        at = results[results["budget"] == b]
        states[str(b)] = [Line([b, b], [0.0, 1.0], color="#444444", width=1, dash=True,
                               legend=False, panel=0),
                          *_method_traces(at, methods, panel=1)]
        means = at.groupby("method")["accuracy"].mean()
        parts = [f"{m} {means[m]:.3f}" for m in methods if m in means]
        text = f"{b} labelled images per class: " + ", ".join(parts)
        if baseline in means:
            gains = [f"{m} {means[m] - means[baseline]:+.3f}" for m in methods
                     if m in means and m != baseline]
            text += f"; gain over {baseline}: " + ", ".join(gains)
        captions[str(b)] = text
    panels = [Panel("mean ± sd over seeds", "labelled target images per class",
                    "target test accuracy", log_x=True, ticks=budgets,
                    x_range=(budgets[0] / 1.5, budgets[-1] * 1.5), y_range=(0.0, 1.0)),
              Panel("the runs at this budget", "", "", y_range=(0.0, 1.0))]
    return LiveFigure("label-budget", states, panels=panels, background=background,
                      title="Transfer against scratch as labels grow",
                      control_label="labelled images per class", captions=captions,
                      initial=str(budgets[len(budgets) // 2]))


def drift_explorer(results, *, pictures: Mapping[tuple[str, float], np.ndarray] | None = None,
                   zero_label: Mapping[tuple[str, float], float] | None = None,
                   baseline: str = "scratch") -> LiveFigure:
    """Transfer against scratch as the target drifts, with a slider over the drift
    conditions (chapter 05, "Generalisation and negative transfer").

    ``results`` is :func:`tlutils.drift.sweep`'s table (columns ``drift``, ``strength``,
    ``method``, ``seed``, ``accuracy``). For each condition: a picture of drifted digits
    (``pictures[(drift, strength)]``, 2-D, values in [0, 1]), when given, and each method's
    runs, with the source model's zero-label accuracy (``zero_label``) as a dashed line.
    """
    results = _check_results(results, ("drift", "strength", "method", "seed", "accuracy"))
    conditions = list(dict.fromkeys(zip(results["drift"], results["strength"].astype(float))))
    pictures = dict(pictures or {})
    zero_label = dict(zero_label or {})
    for name, mapping in (("pictures", pictures), ("zero_label", zero_label)):
        unknown = [k for k in mapping if (k[0], float(k[1])) not in conditions]
        if unknown:
            raise ValueError(f"{name} names conditions not in results: {unknown}")
    pictures = {(k, float(s)): np.asarray(v) for (k, s), v in pictures.items()}
    zero_label = {(k, float(s)): float(v) for (k, s), v in zero_label.items()}
    methods = list(dict.fromkeys(results["method"]))
    bars_panel = 1 if pictures else 0
    states: dict[str, list[Trace]] = {}
    captions: dict[str, str] = {}
    for kind, strength in conditions:
        label = f"{kind} {strength:g}"
        at = results[(results["drift"] == kind) & (results["strength"] == strength)]
        traces: list[Trace] = []
        if (kind, strength) in pictures:
            traces.append(Picture(pictures[(kind, strength)], panel=0))
        traces += _method_traces(at, methods, panel=bars_panel)
        if (kind, strength) in zero_label:
            traces.append(Line(methods, [zero_label[(kind, strength)]] * len(methods),
                               name="source model, no target labels", color="#7f7f7f",
                               dash=True, width=1.5, panel=bars_panel))
        states[label] = traces
        means = at.groupby("method")["accuracy"].mean()
        if baseline in means:
            gains = [f"{m} {means[m] - means[baseline]:+.3f}" for m in methods
                     if m in means and m != baseline]
            captions[label] = f"{label}: gain over {baseline}: " + ", ".join(gains)
    panels = [Panel("test accuracy per method", "", "target test accuracy",
                    y_range=(0.0, 1.0))]
    if pictures:
        panels.insert(0, Panel("drifted target digits", picture=True))
    return LiveFigure("drift-strength", states, panels=panels,
                      title="Transfer against scratch as the target drifts",
                      control_label="drift", captions=captions)


def _pca2(source: np.ndarray, target: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    both = np.concatenate([source, target]).astype(np.float64)
    centred = both - both.mean(0)
    if float((centred ** 2).sum()) < 1e-12:  # every point identical: nothing to project
        coords = np.zeros((len(both), 2))
    elif min(centred.shape) > 3:
        # The top two singular vectors only (Lanczos, deterministic start): the same
        # components as a full SVD to float precision, without decomposing a 2000 x 1568
        # matrix in full (seconds per model in chapter 5.1).
        from scipy.sparse.linalg import svds

        _, sv, vt = svds(centred, k=2, v0=np.ones(min(centred.shape)), tol=1e-10)
        coords = centred @ vt[np.argsort(sv)[::-1]].T
    else:
        _, _, vt = np.linalg.svd(centred, full_matrices=False)
        coords = centred @ vt[:2].T
        if coords.shape[1] < 2:
            coords = np.pad(coords, ((0, 0), (0, 2 - coords.shape[1])))
        coords *= np.where(coords.sum(0) < 0, -1.0, 1.0)  # fix SVD's arbitrary signs
    return coords[: len(source)], coords[len(source):]


def alignment_explorer(features: Mapping[str, tuple[np.ndarray, np.ndarray]],
                       accuracy: Mapping[str, Mapping[str, float]], *,
                       domains: tuple[str, str] = ("source", "target"),
                       max_points: int = 400, chance: float | None = None) -> LiveFigure:
    """Feature alignment against its weight, with a slider over the weights (chapter 05,
    "Cross-domain transfer").

    ``features[label]`` is a pair (source features, target features) of one trained model,
    e.g. the encoder outputs for held-out images of each domain; ``accuracy[label]`` maps
    metric names (e.g. ``"target accuracy"``) to values for the same model. Left: both
    domains' features projected on their first two principal components (computed per model,
    drawn on common axes, so a collapsed feature space shows as a point); right: the metrics.
    At most ``max_points`` points per domain are drawn; ``chance`` adds a dashed line.
    """
    if not isinstance(features, Mapping) or not features:
        raise ValueError("features must be a non-empty mapping label -> (source, target)")
    if not isinstance(accuracy, Mapping) or set(accuracy) != set(features):
        raise ValueError("accuracy must have exactly the labels of features")
    if not isinstance(max_points, int) or isinstance(max_points, bool) or max_points < 2:
        raise ValueError(f"max_points must be an int >= 2, got {max_points!r}")
    projected = {}
    for label, pair in features.items():
        if not isinstance(pair, (tuple, list)) or len(pair) != 2:
            raise ValueError(f"features[{label!r}] must be a pair (source, target)")
        fs, ft = (np.asarray(f).reshape(len(f), -1) for f in pair)
        if len(fs) < 2 or len(ft) < 2 or fs.shape[1] != ft.shape[1]:
            raise ValueError(f"features[{label!r}] must be two arrays of at least 2 rows "
                             "with the same number of features")
        projected[str(label)] = _pca2(fs, ft)
    extent = max(float(np.abs(np.concatenate(p)).max()) for p in projected.values()) or 1.0
    extent *= 1.05
    metrics = list(dict.fromkeys(m for acc in accuracy.values() for m in acc))
    states: dict[str, list[Trace]] = {}
    captions: dict[str, str] = {}
    for label, (ps, pt) in projected.items():
        acc = accuracy[label]
        traces: list[Trace] = [Line(ps[:max_points, 0], ps[:max_points, 1], name=domains[0],
                       mode="markers", size=4, panel=0),
                  Line(pt[:max_points, 0], pt[:max_points, 1], name=domains[1],
                       mode="markers", size=4, panel=0),
                  Bars(list(acc), [float(v) for v in acc.values()], name="accuracy",
                       color="#4c72b0", panel=1)]
        if chance is not None:
            traces.append(Line(metrics, [float(chance)] * len(metrics), name="chance",
                               color="#7f7f7f", dash=True, width=1.5, panel=1))
        states[str(label)] = traces
        captions[str(label)] = f"weight {label}: " + ", ".join(
            f"{k} {float(v):.3f}" for k, v in acc.items())
    panels = [Panel("features, first two principal components", "PC 1", "PC 2",
                    x_range=(-extent, extent), y_range=(-extent, extent)),
              Panel("accuracy", "", "", y_range=(0.0, 1.0))]
    return LiveFigure("alignment-weight", states, panels=panels,
                      title="Feature alignment against its weight",
                      control_label="alignment weight λ", captions=captions)
