"""Tests for tlutils.interpret: saliency, Grad-CAM, linear CKA and weight change (section 5.5)."""

import keras
import numpy as np
import pytest

from tlutils import interpret, models


@pytest.fixture(scope="module")
def cnn():
    keras.utils.set_random_seed(0)
    return models.build_cnn(name="tiny_cnn")


@pytest.fixture(scope="module")
def images():
    return np.random.default_rng(0).random((6, 28, 28, 1)).astype(np.float32)


def _linear_model(w: np.ndarray):
    """logits = flatten(x) @ w, no bias: its input gradient is known exactly."""
    inputs = keras.Input((4, 4, 1))
    h = keras.layers.Flatten()(inputs)
    out = keras.layers.Dense(w.shape[1], use_bias=False, name="head")(h)
    model = keras.Model(inputs, out)
    model.get_layer("head").set_weights([w])
    return model


# --- linear CKA -------------------------------------------------------------------------

def test_cka_of_a_representation_with_itself_is_one():
    a = np.random.default_rng(1).normal(size=(50, 8))
    assert interpret.linear_cka(a, a) == pytest.approx(1.0)


def test_cka_is_invariant_to_orthogonal_transforms_and_isotropic_scaling():
    rng = np.random.default_rng(2)
    a = rng.normal(size=(60, 10))
    q, _ = np.linalg.qr(rng.normal(size=(10, 10)))
    assert interpret.linear_cka(a, a @ q) == pytest.approx(1.0)
    assert interpret.linear_cka(a, 7.5 * a + 3.0) == pytest.approx(1.0)


def test_cka_is_not_invariant_to_anisotropic_scaling():
    rng = np.random.default_rng(3)
    a = rng.normal(size=(80, 6))
    stretched = a * np.array([10.0, 1, 1, 1, 1, 0.1])
    assert interpret.linear_cka(a, stretched) < 0.9


def test_cka_of_independent_representations_is_small_and_symmetric():
    rng = np.random.default_rng(4)
    a, b = rng.normal(size=(400, 5)), rng.normal(size=(400, 5))
    assert interpret.linear_cka(a, b) < 0.1
    assert interpret.linear_cka(a, b) == pytest.approx(interpret.linear_cka(b, a))


def test_cka_wide_and_narrow_formulas_agree():
    rng = np.random.default_rng(5)
    a = rng.normal(size=(12, 3))
    b = a @ rng.normal(size=(3, 40)) + 0.5 * rng.normal(size=(12, 40))  # q > n: Gram path
    c = a @ rng.normal(size=(3, 4)) + 0.5 * rng.normal(size=(12, 4))    # q < n: feature path
    # Both formulas are the same quantity: check the wide one against the narrow one by
    # padding the narrow representation with zero columns (which changes nothing).
    padded = np.concatenate([c, np.zeros((12, 40))], axis=1)
    assert interpret.linear_cka(b, c) == pytest.approx(interpret.linear_cka(b, padded))
    assert 0.0 < interpret.linear_cka(a, b) <= 1.0


def test_cka_flattens_extra_axes():
    a = np.random.default_rng(6).normal(size=(20, 3, 3, 2))
    assert interpret.linear_cka(a, a.reshape(20, -1)) == pytest.approx(1.0)


@pytest.mark.parametrize("a, b, word", [
    (np.zeros((5, 2)) + 1.0, np.ones((5, 2)), "constant"),
    (np.ones((5, 2)), np.ones((4, 2)), "same examples"),
    (np.ones((1, 2)), np.ones((1, 2)), "at least 2"),
    ([[1.0, 2.0]], np.ones((1, 2)), "a must"),
    (np.ones(5), np.ones((5, 2)), "a must"),
    (np.ones((3, 2)), np.array([[1.0, np.nan]] * 3), "b holds NaN"),
])
def test_cka_rejects_bad_input(a, b, word):
    with pytest.raises(ValueError, match=word):
        interpret.linear_cka(a, b)


# --- saliency ---------------------------------------------------------------------------

def test_saliency_has_the_input_shape_without_channels(cnn, images):
    maps = interpret.saliency(cnn, images)
    assert maps.shape == (6, 28, 28)
    assert maps.dtype == np.float32 and np.all(maps >= 0) and maps.max() > 0


