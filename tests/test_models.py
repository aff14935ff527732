import numpy as np
import pytest

from tlutils import models, train


def test_cnn_and_mlp_sizes_and_names():
    cnn = models.build_cnn()
    mlp = models.build_mlp()
    assert cnn.count_params() == 105_866
    assert mlp.count_params() == 101_770  # the article's model
    assert models.weighted_layers(cnn) == ["conv1", "conv2", "dense", "head"]
    bn = models.build_cnn(batchnorm=True)
    assert models.weighted_layers(bn) == ["conv1", "bn1", "conv2", "bn2", "dense", "head"]
    assert cnn.output_shape == (None, 10)


@pytest.mark.parametrize("kwargs,name", [
    ({"input_shape": (28, -1)}, "input_shape"), ({"num_classes": 1}, "num_classes"),
    ({"filters": (8,)}, "filters"), ({"dropout": 1.0}, "dropout"), ({"dense": 0}, "dense"),
    ({"filters": (8, True)}, "filters"), ({"dropout": -0.1}, "dropout"),
    ({"num_classes": 2.0}, "num_classes"),
])
def test_build_cnn_bad_input(kwargs, name):
    with pytest.raises(ValueError, match=name):
        models.build_cnn(**kwargs)


def test_freeze_by_depth_name_and_list():
    m = models.build_cnn()
    assert models.freeze(m, upto=2)[-1] == "conv2"
    assert not m.get_layer("conv2").trainable and m.get_layer("dense").trainable
    models.unfreeze(m)
    assert all(layer.trainable for layer in m.layers)
    assert models.freeze(m, upto="dense")[-1] == "dense"
    models.unfreeze(m)
    assert models.freeze(m, ["head"]) == ["head"]
    with pytest.raises(ValueError, match="upto"):
        models.freeze(m, upto=9)
    with pytest.raises(ValueError, match="nope"):
        models.freeze(m, ["nope"])
    with pytest.raises(ValueError, match="either"):
        models.freeze(m, ["head"], upto=1)
    with pytest.raises(ValueError, match="upto"):
        models.freeze(m, upto=2.5)
    with pytest.raises(ValueError, match="single string"):
        models.freeze(m, "head")
    assert models.freeze(m, []) == [] and models.freeze(m, upto=0) == []


def _tiny_xy(n=40, seed=0):
    rng = np.random.default_rng(seed)
    return rng.random((n, 28, 28, 1), dtype=np.float32), rng.integers(0, 10, n)


def test_frozen_weights_do_not_move_after_fit():
    m = models.build_cnn()
    models.freeze(m, upto="conv2")
    before = [w.copy() for w in m.get_layer("conv1").get_weights()]
    head_before = m.get_layer("head").get_weights()[0].copy()
    x, y = _tiny_xy()
    train.fit(m, x, y, epochs=2, batch_size=16)
    for a, b in zip(before, m.get_layer("conv1").get_weights()):
        np.testing.assert_array_equal(a, b)
    assert not np.allclose(head_before, m.get_layer("head").get_weights()[0])


def test_frozen_batchnorm_keeps_its_statistics():
    m = models.build_cnn(batchnorm=True)
    models.freeze(m, ["bn1"])
    mean_before = m.get_layer("bn1").moving_mean.numpy().copy()
    x, y = _tiny_xy()
    train.fit(m, x + 5.0, y, epochs=1, batch_size=16)  # a very different input distribution
    np.testing.assert_array_equal(mean_before, m.get_layer("bn1").moving_mean.numpy())
    assert not np.allclose(m.get_layer("bn2").moving_mean.numpy(), 0.0)  # unfrozen BN moved


def test_replace_head_leaves_the_source_intact():
    src = models.build_cnn()
    tgt = models.replace_head(src, 5, seed=1)
    assert tgt.output_shape == (None, 5)
    src_conv = src.get_layer("conv1").get_weights()[0].copy()
    np.testing.assert_array_equal(src_conv, tgt.get_layer("conv1").get_weights()[0])
    x, y = _tiny_xy()
    train.fit(tgt, x, y % 5, epochs=1, batch_size=16)
    np.testing.assert_array_equal(src_conv, src.get_layer("conv1").get_weights()[0])
    with pytest.raises(ValueError, match="head"):
        models.replace_head(src, 5, head="missing")


def test_clone_is_independent_and_keeps_flags():
    src = models.build_cnn()
    models.freeze(src, ["conv1"])
    copy = models.clone(src)
    assert not copy.get_layer("conv1").trainable
    copy.get_layer("dense").set_weights([w * 0 for w in copy.get_layer("dense").get_weights()])
    assert not np.allclose(src.get_layer("dense").get_weights()[0], 0)


def test_copy_weights_matches_by_name_and_checks_shapes():
    a, b = models.build_cnn(), models.build_cnn(num_classes=3)
    copied = models.copy_weights(a, b)
    assert copied == ["conv1", "conv2", "dense"]  # head shapes differ: skipped
    np.testing.assert_array_equal(a.get_layer("dense").get_weights()[0],
                                  b.get_layer("dense").get_weights()[0])
    with pytest.raises(ValueError, match="head"):
        models.copy_weights(a, b, ["head"])
    with pytest.raises(ValueError, match=r"layers \['nope'\] are not layers"):
        models.copy_weights(a, b, ["nope"])
    assert models.copy_weights(a, b, []) == []  # the layer sweep's "first 0 layers"


def test_feature_extractor_and_param_table():
    m = models.build_cnn()
    f = models.feature_extractor(m, "dense")
    assert f.output_shape == (None, 64)
    models.freeze(m, upto="conv2")
    table = models.param_table(m)
    total = table.iloc[-1]
    assert total["layer"] == "total"
    assert total["trainable"] + total["frozen"] == m.count_params()
    assert total["frozen"] == sum(int(np.prod(w.shape)) for w in m.non_trainable_weights)
    with pytest.raises(ValueError, match="model"):
        models.param_table("not a model")
