"""Settings shared by every chapter: where data and caches live, seeds and determinism.

Environment variables
---------------------
``TLUTILS_DATA_DIR``
    A folder holding MNIST as IDX files (``t10k-images-idx3-ubyte.gz`` ...) or ``mnist.npz``.
    CI points it at ``../shared/data/mnist``. Optional: see :func:`tlutils.data.load_mnist`.
``TLUTILS_CACHE_DIR``
    Where the model zoo and cached embeddings are stored (default ``~/.cache/tlutils``).
``TLUTILS_OFFLINE``
    ``1`` skips every network attempt (downloads are tried last anyway).
"""

from __future__ import annotations

import os
import sys
from pathlib import Path


def data_dir() -> Path | None:
    """The configured data directory, or ``None`` when unset (used from chapter 04 on).

    Raises ValueError if ``TLUTILS_DATA_DIR`` is set but is not a directory, because a typo
    there would otherwise silently fall back to other sources.
    """
    value = os.environ.get("TLUTILS_DATA_DIR", "").strip()
    if not value:
        return None
    path = Path(value).expanduser()
    if not path.is_dir():
        raise ValueError(f"TLUTILS_DATA_DIR={value!r} is not a directory")
    return path


def cache_dir() -> Path:
    """Folder for the model zoo and embedding caches; created on first use (chapters 01-06)."""
    value = os.environ.get("TLUTILS_CACHE_DIR", "").strip()
    path = Path(value).expanduser() if value else Path.home() / ".cache" / "tlutils"
    path.mkdir(parents=True, exist_ok=True)
    return path


def offline() -> bool:
    """True when ``TLUTILS_OFFLINE`` asks tlutils never to touch the network (section 4.1:
    every loader has an offline path)."""
    return os.environ.get("TLUTILS_OFFLINE", "").strip().lower() in {"1", "true", "yes", "on"}


def in_colab() -> bool:
    """True inside Google Colab (chapter 01; the setup cell of every notebook uses the same
    test)."""
    return "google.colab" in sys.modules


_deterministic = False


def deterministic() -> bool:
    """Whether :func:`setup` has turned on TensorFlow's op determinism in this process (it
    cannot be turned off again); cached results are keyed on it (``tlutils.memo``, chapter
    01)."""
    return _deterministic


def setup(seed: int = 0, *, deterministic: bool = True, quiet: bool = True) -> None:
    """Seed Python, NumPy and TensorFlow and make TF deterministic (the imports cell of every
    notebook, from chapter 01 on).

    ``deterministic`` turns on TensorFlow's deterministic ops and tf.data's debug mode
    (``tf.data.experimental.enable_debug_mode``): input pipelines then run sequentially, in
    order, with their ``map`` functions executed eagerly. Determinism needs the sequential
    part anyway (TensorFlow serialises pipelines with stateful ops); doing it up front also
    keeps ``model.fit(x, y)``, ``predict`` and ``evaluate`` on NumPy arrays quiet. Without it,
    whenever ``len(x)`` is not a multiple of the batch size, TensorFlow 2.21's deterministic
    rewrite of Keras's NumPy pipeline turns a ``ParallelMapDatasetV2`` into a ``MapDataset``
    but keeps its ``use_unbounded_threadpool`` attribute, and C++ logs a harmless but
    alarming ``E0000 ... NodeDef mentions attribute use_unbounded_threadpool`` line.
    Debug mode is process-wide and cannot be turned off again; the setup cell runs first.

    ``quiet`` also silences Python-level TF/absl warnings and fixes matplotlib defaults so
    figures look the same in the book, in Colab and in tests.
    """
    if not isinstance(seed, int) or isinstance(seed, bool) or seed < 0:
        raise ValueError(f"seed must be a non-negative int, got {seed!r}")
    for name, value in (("deterministic", deterministic), ("quiet", quiet)):
        if not isinstance(value, bool):
            raise ValueError(f"{name} must be True or False, got {value!r}")
    import keras
    import tensorflow as tf

    global _deterministic
    keras.utils.set_random_seed(seed)
    if deterministic:
        _deterministic = True  # for tlutils.memo's keys: once on, it stays on
        tf.config.experimental.enable_op_determinism()
        # Must come before the pipelines it should affect are built, hence here.
        tf.data.experimental.enable_debug_mode()
    if quiet:
        import logging
        import warnings

        tf.get_logger().setLevel(logging.ERROR)
        logging.getLogger("absl").setLevel(logging.ERROR)
        warnings.filterwarnings("ignore", category=UserWarning, module="keras")
        try:
            import matplotlib

            matplotlib.rcParams.update(
                {"figure.dpi": 90, "savefig.dpi": 90, "figure.figsize": (6.4, 3.6),
                 "axes.spines.top": False, "axes.spines.right": False}
            )
        except ImportError:  # pragma: no cover - matplotlib is a dependency
            pass