def test_saliency_of_a_linear_model_is_its_weight_column():
    w = np.arange(32, dtype=np.float32).reshape(16, 2) - 10.0
    model = _linear_model(w)
    x = np.random.default_rng(7).random((3, 4, 4, 1)).astype(np.float32)
    maps = interpret.saliency(model, x, class_index=1)
    np.testing.assert_allclose(maps, np.tile(np.abs(w[:, 1]).reshape(1, 4, 4), (3, 1, 1)))
    per_input = interpret.saliency(model, x, class_index=[0, 1, 0])
    np.testing.assert_allclose(per_input[0], np.abs(w[:, 0]).reshape(4, 4))
    np.testing.assert_allclose(per_input[1], np.abs(w[:, 1]).reshape(4, 4))


def test_saliency_rejects_bad_input(cnn, images):
    with pytest.raises(ValueError, match="x must"):
        interpret.saliency(cnn, images[:, :20])
    with pytest.raises(ValueError, match="x must"):
        interpret.saliency(cnn, images.tolist())
    with pytest.raises(ValueError, match="class_index"):
        interpret.saliency(cnn, images, class_index=10)
    with pytest.raises(ValueError, match="class_index"):
        interpret.saliency(cnn, images, class_index=[0, 1])
    with pytest.raises(ValueError, match="model"):
        interpret.saliency("not a model", images)
    with pytest.raises(ValueError, match="batch_size"):
        interpret.saliency(cnn, images, batch_size=0)


# --- Grad-CAM ---------------------------------------------------------------------------

def test_grad_cam_shape_and_range(cnn, images):
    cams = interpret.grad_cam(cnn, images, layer="conv2")
    assert cams.shape == (6, 28, 28)
    assert cams.min() >= 0.0 and cams.max() <= 1.0 + 1e-6


def test_grad_cam_follows_the_evidence():
    """conv (identity 1x1, ReLU) -> global average -> head [+1, -1]: the class-0 score grows
    with every positive pixel, so its CAM is the input image scaled to [0, 1], and class 1,
    whose score falls with every pixel, gets an all-zero map."""
    inputs = keras.Input((8, 8, 1))
    h = keras.layers.Conv2D(1, 1, activation="relu", name="conv")(inputs)
    h = keras.layers.GlobalAveragePooling2D()(h)
    out = keras.layers.Dense(2, name="head")(h)
    model = keras.Model(inputs, out)
    model.get_layer("conv").set_weights([np.ones((1, 1, 1, 1)), np.zeros(1)])
    model.get_layer("head").set_weights([np.array([[1.0, -1.0]]), np.zeros(2)])
    x = np.zeros((1, 8, 8, 1), np.float32)
    x[0, 2:5, 1:3, 0] = [[0.5], [1.0], [0.25]]
    cam0 = interpret.grad_cam(model, x, class_index=0, layer="conv")
    np.testing.assert_allclose(cam0[0], x[0, ..., 0] / x.max(), atol=1e-6)
    cam1 = interpret.grad_cam(model, x, class_index=1, layer="conv")
    assert np.all(cam1 == 0.0)


def test_grad_cam_rejects_bad_layers(cnn, images):
    with pytest.raises(ValueError, match="layer"):
        interpret.grad_cam(cnn, images, layer="conv9")
    with pytest.raises(ValueError, match="layer"):
        interpret.grad_cam(cnn, images, layer="dense")


# --- layer comparisons ------------------------------------------------------------------

def test_layer_cka_of_a_model_with_its_clone_is_one(cnn, images):
    table = interpret.layer_cka(cnn, models.clone(cnn), images)
    assert list(table["layer"]) == ["conv1", "conv2", "dense", "head"]
    np.testing.assert_allclose(table["cka"], 1.0, atol=1e-6)


def test_layer_cka_drops_where_weights_change(cnn, images):
    other = models.clone(cnn)
    w, b = other.get_layer("dense").get_weights()
    other.get_layer("dense").set_weights([np.random.default_rng(8).normal(size=w.shape), b])
    table = interpret.layer_cka(cnn, other, images).set_index("layer")["cka"]
    assert table["conv1"] == pytest.approx(1.0) and table["conv2"] == pytest.approx(1.0)
    assert table["dense"] < 0.99


def test_cka_matrix_shape_and_diagonal(cnn, images):
    table = interpret.cka_matrix(cnn, cnn, images)
    assert table.shape == (4, 4)
    np.testing.assert_allclose(np.diag(table.to_numpy()), 1.0, atol=1e-6)


def test_activations_flatten_and_reject_unknown_layers(cnn, images):
    acts = interpret.activations(cnn, images, ["conv1", "dense"])
    assert acts["conv1"].shape == (6, 28 * 28 * 16) and acts["dense"].shape == (6, 64)
    with pytest.raises(ValueError, match="layers"):
        interpret.activations(cnn, images, ["nope"])
    with pytest.raises(ValueError, match="layers"):
        interpret.activations(cnn, images, "dense")


