"""tlutils: the helper package of *Transfer Learning in Practice*.

One module per concern (``data``, ``models``, ``train``, ``transfer``, ``plots``, ``zoo``, ...).
Importing the package first quietens TensorFlow's C++ logging and turns off oneDNN's
kernels, whose results depend on the CPU's instruction set (benchmarks/bench_kernels.py);
both must happen before TensorFlow itself is imported, so
``import tlutils`` comes before ``import tensorflow`` in every notebook.
"""

from __future__ import annotations

import os

# Must run before TensorFlow is imported anywhere (setdefault: a user's choice wins).
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
os.environ.setdefault("TF_ENABLE_ONEDNN_OPTS", "0")

__version__ = "0.1.0"


def _import_tensorflow_quietly() -> None:
    """Import TensorFlow and initialise its devices with file descriptor 2 sent to /dev/null.

    The CUDA probes of the ``tensorflow`` wheel ("Could not find cuda drivers", "failed call to
    cuInit") are written by C++ before absl logging honours ``TF_CPP_MIN_LOG_LEVEL``, straight
    to fd 2, which Jupyter copies into cell outputs. Python-level errors still surface: the
    descriptor is restored before any exception propagates.
    """
    import sys

    if "tensorflow" in sys.modules or os.environ.get("TLUTILS_NO_QUIET_IMPORT"):
        return
    try:
        saved = os.dup(2)
    except OSError:  # no usable stderr (some embedded interpreters)
        return
    devnull = os.open(os.devnull, os.O_WRONLY)
    try:
        os.dup2(devnull, 2)
        try:
            import tensorflow as tf

            tf.config.list_physical_devices()
        except ImportError:
            pass
    finally:
        os.dup2(saved, 2)
        os.close(saved)
        os.close(devnull)


_import_tensorflow_quietly()

from tlutils.config import cache_dir, data_dir, in_colab, setup  # noqa: E402

__all__ = ["__version__", "cache_dir", "data_dir", "in_colab", "setup"]
