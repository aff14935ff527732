"""Target domains built from the digits the book already has (section 5.1, "Cross-domain
transfer and domain adaptation").

**MNIST-M-lite** follows the recipe Ganin et al. (2016) used to build MNIST-M: every digit is
blended over a colour patch cut at random from a photograph, ``out = |patch - digit|`` per
channel, so strokes take the patch's inverted colours and the background becomes texture.
Ganin et al. cut their patches from the BSDS500 photographs; this lite version cuts them from
the two photographs scikit-learn ships (``load_sample_images()``: a Chinese temple and a
flower), so it needs no download. It is seeded: the same digits and seed give the same images.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from sklearn.datasets import load_sample_images

from tlutils import checks, zoo
from tlutils.data import Digits, load_mnist

__all__ = ["AdaptationTask", "blend_with_photos", "load_mnist_m_lite", "mnist_to_mnist_m",
           "photo_patches", "sample_photos", "to_rgb"]

_PHOTOS: list[np.ndarray] = []


def sample_photos() -> list[np.ndarray]:
    """scikit-learn's two sample photographs as float32 RGB arrays in [0, 1] (427x640x3 each);
    the texture source of MNIST-M-lite (section 5.1, "The target domain: MNIST-M-lite")."""
    if not _PHOTOS:
        _PHOTOS.extend(np.asarray(img, np.float32) / 255.0 for img in load_sample_images().images)
    return _PHOTOS


def photo_patches(n: int, size: int = 28, *, seed: int = 0) -> np.ndarray:
    """``n`` random ``size`` x ``size`` RGB crops of :func:`sample_photos`, float32 in [0, 1]:
    array ``(n, size, size, 3)`` (section 5.1). Each crop picks a photograph, then a
    position."""
    n = checks.int_at_least("n", n)
    photos = sample_photos()
    size = checks.int_in("size", size, 1, min(min(p.shape[:2]) for p in photos))
    return _patches(n, size, checks.int_at_least("seed", seed, 0))


def _patches(n: int, size: int, seed: int) -> np.ndarray:
    photos = sample_photos()
    rng = np.random.default_rng(seed)
    which = rng.integers(0, len(photos), size=n)
    out = np.empty((n, size, size, 3), np.float32)
    for i, k in enumerate(which):
        photo = photos[k]
        top = rng.integers(0, photo.shape[0] - size + 1)
        left = rng.integers(0, photo.shape[1] - size + 1)
        out[i] = photo[top: top + size, left: left + size]
    return out


def to_rgb(x: np.ndarray) -> np.ndarray:
    """Grey images ``(n, h, w, 1)`` repeated into three channels ``(n, h, w, 3)`` so that a
    source domain and a colour target domain share one input shape (section 5.1)."""
    x = checks.images("x", x)
    if x.shape[-1] == 3:
        return x
    if x.shape[-1] != 1:
        raise ValueError(f"x must have 1 or 3 channels, got {x.shape[-1]}")
    return np.repeat(x, 3, axis=-1)


def blend_with_photos(x: np.ndarray, *, seed: int = 0) -> np.ndarray:
    """Ganin et al.'s MNIST-M blend: ``|patch - digit|`` per channel, with one random photo
    patch per digit (section 5.1, "The target domain: MNIST-M-lite").

    ``x`` is ``(n, 28, 28, 1)`` (or any size up to the photographs') with values in [0, 1];
    returns float32 ``(n, h, w, 3)`` in [0, 1]. Where the digit is 0 the patch shows through;
    where it is 1 the patch's colours are inverted.
    """
    x = checks.images("x", x)
    if x.shape[-1] != 1:
        raise ValueError(f"x must be grey images with 1 channel, got {x.shape[-1]}")
    if x.shape[1] != x.shape[2]:
        raise ValueError(f"x must hold square images, got {x.shape[1]}x{x.shape[2]}")
    if float(x.min()) < 0.0 or float(x.max()) > 1.0:
        raise ValueError("x must hold values in [0, 1]")
    largest = min(min(p.shape[:2]) for p in sample_photos())
    if x.shape[1] > largest:
        raise ValueError(f"x must hold images of at most {largest}x{largest} pixels, "
                         f"got {x.shape[1]}x{x.shape[2]}")
    return _blend(x, checks.int_at_least("seed", seed, 0))


def _blend(x: np.ndarray, seed: int) -> np.ndarray:
    patches = _patches(len(x), x.shape[1], seed)
    return np.abs(patches - x.astype(np.float32)).astype(np.float32)


@dataclass
class AdaptationTask:
    """One unsupervised domain-adaptation task as arrays (section 5.1, "Cross-domain transfer
    and domain adaptation").

    ``x_source, y_source``: labelled source images; ``x_target``: unlabelled target images
    (``y_target`` holds their labels, used *only* by the target oracle); ``x_test, y_test``:
    held-out target images for scoring; ``x_val, y_val``: labelled target images for choosing
    hyperparameters (a luxury true unsupervised adaptation does not have; never the test set).
    All images share one shape.
    """

    name: str
    x_source: np.ndarray
    y_source: np.ndarray
    x_target: np.ndarray
    y_target: np.ndarray
    x_test: np.ndarray
    y_test: np.ndarray
    x_val: np.ndarray
    y_val: np.ndarray

    def __repr__(self) -> str:
        return (f"AdaptationTask({self.name!r}, source={len(self.y_source)}, "
                f"target={len(self.y_target)} unlabelled, test={len(self.y_test)}, "
                f"val={len(self.y_val)}, "
                f"shape={self.x_source.shape[1:]})")


def mnist_to_mnist_m(*, n_target: int | None = None, n_val: int = 1000,
                     seed: int = 0) -> AdaptationTask:
    """MNIST -> MNIST-M-lite, laid out as MNIST-M was (Ganin et al. 2016; section 5.1, "The
    target domain: MNIST-M-lite").

    The digits are exactly those of the zoo's default source model
    (:func:`tlutils.zoo.source_data` of ``SourceSpec()``): its training digits, repeated into
    RGB, are the labelled source; the *same* digits blended with photo patches (seed
    ``seed + 1``) are the unlabelled target, as MNIST-M's training set is built from MNIST's;
    its held-out digits, blended with other patches (seed ``seed + 2``), are the target test
    set, never seen in any form during training. ``n_target`` keeps fewer target images. The
    validation set blends the last ``n_val`` training digits with a third set of patches
    (seed ``seed + 3``).
    """
    seed = checks.int_at_least("seed", seed, 0)
    x_tr, y_tr, x_te, y_te, _ = zoo.source_data(zoo.SourceSpec())
    k = len(x_tr) if n_target is None else checks.int_in("n_target", n_target, 1, len(x_tr))
    n_val = checks.int_in("n_val", n_val, 1, len(x_tr))
    return AdaptationTask(
        name="MNIST -> MNIST-M-lite", x_source=np.repeat(x_tr, 3, axis=-1), y_source=y_tr,
        x_target=_blend(x_tr[:k], seed + 1), y_target=y_tr[:k].copy(),
        x_test=_blend(x_te, seed + 2), y_test=y_te,
        x_val=_blend(x_tr[-n_val:], seed + 3), y_val=y_tr[-n_val:].copy())


def load_mnist_m_lite(digits: Digits | None = None, *, n: int | None = None,
                      seed: int = 0) -> Digits:
    """MNIST-M-lite: digits blended with colour patches of scikit-learn's sample photographs
    (after Ganin et al. 2016; section 5.1, "The target domain: MNIST-M-lite").

    ``digits`` defaults to :func:`tlutils.data.load_mnist`; ``n`` keeps its first ``n`` images.
    Returns a :class:`~tlutils.data.Digits` with RGB images ``(n, 28, 28, 3)`` in [0, 1] and the
    digits' labels. Offline and seeded.
    """
    digits = load_mnist() if digits is None else checks.instance("digits", digits, Digits)
    k = len(digits) if n is None else checks.int_in("n", n, 1, len(digits))
    blended = blend_with_photos(digits.x[:k], seed=seed)
    return Digits(blended, digits.y[:k].copy(), "mnistm_lite",
                  f"{digits.source} digits blended with sklearn sample-photo patches "
                  f"(seed={seed})", list(digits.notes))
