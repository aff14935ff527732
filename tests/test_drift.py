"""Tests for tlutils.drift: seeded drift transforms and the transfer-vs-scratch sweep
(chapter 05, "Generalisation and negative transfer")."""

import numpy as np
import pandas as pd
import pytest

from tests.toy import striped_digits
from tlutils import config, drift, models, transfer


def _images(n=5, seed=0):
    return np.random.default_rng(seed).random((n, 28, 28, 1)).astype(np.float32)


def _task(n=24, k=4, seed=0):
    return striped_digits(n, k, seed)


# --- transforms -------------------------------------------------------------------------

def test_rotation_by_zero_is_a_copy_and_by_90_turns_the_grid():
    x = _images()
    same = drift.rotate(x, 0)
    np.testing.assert_array_equal(same, x)
    assert same is not x
    turned = drift.rotate(x, 90)
    np.testing.assert_allclose(turned, np.rot90(x, k=1, axes=(1, 2)), atol=1e-5)
    np.testing.assert_allclose(drift.rotate(turned, -90), x, atol=1e-5)


def test_rotation_by_45_moves_pixels_and_stays_in_range():
    x = _images()
    out = drift.rotate(x, 45)
    assert out.shape == x.shape and out.dtype == np.float32
    assert out.min() >= 0 and out.max() <= 1
    assert np.abs(out - x).mean() > 0.1


def test_noise_is_seeded_clipped_and_grows_with_sigma():
    x = _images()
    a, b = drift.add_noise(x, 0.3, seed=1), drift.add_noise(x, 0.3, seed=1)
    np.testing.assert_array_equal(a, b)
    assert not np.array_equal(a, drift.add_noise(x, 0.3, seed=2))
    assert a.min() >= 0 and a.max() <= 1
    np.testing.assert_array_equal(drift.add_noise(x, 0.0), x)
    small = np.abs(drift.add_noise(x, 0.1) - x).mean()
    large = np.abs(drift.add_noise(x, 0.5) - x).mean()
    assert large > 2 * small > 0


def test_inversion_flips_a_seeded_share_of_the_images():
    x = _images(n=10)
    np.testing.assert_allclose(drift.invert(x, 1.0), 1.0 - x)
    np.testing.assert_array_equal(drift.invert(x, 0.0), x)
    half = drift.invert(x, 0.5, seed=4)
    flipped = [i for i in range(10) if np.allclose(half[i], 1.0 - x[i])]
    kept = [i for i in range(10) if np.array_equal(half[i], x[i])]
    assert len(flipped) == 5 and len(kept) == 5
    np.testing.assert_array_equal(half, drift.invert(x, 0.5, seed=4))
    assert not np.array_equal(half, drift.invert(x, 0.5, seed=5))


def test_apply_dispatches_on_kind():
    x = _images()
    np.testing.assert_array_equal(drift.apply(x, "rotation", 30), drift.rotate(x, 30))
    np.testing.assert_array_equal(drift.apply(x, "noise", 0.2, seed=3),
                                  drift.add_noise(x, 0.2, seed=3))
    np.testing.assert_array_equal(drift.apply(x, "inversion", 0.4, seed=3),
                                  drift.invert(x, 0.4, seed=3))
    for kind in drift.DRIFTS:
        np.testing.assert_array_equal(drift.apply(x, kind, 0), x)


@pytest.mark.parametrize("call, word", [
    (lambda x: drift.apply(x, "blur", 1.0), "kind"),
    (lambda x: drift.invert(x, 1.5), "fraction"),
    (lambda x: drift.invert(x, 0.5, seed=1.5), "seed"),
    (lambda x: drift.add_noise(x, -0.1), "sigma"),
    (lambda x: drift.add_noise(x, 0.1, seed=-1), "seed"),
    (lambda x: drift.rotate(x, float("nan")), "degrees"),
    (lambda x: drift.rotate(x, True), "degrees"),
    (lambda x: drift.rotate(x[..., 0], 10), "x must"),
    (lambda x: drift.invert(x.tolist(), 0.5), "x must"),
])
def test_transforms_reject_bad_input(call, word):
    with pytest.raises(ValueError, match=word):
        call(_images())


# --- sweep and gain table -------------------------------------------------------------

@pytest.fixture(scope="module")
def tiny_source():
    config.setup(0)
    return models.build_cnn(num_classes=4, filters=(2, 2), dense=4)


def test_sweep_at_zero_drift_matches_compare_and_returns_a_tidy_table(tiny_source):
    x, y = _task()
    xt, yt = _task(n=16, seed=1)
    recipes = {"fine_tune": transfer.Recipe("fine_tune")}
    swept = drift.sweep(tiny_source, x, y, xt, yt, drifts={"rotation": (0, 90)},
                        recipes=recipes, budget=2, seeds=(0, 1), steps=2)
    assert list(swept.columns) == ["drift", "strength", "method", "seed", "accuracy", "seconds"]
    assert len(swept) == 2 * 2
    assert swept["accuracy"].between(0, 1).all()
    # Same recipe, budget, seeds and steps: the undrifted runs are exactly compare()'s runs.
    plain = transfer.compare(tiny_source, x, y, xt, yt, recipes=recipes, budgets=(2,),
                             seeds=(0, 1), steps=2)
    at_zero = swept[swept["strength"] == 0].reset_index(drop=True)
    np.testing.assert_array_equal(at_zero["accuracy"], plain["accuracy"])


