"""Tiny labelled image tasks shared by the tests of the comparison engine and its users."""

from __future__ import annotations

import numpy as np


def striped_digits(n: int = 24, k: int = 4, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """``n`` 28x28 grey images of ``k`` classes, class ``c`` marked by a bright band of rows
    ``7c .. 7c + 6`` over faint noise: learnable in a few steps, so a test can tell training
    from no training. Labels cycle ``0, 1, ..., k - 1``."""
    rng = np.random.default_rng(seed)
    y = np.arange(n) % k
    x = rng.random((n, 28, 28, 1), dtype=np.float32) * 0.2
    for c in range(k):
        x[y == c, c * 7: c * 7 + 7] += 0.8
    return np.clip(x, 0, 1), y
