"""Results computed once, shared by every notebook that asks for them (chapters 01 and 04).

Chapter 01 shows the payoff of transfer with the same comparison that section 4.3 runs in
full: same source, data, recipes, seeds and protocol. ``transfer.compare(..., cache=True)``
stores its result table here the first time and reads it back whenever the identical
comparison is asked for again, in any notebook or run: one experiment, one set of numbers,
trained once.

*Identical* means the same key: a SHA-256 over every input (array contents, the source
model's architecture and weights, every argument) and over what else decides the result:
the versions of TensorFlow, Keras, NumPy and pandas, tlutils' own source code, TensorFlow's
thread and kernel settings and whether op determinism is on. A change to any of them is a
new key, hence a fresh computation; nothing is ever invalidated by hand.

Entries live in ``config.cache_dir() / "results"`` (beside the model zoo), are written
atomically (temp file + rename) and computed under an exclusive file lock, so two processes
asking for the same missing entry compute it once. An unreadable entry is recomputed.
Entries are pickles: read only caches you wrote yourself (the cache folder is yours).
"""

from __future__ import annotations

import contextlib
import dataclasses
import hashlib
import json
import os
import pickle
import warnings
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from tlutils import config, io

__all__ = ["fingerprint", "cached_table"]

#: Environment variables that change TensorFlow's arithmetic (threads, kernel library).
_ENV = ("TF_NUM_INTRAOP_THREADS", "TF_NUM_INTEROP_THREADS", "TF_ENABLE_ONEDNN_OPTS",
        "ONEDNN_MAX_CPU_ISA", "TF_DETERMINISTIC_OPS", "PYTHONHASHSEED")


def _feed(h: Any, value: object) -> None:
    import keras

    if isinstance(value, np.ndarray):
        array = np.ascontiguousarray(value)
        h.update(f"array:{array.dtype.str}:{array.shape}:".encode())
        h.update(array.tobytes())
    elif isinstance(value, keras.Model):
        # Architecture and weights. Not its other variables: a dropout layer's random-number
        # state depends on what else the process built first, and a transfer never copies it.
        h.update(f"model:{value.to_json()}:".encode())
        for variable in value.weights:
            h.update(f"{variable.path}:{variable.trainable}:".encode())
            _feed(h, np.asarray(variable.numpy()))
    elif dataclasses.is_dataclass(value) and not isinstance(value, type):
        h.update(f"dataclass:{type(value).__qualname__}:".encode())
        _feed(h, {f.name: getattr(value, f.name) for f in dataclasses.fields(value)})
    elif isinstance(value, Mapping):
        h.update(f"mapping:{len(value)}:".encode())
        for k, v in value.items():  # in order: a dict's order is part of what it means here
            _feed(h, k)
            _feed(h, v)
    elif isinstance(value, (list, tuple)):
        h.update(f"{type(value).__name__}:{len(value)}:".encode())
        for item in value:
            _feed(h, item)
    elif value is None or isinstance(value, (bool, int, float, str, np.generic)):
        h.update(f"{type(value).__name__}:{value!r};".encode())
    else:
        raise ValueError(f"cannot make a cache key from a {type(value).__name__}; "
                         "pass arrays, Keras models, dataclasses, mappings, sequences, "
                         "numbers or strings")


def _code_digest() -> str:
    """SHA-256 over tlutils' own source files: a change to the library is a new key."""
    h = hashlib.sha256()
    package = Path(__file__).resolve().parent
    for path in sorted(package.glob("*.py")):
        h.update(path.name.encode())
        h.update(path.read_bytes())
    return h.hexdigest()


def fingerprint(parts: Mapping[str, object]) -> str:
    """The cache key of a computation (chapters 01 and 04): a SHA-256 (hex) over ``parts``
    (name -> input: arrays, Keras models (architecture and weights), dataclasses such as
    ``transfer.Recipe``, mappings, sequences, numbers, strings, None) and over the library
    versions, tlutils' source code and TensorFlow's thread, kernel and determinism settings.

    Raises ValueError if ``parts`` is not a mapping with string keys or holds another type.
    """
    import keras
    import tensorflow as tf

    if not isinstance(parts, Mapping) or not all(isinstance(k, str) for k in parts):
        raise ValueError(f"parts must be a mapping name -> value with str names, got {parts!r}")
    h = hashlib.sha256()
    context = {
        "tensorflow": tf.__version__, "keras": keras.__version__, "numpy": np.__version__,
        "pandas": pd.__version__, "tlutils": _code_digest(),
        "op_determinism": config.deterministic(),
        "env": {name: os.environ.get(name) for name in _ENV},
    }
    h.update(json.dumps(context, sort_keys=True).encode())
    _feed(h, dict(parts))
    return h.hexdigest()


def cached_table(name: str, parts: Mapping[str, object],
                 compute: Callable[[], pd.DataFrame]) -> tuple[pd.DataFrame, bool]:
    """``(table, from_cache)``: the DataFrame ``compute()`` returns for these ``parts``,
    computed once per key and read back from ``config.cache_dir() / "results"`` afterwards
    (chapters 01 and 04; ``transfer.compare(..., cache=True)`` uses it).

    ``name`` (letters, digits, ``-`` and ``_``) prefixes the entry's file name for people
    looking in the folder. Where the cache folder cannot be written, the table is computed
    and not stored. Raises ValueError for a bad ``name``, ``parts`` or ``compute``, or if
    ``compute`` does not return a DataFrame.
    """
    if not isinstance(name, str) or not name or not all(c.isalnum() or c in "-_" for c in name):
        raise ValueError(f"name must be a non-empty string of letters, digits, '-' and '_', "
                         f"got {name!r}")
    if not callable(compute):
        raise ValueError("compute must be a function () -> pandas.DataFrame")
    key = fingerprint(parts)

    def run() -> pd.DataFrame:
        table = compute()
        if not isinstance(table, pd.DataFrame):
            raise ValueError(f"compute must return a pandas.DataFrame, got "
                             f"{type(table).__name__}")
        return table

    lock = contextlib.ExitStack()
    try:
        folder = config.cache_dir() / "results"
        folder.mkdir(parents=True, exist_ok=True)
        # exclusive for the whole computation: a second asker waits, then reads
        lock.enter_context(io.locked(folder / f"{name}.{key[:16]}.lock", exclusive=True))
    except OSError:  # a read-only cache: compute, store nothing
        return run(), False
    path = folder / f"{name}.{key[:16]}.pkl"
    with lock:
        if path.is_file():
            try:
                stored = pickle.loads(path.read_bytes())
                if stored.get("key") == key and isinstance(stored.get("table"), pd.DataFrame):
                    return stored["table"], True
                problem = "its key does not match"
            except Exception as exc:  # noqa: BLE001 - any unreadable entry is recomputed
                problem = f"{type(exc).__name__}: {exc}"[:160]
            warnings.warn(f"cached result {path.name} is unusable ({problem}); recomputing",
                          stacklevel=2)
        table = run()
        blob = pickle.dumps({"key": key, "table": table}, protocol=pickle.HIGHEST_PROTOCOL)
        io.atomic_write_bytes(path, blob)
        return table, False
