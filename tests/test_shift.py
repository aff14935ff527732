"""Tests for tlutils.shift (chapter 02's dataset shift and instance transfer)."""

from __future__ import annotations

import numpy as np
import pytest

from tlutils import shift


def test_covariate_shift_keeps_the_labelling_rule_and_moves_the_inputs():
    ex = shift.covariate_shift(300, seed=0, shift=2.0)
    assert ex.kind == "covariate"
    np.testing.assert_array_equal(ex.y_source, shift.curved_boundary(ex.x_source))
    np.testing.assert_array_equal(ex.y_target, shift.curved_boundary(ex.x_target))
    assert ex.x_target[:, 0].mean() - ex.x_source[:, 0].mean() == pytest.approx(2.0, abs=0.3)


def test_label_shift_changes_the_prior_only():
    ex = shift.label_shift(4000, seed=1, source_prior=0.5, target_prior=0.1)
    assert ex.y_source.mean() == pytest.approx(0.5, abs=0.03)
    assert ex.y_target.mean() == pytest.approx(0.1, abs=0.02)
    # P(X|Y=1) is the same on both sides.
    np.testing.assert_allclose(ex.x_source[ex.y_source == 1].mean(0),
                               ex.x_target[ex.y_target == 1].mean(0), atol=0.15)


def test_concept_shift_keeps_inputs_but_flips_labels():
    ex = shift.concept_shift(2000, seed=2, angle=180.0)
    np.testing.assert_allclose(ex.x_source.mean(0), ex.x_target.mean(0), atol=0.1)
    same_x = shift.concept_shift(2000, seed=2, angle=0.0)
    # At 180 degrees the target's rule is the source's, negated.
    rule_s = (ex.x_target @ np.array([1.0, -1.0]) > 0).astype(int)
    assert np.mean(rule_s == ex.y_target) < 0.01
    assert np.mean((same_x.x_target @ np.array([1.0, -1.0]) > 0) == same_x.y_target) > 0.99


def test_generators_are_seeded():
    for kind in shift.KINDS:
        a, b = shift.make_shift(kind, 50, seed=3), shift.make_shift(kind, 50, seed=3)
        np.testing.assert_array_equal(a.x_source, b.x_source)
        assert not np.array_equal(a.x_target, shift.make_shift(kind, 50, seed=4).x_target)


def test_importance_weights_favour_source_points_that_look_like_the_target():
    ex = shift.covariate_shift(400, seed=0, shift=2.0)
    w = shift.importance_weights(ex.x_source, ex.x_target)
    assert w.mean() == pytest.approx(1.0)
    right = ex.x_source[:, 0] > 0
    assert w[right].mean() > 5 * w[~right].mean()


def test_identical_domains_give_nearly_uniform_weights_and_full_ess():
    rng = np.random.default_rng(0)
    x = rng.normal(size=(2000, 2))
    w = shift.importance_weights(x[:1000], x[1000:])
    assert np.abs(w - 1).max() < 0.2
    assert shift.effective_sample_size(w) > 0.98 * 1000


def test_clip_caps_the_weights_relative_to_the_mean():
    ex = shift.covariate_shift(400, seed=0, shift=3.0)
    raw = shift.importance_weights(ex.x_source, ex.x_target)
    clipped = shift.importance_weights(ex.x_source, ex.x_target, clip=5.0)
    assert raw.max() > 5.0
    assert clipped.mean() == pytest.approx(1.0)
    assert clipped.max() < raw.max()
    # Clipping then rescaling leaves every capped weight equal, at the top.
    assert np.sum(np.isclose(clipped, clipped.max())) > 1
    assert shift.effective_sample_size(clipped) > shift.effective_sample_size(raw)


def test_class_prior_weights_correct_the_class_balance():
    y = np.array([0, 0, 0, 1])
    w = shift.class_prior_weights(y, [0.5, 0.5])
    assert w[y == 0].sum() == pytest.approx(w[y == 1].sum())
    assert w.mean() == pytest.approx(1.0)


def test_effective_sample_size():
    assert shift.effective_sample_size(np.ones(10)) == pytest.approx(10.0)
    assert shift.effective_sample_size(np.r_[1.0, np.zeros(9)]) == pytest.approx(1.0)


@pytest.mark.parametrize("call, name", [
    (lambda: shift.covariate_shift(5), "n"),
    (lambda: shift.covariate_shift(50, seed=-1), "seed"),
    (lambda: shift.covariate_shift(50, shift=-1.0), "shift"),
    (lambda: shift.label_shift(50, target_prior=1.0), "target_prior"),
    (lambda: shift.concept_shift(50, angle=200), "angle"),
    (lambda: shift.make_shift("prior"), "kind"),
    (lambda: shift.curved_boundary(np.zeros((3, 3))), "x"),
    (lambda: shift.importance_weights(np.zeros(3), np.zeros((3, 2))), "x_source"),
    (lambda: shift.importance_weights(np.zeros((3, 2)), np.zeros((3, 3))), "x_target"),
    (lambda: shift.importance_weights(np.eye(3), np.eye(3), clip=0), "clip"),
    (lambda: shift.domain_classifier(np.eye(3), np.eye(3), C=0), "C"),
    (lambda: shift.class_prior_weights(np.array([0, 1]), [0.7, 0.7]), "target_prior"),
    (lambda: shift.class_prior_weights([0, 1], [0.5, 0.5]), "y_source"),
    (lambda: shift.effective_sample_size(np.array([-1.0, 2.0])), "weights"),
])
def test_bad_input_names_the_argument(call, name):
    with pytest.raises(ValueError, match=name):
        call()
