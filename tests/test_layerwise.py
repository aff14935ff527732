"""Tests for tlutils.layerwise (chapter 02's layer-transfer sweep and structural transfer)."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

import tlutils  # noqa: F401  (quiet TensorFlow first)
from tlutils import layerwise, models


def _source(num_classes: int = 3):
    import keras

    keras.utils.set_random_seed(123)
    return models.build_cnn((12, 12, 1), num_classes, filters=(4, 8), dense=8)


def _data(n: int = 60, num_classes: int = 3, seed: int = 0):
    rng = np.random.default_rng(seed)
    y = np.arange(n) % num_classes
    x = rng.random((n, 12, 12, 1)).astype(np.float32) * 0.2
    for c in range(num_classes):  # a bright band per class: learnable in a few steps
        x[y == c, 4 * c: 4 * c + 4, :, 0] += 0.8
    return x, y.astype(np.int64)


def _same(a, b) -> bool:
    return all(np.array_equal(u, v) for u, v in zip(a.get_weights(), b.get_weights()))


def test_first_n_copies_exactly_n_layers_and_reinitialises_the_rest():
    src = _source()
    target = layerwise.transfer_first_n(src, 2, seed=0)
    weighted = models.weighted_layers(src)
    assert weighted == ["conv1", "conv2", "dense", "head"]
    for name in weighted[:2]:
        assert _same(src.get_layer(name), target.get_layer(name))
    for name in weighted[2:]:
        assert not _same(src.get_layer(name), target.get_layer(name))
    assert all(layer.trainable for layer in target.layers)


def test_frozen_layers_do_not_move_in_training_and_the_rest_does():
    from tlutils import train

    src = _source()
    target = layerwise.transfer_first_n(src, 2, frozen=True, seed=0)
    before = {n: target.get_layer(n).get_weights() for n in ("conv1", "conv2", "dense")}
    x, y = _data()
    train.fit(target, x, y, epochs=1, batch_size=16, seed=0)
    for name in ("conv1", "conv2"):
        assert all(np.array_equal(a, b) for a, b in
                   zip(before[name], target.get_layer(name).get_weights()))
    assert not all(np.array_equal(a, b) for a, b in
                   zip(before["dense"], target.get_layer("dense").get_weights()))


def test_n_zero_is_scratch_and_seeds_change_the_initialisation():
    src = _source()
    a = layerwise.transfer_first_n(src, 0, seed=0)
    b = layerwise.transfer_first_n(src, 0, seed=0)
    c = layerwise.transfer_first_n(src, 0, seed=1)
    assert _same(a, b) and not _same(a, c)
    assert not _same(a.get_layer("conv1"), src.get_layer("conv1"))


def test_new_head_for_a_different_label_set():
    src = _source(3)
    target = layerwise.transfer_first_n(src, 3, num_classes=5, seed=0)
    assert target.output_shape[-1] == 5
    assert _same(src.get_layer("dense"), target.get_layer("dense"))
    with pytest.raises(ValueError, match="num_classes"):
        layerwise.transfer_first_n(src, 4, num_classes=5)


def test_grow_reuses_frozen_weights_and_adds_trainable_layers():
    import keras

    src = _source()

    def new_layers(h):
        return keras.layers.GlobalAveragePooling2D(name="gap")(
            keras.layers.Conv2D(6, 3, padding="same", name="new_conv")(h))

    grown = layerwise.grow(src, "pool2", new_layers, num_classes=4, seed=0)
    assert grown.output_shape[-1] == 4
    assert _same(src.get_layer("conv2"), grown.get_layer("conv2"))
    assert not grown.get_layer("conv1").trainable
    assert grown.get_layer("new_conv").trainable and grown.get_layer("head").trainable
    assert "dense" not in [layer.name for layer in grown.layers]
    control = layerwise.grow(src, "pool2", new_layers, num_classes=4, pretrained=False, seed=0)
    assert not _same(src.get_layer("conv2"), control.get_layer("conv2"))
    assert control.get_layer("conv1").trainable
    assert all(layer.trainable for layer in src.layers)  # the source is untouched


def test_seed_runs_learn_and_reset_between_seeds():
    src = _source()
    x, y = _data(90, seed=0)
    xt, yt = _data(60, seed=1)

    def build(seed):
        return layerwise.transfer_first_n(src, 1, seed=seed)

    both = layerwise.seed_runs(build, x, y, xt, yt, budget=5, seeds=[0, 1], steps=15, lr=1e-2)
    alone = layerwise.seed_runs(build, x, y, xt, yt, budget=5, seeds=[1], steps=15, lr=1e-2)
    assert np.mean(both) > 0.5  # chance is 1/3
    assert both[1] == alone[0]  # nothing of seed 0's run leaks into seed 1's


def test_layer_sweep_table():
    src = _source()
    x, y = _data(60, seed=0)
    # n=0 (no transfer) is trained once and reported under every mode.
    zero = layerwise.layer_sweep(src, x, y, x, y, ns=[0], budget=2, seeds=[0], steps=2)
    assert list(zero.columns) == ["n", "layer", "mode", "seed", "accuracy", "seconds"]
    assert sorted(zero["mode"]) == ["fine_tuned", "frozen"]
    assert zero.accuracy.nunique() == 1 and set(zero.layer) == {"(none)"}
    two = layerwise.layer_sweep(src, x, y, x, y, ns=[2], modes=["frozen"], budget=2, seeds=[0],
                                steps=2)
    assert list(zip(two.n, two.layer, two["mode"])) == [(2, "conv2", "frozen")]


def test_seed_runs_rejects_builders_that_change_trainability():
    src = _source()
    x, y = _data()
    with pytest.raises(ValueError, match="build"):
        layerwise.seed_runs(lambda s: layerwise.transfer_first_n(src, 1, frozen=s == 1, seed=s),
                            x, y, x, y, budget=2, seeds=[0, 1], steps=1)


@pytest.mark.parametrize("call, name", [
    (lambda s: layerwise.transfer_first_n("model", 1), "source"),
    (lambda s: layerwise.transfer_first_n(s, 5), "n"),
    (lambda s: layerwise.transfer_first_n(s, -1), "n"),
    (lambda s: layerwise.transfer_first_n(s, 1, frozen="yes"), "frozen"),
    (lambda s: layerwise.transfer_first_n(s, 1, num_classes=1), "num_classes"),
    (lambda s: layerwise.grow(s, "nope", lambda h: h, num_classes=3), "upto"),
    (lambda s: layerwise.grow(s, "pool2", "conv", num_classes=3), "new_layers"),
    (lambda s: layerwise.grow(s, "pool2", lambda h: 3, num_classes=3), "new_layers"),
    (lambda s: layerwise.grow(s, "pool2", lambda h: h, num_classes=3, freeze=1), "freeze"),
    (lambda s: layerwise.seed_runs(42, *_data(), *_data(), budget=1, seeds=[0]), "build"),
    (lambda s: layerwise.seed_runs(lambda k: s, *_data(), *_data(), budget=0, seeds=[0]),
     "budget"),
    (lambda s: layerwise.seed_runs(lambda k: s, *_data(), *_data(), budget=1, seeds=[]),
     "seeds"),
    (lambda s: layerwise.seed_runs(lambda k: s, *_data(), *_data(), budget=1, seeds=[0],
                                   lr=0), "lr"),
    (lambda s: layerwise.layer_sweep(s, *_data(), *_data(), ns=[7]), "ns"),
    (lambda s: layerwise.layer_sweep(s, *_data(), *_data(), modes=["melted"]), "modes"),
])
def test_bad_input_names_the_argument(call, name):
    src = _source()
    with pytest.raises(ValueError, match=name):
        call(src)


def test_layer_sweep_chooses_each_configurations_rate_on_validation():
    from tlutils import engine

    src = _source()
    x, y = _data(90, seed=0)
    xv, yv = _data(30, seed=2)
    xt, yt = _data(30, seed=1)
    grids = {"scratch": [1e-3, 1e-2], "frozen": [1e-2, 3e-2], "fine_tuned": [1e-3]}
    rule = engine.Stopping(every=2, max_steps=6)
    fair = layerwise.layer_sweep(src, x, y, xt, yt, ns=[0, 2], budget=3, seeds=[0, 1],
                                 steps=None, validation=(xv, yv), lrs=grids, stopping=rule)
    assert list(fair.columns) == ["n", "layer", "mode", "seed", "accuracy", "lr", "steps",
                                  "val_accuracy", "seconds"]
    assert len(fair) == 2 * 2 + 2 * 2  # n=0 reported under both modes
    assert set(fair[fair.n == 2]["mode"]) == {"frozen", "fine_tuned"}
    assert set(fair[(fair.n == 2) & (fair["mode"] == "fine_tuned")].lr) == {1e-3}
    assert all(s % 2 == 0 and 2 <= s <= 6 for s in fair.steps)
    # One configuration at its chosen rate is what a one-point grid at that rate gives.
    row = fair[(fair.n == 2) & (fair["mode"] == "frozen")]
    alone = layerwise.layer_sweep(src, x, y, xt, yt, ns=[2], modes=["frozen"], budget=3,
                                  seeds=[0, 1], steps=None, validation=(xv, yv),
                                  lrs=[float(row.lr.iloc[0])], stopping=rule)
    np.testing.assert_array_equal(alone.accuracy, row.accuracy)
    # A dict of grids for the whole sweep serves a part of it (section 2.2's exercise on
    # random frozen layers passes the notebook's grids with modes=["frozen"], ns=[1, 2]).
    part = layerwise.layer_sweep(src, x, y, xt, yt, ns=[2], modes=["frozen"], budget=3,
                                 seeds=[0, 1], steps=None, validation=(xv, yv), lrs=grids,
                                 stopping=rule)
    pd.testing.assert_frame_equal(part.drop(columns="seconds"),
                                  row.drop(columns="seconds").reset_index(drop=True))
    with pytest.raises(ValueError, match="validation"):
        layerwise.layer_sweep(src, x, y, xt, yt, ns=[0], budget=3, seeds=[0],
                              lrs=[1e-3, 1e-2])
    with pytest.raises(ValueError, match=r"lrs .*missing \['frozen'\]"):  # trained, no grid
        layerwise.layer_sweep(src, x, y, xt, yt, ns=[0, 1], modes=["frozen"], budget=3,
                              seeds=[0], validation=(xv, yv), lrs={"scratch": [1e-3]})
    with pytest.raises(ValueError, match=r"lrs .*unknown \['frozn'\]"):  # a typo is no learner
        layerwise.layer_sweep(src, x, y, xt, yt, ns=[0], budget=3, seeds=[0],
                              validation=(xv, yv), lrs={"scratch": [1e-3], "frozn": [1e-2]})
    with pytest.raises(ValueError, match="steps or stopping"):
        layerwise.layer_sweep(src, x, y, xt, yt, ns=[0], budget=3, seeds=[0],
                              validation=(xv, yv), stopping=rule)
