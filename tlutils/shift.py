"""Dataset shift, generated and measured (section 2.1, "Domains, tasks and a taxonomy of
transfer").

A domain is :math:`\\mathcal{D} = \\{\\mathcal{X}, P(X)\\}` and a task is
:math:`\\mathcal{T} = \\{\\mathcal{Y}, f\\}` with :math:`f(x) = P(Y \\mid X = x)`. Source and
target can differ in three textbook ways, each generated here on two-dimensional data so that
it can be drawn:

* :func:`covariate_shift`: :math:`P(X)` changes, :math:`P(Y \\mid X)` does not;
* :func:`label_shift`: :math:`P(Y)` changes, :math:`P(X \\mid Y)` does not;
* :func:`concept_shift`: :math:`P(X)` stays, :math:`P(Y \\mid X)` changes.

:func:`importance_weights` implements instance transfer for covariate shift: a domain
classifier's odds :math:`p(t \\mid x) / p(s \\mid x)`, rescaled by the sample sizes, estimate
the density ratio :math:`p_T(x) / p_S(x)` by which source samples are re-weighted
(Shimodaira 2000).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import Pipeline, make_pipeline
from sklearn.preprocessing import StandardScaler

from tlutils import checks

__all__ = [
    "KINDS",
    "ShiftExample",
    "class_prior_weights",
    "concept_shift",
    "covariate_shift",
    "curved_boundary",
    "domain_classifier",
    "effective_sample_size",
    "importance_weights",
    "label_shift",
    "make_shift",
]

KINDS = ("covariate", "label", "concept")


@dataclass
class ShiftExample:
    """A generated source/target pair: features ``(n, 2)`` float64 and labels ``(n,)`` int64
    for each side, the kind of shift and one sentence saying what changed (section 2.1,
    "Three kinds of shift")."""

    x_source: np.ndarray
    y_source: np.ndarray
    x_target: np.ndarray
    y_target: np.ndarray
    kind: str
    description: str


def curved_boundary(x: np.ndarray) -> np.ndarray:
    """The labelling rule of :func:`covariate_shift`: class 1 above the parabola
    :math:`x_2 = 0.5 x_1^2 - 1` (section 2.1). Shared by source and target."""
    x = checks.finite_array("x", np.asarray(x, dtype=np.float64), ndim=2)
    if x.shape[1] != 2:
        raise ValueError(f"x must have shape (n, 2), got {x.shape}")
    return _parabola(x)


def _parabola(x: np.ndarray) -> np.ndarray:
    return (x[:, 1] > 0.5 * x[:, 0] ** 2 - 1.0).astype(np.int64)


def covariate_shift(n: int = 400, *, seed: int = 0, shift: float = 2.0) -> ShiftExample:
    """Covariate shift (section 2.1): source inputs centred at :math:`(-1, 0)`, target inputs
    at :math:`(-1 + \\text{shift}, 0)`, both labelled by the same rule
    (:func:`curved_boundary`). A linear model fitted to the source learns the left arm of the
    parabola; the target needs the right arm."""
    n = checks.int_at_least("n", n, 10)
    rng = np.random.default_rng(checks.int_at_least("seed", seed, 0))
    shift = checks.number("shift", shift, low=0.0, high=10.0)
    xs = rng.normal([-1.0, 0.0], [0.8, 1.0], size=(n, 2))
    xt = rng.normal([-1.0 + shift, 0.0], [0.8, 1.0], size=(n, 2))
    return ShiftExample(xs, _parabola(xs), xt, _parabola(xt), "covariate",
                        "P(X) moves right; the labelling rule P(Y|X) is the same")


def label_shift(n: int = 400, *, seed: int = 0, source_prior: float = 0.5,
                target_prior: float = 0.1) -> ShiftExample:
    """Label shift (section 2.1): two Gaussian classes whose class-conditional densities
    :math:`P(X \\mid Y)` never change; the share of class 1 moves from ``source_prior`` to
    ``target_prior``."""
    n = checks.int_at_least("n", n, 10)
    rng = np.random.default_rng(checks.int_at_least("seed", seed, 0))
    source_prior, target_prior = (
        checks.number(name, value, low=0.0, high=1.0, strict=True, strict_high=True)
        for name, value in (("source_prior", source_prior), ("target_prior", target_prior)))

    def draw(prior: float) -> tuple[np.ndarray, np.ndarray]:
        y = (rng.random(n) < prior).astype(np.int64)
        centres = np.where(y[:, None] == 1, [1.0, 1.0], [-1.0, -1.0])
        return centres + rng.normal(0.0, 1.0, size=(n, 2)), y

    xs, ys = draw(source_prior)
    xt, yt = draw(target_prior)
    return ShiftExample(xs, ys, xt, yt, "label",
                        f"P(Y=1) drops from {source_prior:g} to {target_prior:g}; "
                        "P(X|Y) is the same")


def concept_shift(n: int = 400, *, seed: int = 0, angle: float = 90.0) -> ShiftExample:
    """Concept shift (section 2.1): the same inputs :math:`P(X)` on both sides, but the
    target's decision boundary is the source's rotated by ``angle`` degrees, so
    :math:`P(Y \\mid X)` changes. No re-weighting of inputs can fix this."""
    n = checks.int_at_least("n", n, 10)
    rng = np.random.default_rng(checks.int_at_least("seed", seed, 0))
    angle = checks.number("angle", angle, low=0.0, high=180.0)
    xs = rng.normal(0.0, 1.0, size=(n, 2))
    xt = rng.normal(0.0, 1.0, size=(n, 2))
    a = np.deg2rad(angle)
    w_s = np.array([1.0, -1.0]) / np.sqrt(2)
    rot = np.array([[np.cos(a), -np.sin(a)], [np.sin(a), np.cos(a)]])
    w_t = rot @ w_s
    return ShiftExample(xs, (xs @ w_s > 0).astype(np.int64), xt, (xt @ w_t > 0).astype(np.int64),
                        "concept",
                        f"P(X) is the same; the boundary P(Y|X) turns by {angle:g} degrees")


def make_shift(kind: str, n: int = 400, *, seed: int = 0) -> ShiftExample:
    """One of :data:`KINDS` with its default strength (section 2.1)."""
    checks.one_of("kind", kind, KINDS)
    makers: dict[str, Callable[..., ShiftExample]] = {
        "covariate": covariate_shift, "label": label_shift, "concept": concept_shift}
    return makers[kind](n, seed=seed)


def _domains(x_source: np.ndarray, x_target: np.ndarray, C: float
             ) -> tuple[np.ndarray, np.ndarray, float]:
    """Source and target samples flattened to float64 rows, once both and ``C`` pass."""
    checks.finite_array("x_source", x_source, min_ndim=2)
    checks.finite_array("x_target", x_target, min_ndim=2)
    if x_source.shape[1:] != x_target.shape[1:]:
        raise ValueError(f"x_source and x_target must have the same features, got "
                         f"{x_source.shape[1:]} and {x_target.shape[1:]}")
    C = checks.number("C", C, low=0.0, strict=True)
    return (x_source.reshape(len(x_source), -1).astype(np.float64),
            x_target.reshape(len(x_target), -1).astype(np.float64), C)


def _fit_domain_classifier(xs: np.ndarray, xt: np.ndarray, C: float) -> Pipeline:
    x = np.concatenate([xs, xt])
    d = np.r_[np.zeros(len(xs)), np.ones(len(xt))].astype(np.int64)
    clf = make_pipeline(StandardScaler(), LogisticRegression(C=C, max_iter=2000))
    return clf.fit(x, d)


def domain_classifier(x_source: np.ndarray, x_target: np.ndarray, *, C: float = 1.0
                      ) -> Pipeline:
    """A logistic regression told to separate source (0) from target (1) inputs; a
    scikit-learn pipeline with feature standardisation (section 2.1, "Instance transfer:
    re-weight the source samples").

    Its held-out AUC measures how different the domains are: 0.5 means indistinguishable.
    """
    return _fit_domain_classifier(*_domains(x_source, x_target, C))


def importance_weights(x_source: np.ndarray, x_target: np.ndarray, *, C: float = 1.0,
                       clip: float | None = None) -> np.ndarray:
    """Importance weights :math:`w(x) \\approx p_T(x) / p_S(x)` for the source samples,
    from a domain classifier's odds (section 2.1, "Instance transfer: re-weight the source
    samples").

    By Bayes' rule :math:`p_T(x)/p_S(x) = \\frac{p(t \\mid x)}{p(s \\mid x)}
    \\cdot \\frac{n_S}{n_T}`, so the fitted :func:`domain_classifier`'s odds on each source
    sample, times the ratio of sample sizes, estimate the density ratio. The weights are
    rescaled to mean 1. ``clip`` (``None``: off) cuts every weight above ``clip`` times the
    mean to that value and rescales again, trading a little bias for less variance when a few
    huge weights would dominate the re-weighted loss.
    """
    xs, xt, C = _domains(x_source, x_target, C)
    if clip is not None:
        clip = checks.number("clip", clip, low=0.0, strict=True)
    clf = _fit_domain_classifier(xs, xt, C)
    p_target = np.clip(clf.predict_proba(xs)[:, 1], 1e-12, 1 - 1e-12)
    w = p_target / (1.0 - p_target) * (len(xs) / len(xt))
    w = w / w.mean()
    if clip is not None:
        w = np.minimum(w, clip)
        w = w / w.mean()
    return w


def class_prior_weights(y_source: np.ndarray, target_prior: np.ndarray | list[float]
                        ) -> np.ndarray:
    """Per-sample weights :math:`P_T(y) / P_S(y)` correcting label shift when the target's
    class priors are known (section 2.1). Rescaled to mean 1."""
    checks.labels("y_source", y_source)
    prior_t = np.asarray(target_prior, dtype=np.float64)
    k = int(y_source.max()) + 1
    if prior_t.ndim != 1 or len(prior_t) < k or np.any(prior_t < 0) or not np.isclose(
            prior_t.sum(), 1.0):
        raise ValueError(f"target_prior must be {k} or more non-negative probabilities "
                         f"summing to 1, got {target_prior!r}")
    prior_s = np.bincount(y_source, minlength=len(prior_t)) / len(y_source)
    w = prior_t[y_source] / prior_s[y_source]
    return w / w.mean()


def effective_sample_size(weights: np.ndarray) -> float:
    """Kish's effective sample size :math:`(\\sum w)^2 / \\sum w^2`: how many
    equally weighted samples a re-weighted sample is worth (section 2.1, "Importance
    weights need overlapping domains")."""
    w = np.asarray(weights, dtype=np.float64)
    if w.ndim != 1 or len(w) == 0 or np.any(w < 0) or not np.all(np.isfinite(w)) or w.sum() == 0:
        raise ValueError("weights must be a non-empty 1-D array of finite non-negative numbers, "
                         "not all zero")
    return float(w.sum() ** 2 / np.sum(w ** 2))
