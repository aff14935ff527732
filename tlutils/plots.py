"""Figures the book reuses: image grids, learning curves, confusion matrices and method
comparisons with error bars (chapters 01-06). Every function returns the matplotlib Figure."""

from __future__ import annotations

from collections.abc import Sequence

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
from matplotlib.figure import Figure

from tlutils import checks

__all__ = ["compare_methods", "confusion_matrix", "image_grid", "learning_curves"]


def image_grid(x: np.ndarray, labels: Sequence[object] | np.ndarray | None = None, *,
               ncols: int = 10, n: int | None = None, title: str | None = None,
               cmap: str = "gray") -> Figure:
    """Show images (n, h, w[, c]) in a grid, with optional labels above each (chapters 01, 04
    and 05)."""
    checks.finite_array("x", x, min_ndim=3)
    if x.ndim > 4:
        raise ValueError(f"x must be an array of images (n, h, w[, c]), got shape {x.shape}")
    ncols = checks.int_at_least("ncols", ncols)
    n = len(x) if n is None else checks.int_in("n", n, 1, len(x))
    if labels is not None and len(labels) < n:
        raise ValueError(f"labels must have at least n={n} entries, got {len(labels)}")
    rows = -(-n // ncols)
    fig, axes = plt.subplots(rows, ncols, figsize=(ncols * 0.9, rows * 1.0 + (0.3 if title else 0)),
                             squeeze=False)
    for i, ax in enumerate(axes.flat):
        ax.axis("off")
        if i >= n:
            continue
        img = x[i]
        if img.ndim == 3 and img.shape[-1] == 1:
            img = img[..., 0]
        ax.imshow(img, cmap=cmap if img.ndim == 2 else None, vmin=0, vmax=1)
        if labels is not None:
            ax.set_title(str(labels[i]), fontsize=8)
    if title:
        fig.suptitle(title, fontsize=10)
    fig.tight_layout()
    return fig


def learning_curves(history: pd.DataFrame, *, metrics: Sequence[str] = ("loss", "accuracy"),
                    title: str | None = None) -> Figure:
    """Plot training (and validation, if present) curves from a :func:`tlutils.train.fit`
    history table (sections 3.2 and 4.2)."""
    checks.instance("history", history, pd.DataFrame)
    if "epoch" not in history.columns:
        raise ValueError("history must be the DataFrame returned by tlutils.train.fit, "
                         "with an 'epoch' column")
    present = [m for m in checks.sequence("metrics", metrics) if m in history.columns]
    if not present:
        raise ValueError(f"history has none of the metrics {list(metrics)}")
    fig, axes = plt.subplots(1, len(present), figsize=(4.2 * len(present), 3.0), squeeze=False)
    for ax, metric in zip(axes.flat, present):
        ax.plot(history["epoch"], history[metric], marker="o", ms=3, label="train")
        if f"val_{metric}" in history.columns:
            ax.plot(history["epoch"], history[f"val_{metric}"], marker="o", ms=3, label="validation")
        ax.set_xlabel("epoch")
        ax.set_ylabel(metric)
        ax.legend(frameon=False)
    if title:
        fig.suptitle(title, fontsize=10)
    fig.tight_layout()
    return fig


def confusion_matrix(y_true: np.ndarray, y_pred: np.ndarray, *,
                     labels: Sequence[str] | None = None, normalize: bool = True,
                     title: str | None = None) -> Figure:
    """A confusion-matrix heat map; rows are true classes (section 4.2, "How good is the source
    model, and on what?"; section 5.2)."""
    y_true = checks.labels("y_true", np.asarray(y_true))
    y_pred = checks.labels("y_pred", np.asarray(y_pred))
    if len(y_true) != len(y_pred):
        raise ValueError(f"y_true and y_pred must have equal length, got {len(y_true)} and "
                         f"{len(y_pred)}")
    k = int(max(y_true.max(), y_pred.max())) + 1
    if labels is not None and len(labels) < k:
        raise ValueError(f"labels must name all {k} classes, got {len(labels)}")
    cm = np.zeros((k, k))
    np.add.at(cm, (y_true, y_pred), 1)
    if normalize:
        cm = cm / np.maximum(cm.sum(axis=1, keepdims=True), 1)
    fig, ax = plt.subplots(figsize=(0.42 * k + 1.6, 0.42 * k + 1.2))
    im = ax.imshow(cm, cmap="Blues", vmin=0, vmax=1 if normalize else None)
    names = list(labels) if labels is not None else [str(i) for i in range(k)]
    ax.set_xticks(range(k), names[:k], fontsize=8)
    ax.set_yticks(range(k), names[:k], fontsize=8)
    ax.set_xlabel("predicted")
    ax.set_ylabel("true")
    for i in range(k):
        for j in range(k):
            if cm[i, j] >= (0.005 if normalize else 0.5):
                text = f"{cm[i, j]:.2f}" if normalize else f"{int(cm[i, j])}"
                ax.text(j, i, text.lstrip("0") if normalize else text, ha="center", va="center",
                        fontsize=6, color="white" if cm[i, j] > 0.5 * cm.max() else "black")
    fig.colorbar(im, ax=ax, fraction=0.046)
    if title:
        ax.set_title(title, fontsize=10)
    fig.tight_layout()
    return fig


def compare_methods(results: pd.DataFrame, *, x: str = "budget", y: str = "accuracy",
                    hue: str = "method", logx: bool = True, title: str | None = None,
                    ylabel: str | None = None, hline: dict[str, float] | None = None) -> Figure:
    """Mean +/- one standard deviation of ``y`` against ``x`` for each ``hue`` group, from a
    tidy results table such as :func:`tlutils.transfer.run_grid` returns (chapters 01-06).
    ``hline`` draws labelled reference lines, e.g. ``{"oracle": 0.97}``."""
    checks.instance("results", results, pd.DataFrame)
    missing = [c for c in (x, y, hue) if c not in results.columns]
    if missing:
        raise ValueError(f"results lacks columns {missing}")
    fig, ax = plt.subplots(figsize=(6.0, 3.6))
    for name, group in results.groupby(hue, sort=False):
        stats = group.groupby(x)[y].agg(["mean", "std"]).fillna(0.0)
        ax.errorbar(stats.index, stats["mean"], yerr=stats["std"], marker="o", ms=4,
                    capsize=3, label=str(name))
    for label, value in (hline or {}).items():
        ax.axhline(value, ls="--", lw=1, color="grey")
        ax.annotate(label, (1.0, value), xycoords=("axes fraction", "data"), ha="right",
                    va="bottom", fontsize=8, color="grey")
    if logx:
        ax.set_xscale("log")
        ticks = sorted(results[x].unique())
        ax.set_xticks(ticks, [str(t) for t in ticks])
    ax.set_xlabel(x.replace("_", " "))
    ax.set_ylabel(ylabel or y)
    ax.legend(frameon=False, fontsize=8)
    if title:
        ax.set_title(title, fontsize=10)
    fig.tight_layout()
    return fig