def test_weight_change_is_zero_for_a_clone_and_positive_after_an_edit(cnn):
    other = models.clone(cnn)
    assert np.all(interpret.weight_change(cnn, other)["relative_change"] == 0.0)
    w, b = other.get_layer("head").get_weights()
    other.get_layer("head").set_weights([2.0 * w, b])
    table = interpret.weight_change(cnn, other).set_index("layer")["relative_change"]
    assert table["head"] == pytest.approx(1.0, rel=1e-5)
    assert table["conv1"] == 0.0
    with pytest.raises(ValueError, match="layers"):
        interpret.weight_change(cnn, other, layers=["flatten"])


def test_relative_change_formula_and_zero_rule():
    before = [np.array([3.0, 0.0]), np.array([[4.0]])]
    after = [np.array([3.0, 1.0]), np.array([[4.0]])]
    assert interpret.relative_change(before, after) == pytest.approx(1.0 / 5.0)
    assert interpret.relative_change(np.array([2.0, 0.0]), np.array([0.0, 0.0])) == 1.0
    assert interpret.relative_change(np.float32([1, 2]), np.float32([1, 2])) == 0.0
    # An all-zero start: nothing moved is 0, anything moved is inf (no epsilon).
    assert interpret.relative_change(np.zeros(3), np.zeros(3)) == 0.0
    assert interpret.relative_change(np.zeros(3), np.array([0.0, 1e-30, 0.0])) == np.inf
    with pytest.raises(ValueError, match="same shapes"):
        interpret.relative_change([np.ones(2)], [np.ones(3)])
    with pytest.raises(ValueError, match="same shapes"):
        interpret.relative_change([np.ones(2)], [np.ones(2), np.ones(2)])
    with pytest.raises(ValueError, match="after"):
        interpret.relative_change(np.ones(2), np.array([1.0, np.nan]))
    with pytest.raises(ValueError, match="before"):
        interpret.relative_change([], [])


def test_weight_change_table_uses_relative_change(cnn):
    other = models.clone(cnn)
    w, b = other.get_layer("dense").get_weights()
    other.get_layer("dense").set_weights([w + 0.01, b])
    table = interpret.weight_change(cnn, other, layers=["dense"])
    expected = interpret.relative_change(cnn.get_layer("dense").get_weights(), [w + 0.01, b])
    assert table["relative_change"].iloc[0] == expected
    assert table["parameters"].iloc[0] == w.size + b.size
    with pytest.raises(ValueError, match="layers"):
        interpret.weight_change(cnn, models.build_mlp(), layers=["conv1"])


def test_a_sequential_model_is_explained_too():
    keras.utils.set_random_seed(1)
    seq = keras.Sequential([keras.Input((4, 4, 1)), keras.layers.Conv2D(2, 3, name="c"),
                            keras.layers.Flatten(), keras.layers.Dense(3, name="d")])
    x = np.random.default_rng(11).random((5, 4, 4, 1)).astype(np.float32)
    assert interpret.saliency(seq, x).shape == (5, 4, 4)
    assert interpret.grad_cam(seq, x, layer="c").shape == (5, 4, 4)
    assert interpret.activations(seq, x, ["d"])["d"].shape == (5, 3)
    with pytest.raises(ValueError, match="x must have shape"):
        interpret.activations(seq, x[:, :3], ["d"])
    unbuilt = keras.Sequential([keras.layers.Dense(3)])
    with pytest.raises(ValueError, match="single defined input"):
        interpret.saliency(unbuilt, x)


def test_cka_matrix_agrees_with_linear_cka(cnn):
    x = np.random.default_rng(9).random((80, 28, 28, 1)).astype(np.float32)
    other = models.clone(cnn)
    w, b = other.get_layer("head").get_weights()
    other.get_layer("head").set_weights([np.random.default_rng(10).normal(size=w.shape), b])
    table = interpret.cka_matrix(cnn, other, x)
    acts_a = interpret.activations(cnn, x, ["conv2", "dense"])
    acts_b = interpret.activations(other, x, ["dense", "head"])
    # dense (64 features < 80 examples) goes through the feature formula in linear_cka,
    # and through Gram matrices in cka_matrix: the two must agree.
    assert table.loc["dense", "dense"] == pytest.approx(1.0)
    assert table.loc["conv2", "head"] == pytest.approx(
        interpret.linear_cka(acts_a["conv2"], acts_b["head"]))
    assert table.loc["dense", "head"] == pytest.approx(
        interpret.linear_cka(acts_a["dense"], acts_b["head"]))
