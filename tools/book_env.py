"""The environment the book's notebooks run in, for the project's own scripts.

``make`` exports the same values (see the Makefile); scripts that are run directly
(``tools/execute_notebooks.py``, ``tools/run_solutions.py``, ``benchmarks/bench_*.py``) set
them here, once, so that a notebook they run prints what strict nbval compares against:
quiet TensorFlow, Eigen kernels (``TF_ENABLE_ONEDNN_OPTS=0``, the setting the committed
outputs were made with), a fixed hash seed and inline figures. A value already in the
environment wins.
"""

from __future__ import annotations

import os
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]

BOOK = {"TF_CPP_MIN_LOG_LEVEL": "2", "TF_ENABLE_ONEDNN_OPTS": "0", "PYTHONHASHSEED": "0",
        "MPLBACKEND": "module://matplotlib_inline.backend_inline"}
#: one TensorFlow thread per kernel, so that two kernels share the two cores (the Makefile's
#: THREADS)
THREADS = {"TF_NUM_INTRAOP_THREADS": "1", "TF_NUM_INTEROP_THREADS": "2"}
#: the development copy of MNIST beside the repository (absent on a newcomer's clone, where
#: tlutils falls back to its offline data)
DATA = {"TLUTILS_DATA_DIR": str(ROOT.parent / "shared" / "data" / "mnist")}


def apply(*, threads: bool = False, data: bool = False) -> None:
    """Set the book's environment variables that are not set yet; with ``threads`` also the
    per-kernel thread counts, with ``data`` also the data folder."""
    settings = {**BOOK, **(THREADS if threads else {}), **(DATA if data else {})}
    for key, value in settings.items():
        os.environ.setdefault(key, value)
