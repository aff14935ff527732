"""Dataset shift, generated and measured (chapter 02, "Domains, tasks and the taxonomy").

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

from dataclasses import dataclass

import numpy as np

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
    for each side, the kind of shift and one sentence saying what changed (chapter 02)."""

    x_source: np.ndarray
    y_source: np.ndarray
    x_target: np.ndarray
    y_target: np.ndarray
    kind: str
    description: str


def _check_n(n: object) -> int:
    if not isinstance(n, (int, np.integer)) or isinstance(n, bool) or n < 10:
        raise ValueError(f"n must be an int >= 10, got {n!r}")
    return int(n)


def _check_seed(seed: object) -> int:
    if not isinstance(seed, (int, np.integer)) or isinstance(seed, bool) or seed < 0:
        raise ValueError(f"seed must be a non-negative int, got {seed!r}")
    return int(seed)


def curved_boundary(x: np.ndarray) -> np.ndarray:
    """The labelling rule of :func:`covariate_shift`: class 1 above the parabola
    :math:`x_2 = 0.5 x_1^2 - 1` (chapter 02). Shared by source and target."""
    x = np.asarray(x, dtype=np.float64)
    if x.ndim != 2 or x.shape[1] != 2:
        raise ValueError(f"x must have shape (n, 2), got {x.shape}")
    return (x[:, 1] > 0.5 * x[:, 0] ** 2 - 1.0).astype(np.int64)


def covariate_shift(n: int = 400, *, seed: int = 0, shift: float = 2.0) -> ShiftExample:
    """Covariate shift (chapter 02): source inputs centred at :math:`(-1, 0)`, target inputs
    at :math:`(-1 + \\text{shift}, 0)`, both labelled by the same rule
    (:func:`curved_boundary`). A linear model fitted to the source learns the left arm of the
    parabola; the target needs the right arm."""
    n, seed = _check_n(n), _check_seed(seed)
    if isinstance(shift, bool) or not isinstance(shift, (int, float)) or not 0 <= shift <= 10:
        raise ValueError(f"shift must be a number in [0, 10], got {shift!r}")
    rng = np.random.default_rng(seed)
    xs = rng.normal([-1.0, 0.0], [0.8, 1.0], size=(n, 2))
    xt = rng.normal([-1.0 + shift, 0.0], [0.8, 1.0], size=(n, 2))
    return ShiftExample(xs, curved_boundary(xs), xt, curved_boundary(xt), "covariate",
                        "P(X) moves right; the labelling rule P(Y|X) is the same")


def label_shift(n: int = 400, *, seed: int = 0, source_prior: float = 0.5,
                target_prior: float = 0.1) -> ShiftExample:
    """Label shift (chapter 02): two Gaussian classes whose class-conditional densities
    :math:`P(X \\mid Y)` never change; the share of class 1 moves from ``source_prior`` to
    ``target_prior``."""
    n, seed = _check_n(n), _check_seed(seed)
    for name, value in (("source_prior", source_prior), ("target_prior", target_prior)):
        if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0 < value < 1:
            raise ValueError(f"{name} must be a probability in (0, 1), got {value!r}")
    rng = np.random.default_rng(seed)

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
    """Concept shift (chapter 02): the same inputs :math:`P(X)` on both sides, but the
    target's decision boundary is the source's rotated by ``angle`` degrees, so
    :math:`P(Y \\mid X)` changes. No re-weighting of inputs can fix this."""
    n, seed = _check_n(n), _check_seed(seed)
    if isinstance(angle, bool) or not isinstance(angle, (int, float)) or not 0 <= angle <= 180:
        raise ValueError(f"angle must be a number of degrees in [0, 180], got {angle!r}")
    rng = np.random.default_rng(seed)
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
    """One of :data:`KINDS` with its default strength (chapter 02)."""
    if kind not in KINDS:
        raise ValueError(f"kind must be one of {KINDS}, got {kind!r}")
    maker = {"covariate": covariate_shift, "label": label_shift, "concept": concept_shift}[kind]
    return maker(n, seed=seed)


def _check_features(name: str, x: object) -> np.ndarray:
    if not isinstance(x, np.ndarray) or x.ndim < 2 or len(x) < 2:
        raise ValueError(f"{name} must be a numpy array of at least 2 samples, got "
                         f"{getattr(x, 'shape', type(x).__name__)!r}")
    if not np.all(np.isfinite(x)):
        raise ValueError(f"{name} must be finite")
    return x.reshape(len(x), -1).astype(np.float64)


def domain_classifier(x_source: np.ndarray, x_target: np.ndarray, *, C: float = 1.0):
    """A logistic regression told to separate source (0) from target (1) inputs; a
    scikit-learn pipeline with feature standardisation (chapter 02, instance transfer).

    Its held-out AUC measures how different the domains are: 0.5 means indistinguishable.
    """
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    xs = _check_features("x_source", x_source)
    xt = _check_features("x_target", x_target)
    if xs.shape[1] != xt.shape[1]:
        raise ValueError(f"x_source and x_target must have the same features, got "
                         f"{x_source.shape[1:]} and {x_target.shape[1:]}")
    if isinstance(C, bool) or not isinstance(C, (int, float)) or C <= 0:
        raise ValueError(f"C must be a positive number, got {C!r}")
    x = np.concatenate([xs, xt])
    d = np.r_[np.zeros(len(xs)), np.ones(len(xt))].astype(np.int64)
    clf = make_pipeline(StandardScaler(), LogisticRegression(C=C, max_iter=2000))
    return clf.fit(x, d)


def importance_weights(x_source: np.ndarray, x_target: np.ndarray, *, C: float = 1.0,
                       clip: float | None = None) -> np.ndarray:
    """Importance weights :math:`w(x) \\approx p_T(x) / p_S(x)` for the source samples,
    from a domain classifier's odds (chapter 02, "Instance transfer").

    By Bayes' rule :math:`p_T(x)/p_S(x) = \\frac{p(t \\mid x)}{p(s \\mid x)}
    \\cdot \\frac{n_S}{n_T}`, so the fitted :func:`domain_classifier`'s odds on each source
    sample, times the ratio of sample sizes, estimate the density ratio. The weights are
    rescaled to mean 1. ``clip`` (``None``: off) cuts every weight above ``clip`` times the
    mean to that value and rescales again, trading a little bias for less variance when a few
    huge weights would dominate the re-weighted loss.
    """
    xs = _check_features("x_source", x_source)
    xt = _check_features("x_target", x_target)
    if clip is not None and (isinstance(clip, bool) or not isinstance(clip, (int, float))
                             or clip <= 0):
        raise ValueError(f"clip must be None or a positive number, got {clip!r}")
    clf = domain_classifier(x_source, x_target, C=C)
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
    class priors are known (chapter 02). Rescaled to mean 1."""
    if not isinstance(y_source, np.ndarray) or y_source.ndim != 1 or len(y_source) == 0:
        raise ValueError("y_source must be a non-empty 1-D array of integer labels")
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
    """Kish's effective sample size :math:`(\\sum w)^2 / \\sum w^2` (chapter 02): how many
    equally weighted samples a re-weighted sample is worth."""
    w = np.asarray(weights, dtype=np.float64)
    if w.ndim != 1 or len(w) == 0 or np.any(w < 0) or not np.all(np.isfinite(w)) or w.sum() == 0:
        raise ValueError("weights must be a non-empty 1-D array of finite non-negative numbers, "
                         "not all zero")
    return float(w.sum() ** 2 / np.sum(w ** 2))
