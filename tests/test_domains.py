"""Tests for tlutils.domains: MNIST-M-lite and its pieces (chapter 05)."""

from __future__ import annotations

import numpy as np
import pytest

import tlutils  # noqa: F401  (quiet TensorFlow first)
from tlutils import data, domains


def _digits(n: int = 6) -> np.ndarray:
    x = np.zeros((n, 28, 28, 1), np.float32)
    x[:, 8:20, 12:16, 0] = 1.0  # a bar: "1"
    return x


def test_patches_are_seeded_crops_of_the_photos():
    a = domains.photo_patches(5, seed=3)
    b = domains.photo_patches(5, seed=3)
    c = domains.photo_patches(5, seed=4)
    assert a.shape == (5, 28, 28, 3) and a.dtype == np.float32
    np.testing.assert_array_equal(a, b)
    assert not np.array_equal(a, c)
    assert 0.0 <= a.min() and a.max() <= 1.0
    # Every patch is an exact crop of one of the photographs.
    photos = domains.sample_photos()
    first = a[0]
    found = False
    for p in photos:
        hits = np.argwhere(np.all(np.isclose(p[:-27, :-27], first[0, 0]), axis=-1))
        for top, left in hits:
            if np.array_equal(p[top: top + 28, left: left + 28], first):
                found = True
                break
    assert found


def test_blend_is_absolute_difference_with_the_patch():
    x = _digits()
    out = domains.blend_with_photos(x, seed=7)
    patches = domains.photo_patches(len(x), seed=7)
    assert out.shape == (len(x), 28, 28, 3) and out.dtype == np.float32
    background = x[..., 0] == 0
    stroke = x[..., 0] == 1
    np.testing.assert_allclose(out[background], patches[background])
    np.testing.assert_allclose(out[stroke], 1.0 - patches[stroke], atol=1e-6)
    np.testing.assert_array_equal(out, domains.blend_with_photos(x, seed=7))
    assert not np.array_equal(out, domains.blend_with_photos(x, seed=8))


def test_mnist_m_lite_keeps_labels_and_provenance():
    fonts = data.render_digits(20, seed=0)
    d = domains.load_mnist_m_lite(fonts, n=12, seed=1)
    assert d.x.shape == (12, 28, 28, 3)
    np.testing.assert_array_equal(d.y, fonts.y[:12])
    assert d.source == "mnistm_lite" and "seed=1" in d.origin


def test_to_rgb_repeats_grey_channels():
    x = _digits(2)
    rgb = domains.to_rgb(x)
    assert rgb.shape == (2, 28, 28, 3)
    for c in range(3):
        np.testing.assert_array_equal(rgb[..., c], x[..., 0])
    assert domains.to_rgb(rgb) is rgb


@pytest.mark.parametrize(
    ("call", "name"),
    [
        (lambda: domains.photo_patches(0), "n"),
        (lambda: domains.photo_patches(2, size=1000), "size"),
        (lambda: domains.photo_patches(2, seed=-1), "seed"),
        (lambda: domains.to_rgb(np.zeros((2, 4, 4, 2), np.float32)), "x"),
        (lambda: domains.to_rgb(np.zeros((4, 4), np.float32)), "x"),
        (lambda: domains.blend_with_photos(np.zeros((2, 28, 28, 3), np.float32)), "x"),
        (lambda: domains.blend_with_photos(np.full((2, 28, 28, 1), 2.0, np.float32)), "x"),
        (lambda: domains.blend_with_photos(np.zeros((1, 500, 500, 1), np.float32)), "x"),
        (lambda: domains.blend_with_photos(np.zeros((1, 28, 28, 1), np.float32), seed=-2),
         "seed"),
        (lambda: domains.load_mnist_m_lite("mnist"), "digits"),
        (lambda: domains.load_mnist_m_lite(data.render_digits(10), n=11), "n"),
    ],
)
def test_bad_input_names_the_argument(call, name):
    with pytest.raises(ValueError, match=rf"\b{name}\b"):
        call()


def test_mnist_to_mnist_m_follows_ganins_layout():
    task = domains.mnist_to_mnist_m(n_target=500, n_val=200)
    n = len(task.y_source)
    assert task.x_source.shape == (n, 28, 28, 3) and task.x_target.shape == (500, 28, 28, 3)
    # Source images are grey repeated into RGB; the target is the same digits, blended.
    np.testing.assert_array_equal(task.x_source[..., 0], task.x_source[..., 2])
    np.testing.assert_array_equal(task.y_target, task.y_source[:500])
    assert not np.array_equal(task.x_target, task.x_source[:500])
    assert len(task.y_val) == 200 and task.x_test.shape[1:] == (28, 28, 3)
    assert "MNIST-M-lite" in repr(task)
    with pytest.raises(ValueError, match=r"\bn_target\b"):
        domains.mnist_to_mnist_m(n_target=0)
    with pytest.raises(ValueError, match=r"\bn_val\b"):
        domains.mnist_to_mnist_m(n_val=10**6)