def test_sweep_with_a_stopping_rule_equals_compare_at_zero_drift(tiny_source):
    """The stopping rule and validation set flow through: at zero drift the validation set
    is the undrifted one, so the runs equal compare()'s with the same rule."""
    from tlutils import engine

    x, y = _task()
    xt, yt = _task(n=16, seed=1)
    xv, yv = _task(n=16, seed=2)
    rule = engine.Stopping(every=2, max_steps=6)
    recipes = {"fine_tune": transfer.Recipe("fine_tune", lr=3e-3)}
    swept = drift.sweep(tiny_source, x, y, xt, yt, drifts={"rotation": (0, 90)},
                        recipes=recipes, budget=2, seeds=(0, 1), steps=None,
                        validation=(xv, yv), stopping=rule)
    assert {"steps", "val_accuracy"} <= set(swept.columns)
    plain = transfer.compare(tiny_source, x, y, xt, yt, recipes=recipes, budgets=(2,),
                             seeds=(0, 1), steps=None, validation=(xv, yv), stopping=rule)
    at_zero = swept[swept["strength"] == 0].reset_index(drop=True)
    for column in ("accuracy", "steps", "val_accuracy"):
        np.testing.assert_array_equal(at_zero[column], plain[column])
    with pytest.raises(ValueError, match="validation"):
        drift.sweep(tiny_source, x, y, xt, yt, drifts={"rotation": (0,)}, recipes=recipes,
                    steps=None, stopping=rule)


def test_sweep_chooses_each_conditions_rate_on_validation(tiny_source):
    """With ``lrs`` every drift condition keeps its own rate (engine.run_rates); at zero
    drift that is compare()'s choice with the same grid and rule."""
    from tlutils import engine

    x, y = _task()
    xt, yt = _task(n=16, seed=1)
    xv, yv = _task(n=16, seed=2)
    rule = engine.Stopping(every=2, max_steps=6)
    recipes = {"fine_tune": transfer.Recipe("fine_tune"), "scratch": transfer.Recipe("scratch")}
    grid = {"fine_tune": [1e-3, 1e-2], "scratch": [3e-3, 3e-2]}
    kw = dict(recipes=recipes, budget=2, seeds=(0, 1), steps=None, validation=(xv, yv),
              lrs=grid, stopping=rule)
    every = drift.sweep(tiny_source, x, y, xt, yt, drifts={"rotation": (0, 90)},
                        all_rates=True, **kw)
    swept = drift.sweep(tiny_source, x, y, xt, yt, drifts={"rotation": (0, 90)}, **kw)
    assert list(swept.columns) == ["drift", "strength", "method", "lr", "seed", "accuracy",
                                   "steps", "val_accuracy", "seconds"]
    assert len(every) == 2 * 2 * 2 * 2 and len(swept) == 2 * 2 * 2
    assert list(swept.strength) == [0] * 4 + [90] * 4  # condition by condition
    for (strength, method), rows in every.groupby(["strength", "method"]):
        means = rows.groupby("lr", sort=False).val_accuracy.mean()
        kept = swept[(swept.strength == strength) & (swept.method == method)]
        assert set(kept.lr) == {means.idxmax()}
    plain = transfer.compare(tiny_source, x, y, xt, yt, recipes=recipes, budgets=(2,),
                             seeds=(0, 1), steps=None, validation=(xv, yv), lrs=grid,
                             stopping=rule)
    at_zero = swept[swept.strength == 0].reset_index(drop=True)
    for column in ("method", "lr", "accuracy", "steps", "val_accuracy"):
        np.testing.assert_array_equal(at_zero[column], plain[column])
    with pytest.raises(ValueError, match="validation"):
        drift.sweep(tiny_source, x, y, xt, yt, drifts={"rotation": (0,)}, recipes=recipes,
                    steps=2, lrs=grid)
    with pytest.raises(ValueError, match="all_rates"):
        drift.sweep(tiny_source, x, y, xt, yt, drifts={"rotation": (0,)}, recipes=recipes,
                    steps=2, all_rates=True)


@pytest.mark.parametrize("kwargs, word", [
    ({"drifts": {}}, "drifts"),
    ({"drifts": {"blur": (1,)}}, "kind"),
    ({"drifts": {"noise": ()}}, "drifts"),
    ({"drifts": {"noise": (0.1,)}, "budget": 0}, "budget"),
    ({"drifts": {"noise": (0.1,)}, "seeds": ()}, "seeds"),
    ({"drifts": {"noise": (0.1,)}, "drift_seed": -1}, "drift_seed"),
    ({"drifts": {"noise": (0.1,)}, "recipes": ("transplant",)}, "method"),
])
def test_sweep_rejects_bad_arguments(tiny_source, kwargs, word):
    x, y = _task(n=8)
    with pytest.raises(ValueError, match=word):
        drift.sweep(tiny_source, x, y, x, y, **kwargs)
    with pytest.raises(ValueError, match="source"):
        drift.sweep("model", x, y, x, y, drifts={"noise": (0.1,)})


def test_gain_table_pairs_runs_by_seed():
    rows = []
    for strength, gains in ((0, (0.2, 0.4)), (90, (-0.1, -0.3))):
        for seed, gain in enumerate(gains):
            rows.append({"drift": "rotation", "strength": strength, "method": "scratch",
                         "seed": seed, "accuracy": 0.5 + 0.1 * seed})
            rows.append({"drift": "rotation", "strength": strength, "method": "fine_tune",
                         "seed": seed, "accuracy": 0.5 + 0.1 * seed + gain})
    table = drift.gain_table(pd.DataFrame(rows))
    assert table.loc[("rotation", 0, "fine_tune"), "mean"] == pytest.approx(0.3)
    assert table.loc[("rotation", 90, "fine_tune"), "mean"] == pytest.approx(-0.2)
    assert table.loc[("rotation", 90, "fine_tune"), "count"] == 2
    with pytest.raises(ValueError, match="baseline"):
        drift.gain_table(pd.DataFrame(rows), baseline="oracle")
    with pytest.raises(ValueError, match="results"):
        drift.gain_table(rows)
