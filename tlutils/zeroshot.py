"""Zero-shot transfer on digits: recognise classes never seen in training from a description
of them (chapter 05, "Zero-shot transfer", the article's 零 shots迁移学习).

The method is Direct Attribute Prediction (DAP, Lampert et al. 2009). Every digit is
described by a handful of yes/no **attributes** a person can read off a handwritten digit
("a closed loop", "a stroke across the top", ...): :func:`attribute_table`. A network is
trained to predict the attributes from images of the *seen* digits only
(:func:`fit_attribute_model`). An image of an *unseen* digit is then classified by asking
which unseen digit's description best explains its predicted attributes
(:func:`dap_scores`): knowledge moves from seen to unseen classes through the shared
attribute vocabulary, not through examples.

Chapter 05, "From words to pictures", takes the class knowledge from *language* instead of a
table: a few sentences per digit (:data:`DIGIT_DESCRIPTIONS`, or the bare
:data:`DIGIT_NAMES`) are embedded by any text embedder (MiniLM, TF-IDF) with
:func:`text_embeddings` and averaged per class by :func:`class_embeddings`; a linear map
from a frozen CNN's image features into that space is learned on the seen classes with
DeViSE's rank loss or a toy CLIP contrastive loss (:func:`fit_text_map`), and an unseen
digit is named by the nearest class embedding (:func:`text_map_scores`). How long to train
the map (and at what learning rate) is chosen on a class split of the seen classes, never on
the unseen ones (:func:`choose_text_map_steps`).
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass

import numpy as np

from tlutils import checks

__all__ = ["ATTRIBUTES", "attribute_table", "build_attribute_model", "calibrated_stacking",
           "dap_scores", "fit_attribute_model", "learnable", "predict_attributes",
           "unseen_split",
           # chapter 05, "From words to pictures"
           "DIGIT_DESCRIPTIONS", "DIGIT_NAMES", "TextMap", "TextMapChoice", "choose_text_map_steps",
           "class_embeddings", "fit_text_map", "text_embeddings", "text_map_scores"]

#: The attribute vocabulary: name -> what a reader checks on a handwritten digit. The seven
#: position attributes follow the segments of a digital clock's display, read for
#: handwriting (a handwritten 1 is one stroke in the middle, not two right-hand segments).
ATTRIBUTES: dict[str, str] = {
    "top": "a stroke across the top",
    "upper_left": "a stroke down the upper left",
    "upper_right": "a stroke down the upper right",
    "middle": "a stroke across the middle",
    "lower_left": "a stroke down the lower left",
    "lower_right": "a stroke down the lower right",
    "bottom": "a stroke across the bottom",
    "stem": "one long straight vertical stroke",
    "diagonal": "a long diagonal stroke",
    "loop": "a closed loop",
}

# One row per digit, in the order of ATTRIBUTES (1: the digit, as usually handwritten, has it).
_TABLE = {
    0: (1, 1, 1, 0, 1, 1, 1, 0, 0, 1),
    1: (0, 0, 0, 0, 0, 0, 0, 1, 0, 0),
    2: (1, 0, 1, 0, 1, 0, 1, 0, 1, 0),
    3: (1, 0, 1, 1, 0, 1, 1, 0, 0, 0),
    4: (0, 1, 1, 1, 0, 1, 0, 1, 0, 0),
    5: (1, 1, 0, 1, 0, 1, 1, 0, 0, 0),
    6: (0, 1, 0, 1, 1, 1, 1, 0, 0, 1),
    7: (1, 0, 1, 0, 0, 0, 0, 0, 1, 0),
    8: (1, 1, 1, 1, 1, 1, 1, 0, 0, 1),
    9: (1, 1, 1, 1, 0, 1, 0, 1, 0, 1),
}


def attribute_table():
    """The class-attribute table: a DataFrame of 0/1, one row per digit 0-9 and one column
    per attribute in :data:`ATTRIBUTES` (chapter 05, "Zero-shot transfer")."""
    import pandas as pd

    table = pd.DataFrame([_TABLE[d] for d in range(10)], columns=list(ATTRIBUTES),
                         index=pd.RangeIndex(10, name="digit"))
    return table.astype(np.int64)


def _as_matrix(table) -> np.ndarray:
    import pandas as pd

    if isinstance(table, pd.DataFrame):
        table = table.to_numpy()
    if not isinstance(table, np.ndarray) or table.ndim != 2 or table.size == 0:
        raise ValueError("table must be a 2-D class x attribute array or DataFrame")
    if not np.isin(table, (0, 1)).all():
        raise ValueError("table must hold only 0 and 1")
    return table.astype(np.float32)


def _check_classes(name: str, classes: object, n: int) -> list[int]:
    if isinstance(classes, (str, bytes)) or not isinstance(classes, Sequence) or not classes:
        raise ValueError(f"{name} must be a non-empty sequence of class indices, got {classes!r}")
    out = [int(c) for c in classes]
    if len(set(out)) != len(out) or not all(0 <= c < n for c in out):
        raise ValueError(f"{name} must hold distinct classes in 0..{n - 1}, got {classes!r}")
    return out


def unseen_split(n_unseen: int = 3, *, seed: int = 0, n_classes: int = 10
                 ) -> tuple[list[int], list[int]]:
    """A random split of the classes into ``(seen, unseen)``, both sorted; ``seed`` picks the
    split (chapter 05 averages over several)."""
    if not isinstance(n_classes, int) or n_classes < 2:
        raise ValueError(f"n_classes must be an int >= 2, got {n_classes!r}")
    if not isinstance(n_unseen, int) or isinstance(n_unseen, bool) or not 1 <= n_unseen < n_classes:
        raise ValueError(f"n_unseen must be an int in 1..{n_classes - 1}, got {n_unseen!r}")
    if not isinstance(seed, int) or seed < 0:
        raise ValueError(f"seed must be a non-negative int, got {seed!r}")
    unseen = sorted(np.random.default_rng(seed).choice(n_classes, n_unseen, replace=False).tolist())
    return [c for c in range(n_classes) if c not in unseen], unseen


def learnable(table, seen: Sequence[int]) -> list[bool]:
    """For each attribute, whether the seen classes show it both present and absent. An
    attribute that is the same for every seen class cannot be learned from them."""
    a = _as_matrix(table)
    rows = a[_check_classes("seen", seen, len(a))]
    return [bool(v) for v in rows.min(axis=0) != rows.max(axis=0)]


def build_attribute_model(num_attributes: int, *, seed: int = 0):
    """The attribute network: the book's CNN (:func:`tlutils.models.build_cnn`) with one
    output logit per attribute instead of one per class (chapter 05)."""
    import keras

    from tlutils import models

    if not isinstance(num_attributes, int) or isinstance(num_attributes, bool) or num_attributes < 2:
        raise ValueError(f"num_attributes must be an int >= 2, got {num_attributes!r}")
    keras.utils.set_random_seed(seed)
    return models.build_cnn(num_classes=num_attributes, name="attribute_cnn")


def fit_attribute_model(model, x: np.ndarray, y: np.ndarray, table, *, steps: int = 300,
                        batch_size: int = 64, lr: float = 1e-3, augment: bool = False,
                        seed: int = 0):
    """Train ``model`` to predict the attributes of each image's class (chapter 05).

    ``y`` holds class labels (rows of ``table``); the target of image ``i`` is the row
    ``table[y[i]]``, and the loss is the binary cross-entropy of every attribute as an
    independent yes/no question. ``augment`` adds :func:`tlutils.data.augmenter`'s small
    random shifts, rotations and zooms to the training batches. Returns a one-row history
    DataFrame (the final ``loss``).
    """
    import keras
    import pandas as pd
    import tensorflow as tf

    from tlutils import config, data

    checks.model(model)
    checks.xy(x, y)
    a = _as_matrix(table)
    if int(model.output_shape[-1]) != a.shape[1]:
        raise ValueError(f"model has {model.output_shape[-1]} outputs but table has "
                         f"{a.shape[1]} attributes")
    if y.min() < 0 or y.max() >= len(a):
        raise ValueError(f"y must hold class labels 0..{len(a) - 1}")
    for name, value in (("steps", steps), ("batch_size", batch_size)):
        if not isinstance(value, int) or isinstance(value, bool) or value <= 0:
            raise ValueError(f"{name} must be a positive int, got {value!r}")
    if not isinstance(lr, (int, float)) or isinstance(lr, bool) or not lr > 0:
        raise ValueError(f"lr must be a positive number, got {lr!r}")
    config.setup(seed)
    targets = tf.constant(a)
    ds = data.to_dataset(x, y, batch_size=batch_size, shuffle=True, seed=seed, repeat=True)
    ds = ds.map(lambda xb, yb: (xb, tf.gather(targets, yb)))
    trainee = model
    if augment:
        trainee = keras.Sequential([keras.Input(model.input_shape[1:]),
                                    data.augmenter(seed=seed), model], name="augmented")
    trainee.compile(optimizer=keras.optimizers.Adam(lr),
                    loss=keras.losses.BinaryCrossentropy(from_logits=True))
    hist = trainee.fit(ds, epochs=1, steps_per_epoch=steps, verbose=0)
    return pd.DataFrame({"step": [steps], "loss": [float(hist.history["loss"][-1])]})


def predict_attributes(model, x: np.ndarray) -> np.ndarray:
    """Predicted probability of every attribute for every image, shape (n, attributes)."""
    from tlutils import train

    logits = train.predict_logits(model, x)
    return (1.0 / (1.0 + np.exp(-logits.astype(np.float64)))).astype(np.float32)


def dap_scores(probs: np.ndarray, table, classes: Sequence[int], *, prior=None,
               eps: float = 1e-3) -> np.ndarray:
    """Direct Attribute Prediction scores, shape (n, len(classes)) (chapter 05).

    The score of class ``z`` is ``sum_m log p(a_m = table[z, m] | x)``: how well z's
    description explains the predicted attributes, treating attributes as independent.
    With ``prior`` (each attribute's frequency among the training classes) each term is
    divided by ``p(a_m = table[z, m])`` as in Lampert et al. (2009), so that attributes that
    are almost always present count less. Probabilities are clipped to ``[eps, 1 - eps]``.
    The predicted class is ``classes[scores.argmax(1)]``.
    """
    a = _as_matrix(table)
    cls = _check_classes("classes", classes, len(a))
    if not isinstance(probs, np.ndarray) or probs.ndim != 2 or probs.shape[1] != a.shape[1]:
        raise ValueError(f"probs must be an array (n, {a.shape[1]}), got "
                         f"{getattr(probs, 'shape', probs)!r}")
    if not isinstance(eps, float) or not 0.0 < eps < 0.5:
        raise ValueError(f"eps must be a float in (0, 0.5), got {eps!r}")
    p = np.clip(probs.astype(np.float64), eps, 1 - eps)
    log_yes, log_no = np.log(p), np.log(1 - p)
    if prior is not None:
        prior = np.asarray(prior, dtype=np.float64)
        if prior.shape != (a.shape[1],):
            raise ValueError(f"prior must have one value per attribute ({a.shape[1]}), "
                             f"got shape {prior.shape}")
        prior = np.clip(prior, eps, 1 - eps)
        log_yes, log_no = log_yes - np.log(prior), log_no - np.log(1 - prior)
    rows = a[cls].astype(np.float64)
    return log_yes @ rows.T + log_no @ (1 - rows).T


def calibrated_stacking(scores: np.ndarray, is_seen: Sequence[bool], gamma: float) -> np.ndarray:
    """Subtract ``gamma`` from the scores of seen classes (Chao et al. 2016), the simple fix
    for generalised zero-shot learning, where seen classes otherwise win almost every image
    (chapter 05, "Pitfalls")."""
    if not isinstance(scores, np.ndarray) or scores.ndim != 2:
        raise ValueError(f"scores must be a 2-D array, got {getattr(scores, 'shape', scores)!r}")
    mask = np.asarray(is_seen, dtype=bool)
    if mask.shape != (scores.shape[1],):
        raise ValueError(f"is_seen must have one flag per class ({scores.shape[1]}), "
                         f"got {len(mask)}")
    if not isinstance(gamma, (int, float)) or isinstance(gamma, bool) or not np.isfinite(gamma):
        raise ValueError(f"gamma must be a finite number, got {gamma!r}")
    return scores - float(gamma) * mask[None, :]


# --------------------------------------------------------------------------------------------
# From words to pictures: class knowledge from language (chapter 05, "From words to pictures")
# --------------------------------------------------------------------------------------------

#: The digits' English names: the barest language description of a class.
DIGIT_NAMES: tuple[str, ...] = ("zero", "one", "two", "three", "four", "five", "six", "seven",
                                "eight", "nine")

#: How each digit is usually handwritten, in plain words, written for the book as a reader
#: would describe them: four short sentences per digit that name strokes, curves, loops and
#: where they sit, never the digit itself or another digit (chapter 05, "From words to
#: pictures", which also shows where they fail).
DIGIT_DESCRIPTIONS: dict[int, tuple[str, ...]] = {
    0: ("An oval: a single closed loop, taller than it is wide, empty inside.",
        "One round ring drawn in a single stroke, with no straight lines.",
        "A closed egg-shaped curve that fills the whole height.",
        "A tall ellipse, like the letter O."),
    1: ("One straight vertical line, sometimes slightly slanted.",
        "A single upright stroke with no curves and no loops.",
        "A thin stick from top to bottom, often with a small flag at the top.",
        "Just one short straight stroke, like a capital I."),
    2: ("A curve hooking over the top, a diagonal line down to the left and a flat line "
        "along the bottom.",
        "A rounded top like a question mark that sweeps down and ends in a horizontal base.",
        "A swan shape: a curved head, a slanted neck and a flat bottom stroke.",
        "An open arc on top, one diagonal stroke and a straight line across the bottom."),
    3: ("Two open curves stacked on top of each other, both bulging to the right.",
        "Two bumps on the right side that meet at a point in the middle.",
        "An upper curve and a lower curve joined in the middle, open on the left.",
        "Two half circles one above the other with their openings facing left."),
    4: ("A tall vertical stroke on the right, crossed by a horizontal bar.",
        "A slanted line down the left that turns into a horizontal bar, crossed by a "
        "vertical line.",
        "Angular with no curves: an open triangle at the upper left and a long vertical stroke.",
        "Like a chair: a vertical line, a crossbar and a short line rising on the left."),
    5: ("A flat stroke across the top, a short line down the left, then a round belly at the "
        "bottom.",
        "A horizontal line on top, a drop straight down, and a curve bulging to the right "
        "below.",
        "An angular top half over a lower half shaped like a half circle open to the left.",
        "A flag on top and a big hook at the bottom that curls back to the left."),
    6: ("A long curve coming down from the top into a closed loop at the bottom.",
        "A small closed circle at the bottom with a curved tail rising up to the top.",
        "A sweeping stroke that curls into a loop in its lower half.",
        "A round loop low down and an open arc reaching up above it."),
    7: ("A horizontal line across the top and a long diagonal stroke down to the bottom left.",
        "Two straight strokes meeting at a sharp corner in the upper right, with no curves.",
        "A flat top bar with a slanted line falling from its right end.",
        "An angle like an upside-down L whose leg is tilted."),
    8: ("Two closed loops stacked on top of each other, like a snowman.",
        "An upper loop and a lower loop that touch in the middle.",
        "Two small circles one above the other, the strokes crossing at the waist.",
        "An hourglass drawn in one continuous stroke, with two holes."),
    9: ("A closed loop at the top with a straight tail going down on the right.",
        "A small circle high up and a vertical stroke below it.",
        "Like a balloon on a string: a round head on top and a line hanging down.",
        "A loop in the upper half and a long stem in the lower half."),
}


def _check_descriptions(descriptions: object) -> dict[int, list[str]]:
    if not isinstance(descriptions, Mapping) or not descriptions:
        raise ValueError("descriptions must be a non-empty mapping class -> sentences, got "
                         f"{type(descriptions).__name__}")
    keys = list(descriptions)
    if (not all(isinstance(k, (int, np.integer)) and not isinstance(k, bool) for k in keys)
            or sorted(int(k) for k in keys) != list(range(len(keys)))):
        raise ValueError(f"descriptions must have the classes 0..n-1 as keys, got {keys!r}")
    out: dict[int, list[str]] = {}
    for k in sorted(keys):
        texts = descriptions[k]
        texts = [texts] if isinstance(texts, str) else texts
        if (not isinstance(texts, (Sequence, np.ndarray)) or len(texts) == 0
                or not all(isinstance(t, str) and t.strip() for t in texts)):
            raise ValueError(f"descriptions[{k}] must be a non-empty string or a non-empty "
                             "sequence of non-empty strings")
        out[int(k)] = list(texts)
    return out


def text_embeddings(descriptions: Mapping[int, str | Sequence[str]],
                    embed: Callable[[list[str]], np.ndarray]) -> tuple[np.ndarray, np.ndarray]:
    """Embed every description of every class: returns ``(embeddings, classes)`` (chapter 05,
    "From words to pictures").

    ``descriptions`` maps each class ``0..n-1`` to one sentence or several (e.g.
    :data:`DIGIT_DESCRIPTIONS`, or ``dict(enumerate(DIGIT_NAMES))``). ``embed`` turns a list
    of texts into an array with one row per text: MiniLM's ``encoder.embed``
    (:func:`tlutils.text.text_encoder`, which caches on disk), a TF-IDF vectoriser's
    ``lambda t: vec.fit_transform(t).toarray()``, anything. It is called once, on all texts in
    class order. ``embeddings`` are float32 rows scaled to unit length, shape
    ``(texts, dim)``; ``classes`` (int64, one per row) says which class each text describes.
    """
    table = _check_descriptions(descriptions)
    if not callable(embed):
        raise ValueError(f"embed must be a callable texts -> array, got {type(embed).__name__}")
    texts = [t for k in table for t in table[k]]
    classes = np.array([k for k in table for _ in table[k]], dtype=np.int64)
    z = np.asarray(embed(texts), dtype=np.float64)
    if z.ndim != 2 or z.shape[0] != len(texts) or not np.all(np.isfinite(z)):
        raise ValueError(f"embed must return a finite 2-D array with one row per text "
                         f"({len(texts)}), got shape {z.shape}")
    z = z / np.maximum(np.linalg.norm(z, axis=1, keepdims=True), 1e-12)
    return z.astype(np.float32), classes


def _check_text_rows(embeddings: object, classes: object) -> tuple[np.ndarray, np.ndarray]:
    z = checks.features("embeddings", embeddings)
    cls = np.asarray(classes)
    if cls.ndim != 1 or len(cls) != len(z):
        raise ValueError(f"classes must hold one class per embedding row ({len(z)}), got "
                         f"shape {cls.shape}")
    checks.labels("classes", cls)
    return z.astype(np.float64), cls.astype(np.int64)


def class_embeddings(embeddings: np.ndarray, classes: Sequence[int] | np.ndarray) -> np.ndarray:
    """One vector per class, float32 ``(max(classes) + 1, dim)``: the mean of the class's
    text embeddings (rows of ``embeddings`` whose entry in ``classes`` is that class), scaled
    to unit length; a class without texts gets a zero row (chapter 05, "From words to
    pictures"). With one row per class (e.g. 5.2's attribute table) it only normalises."""
    z, cls = _check_text_rows(embeddings, classes)
    out = np.zeros((int(cls.max()) + 1, z.shape[1]))
    np.add.at(out, cls, z)
    out /= np.maximum(np.linalg.norm(out, axis=1, keepdims=True), 1e-12)
    return out.astype(np.float32)


@dataclass(frozen=True)
class TextMap:
    """A linear map from image features into a text-embedding space, built by
    :func:`fit_text_map` (chapter 05, "From words to pictures"):
    ``project(f) = ((f - mean) / scale) @ weights[:-1] + weights[-1]``. ``steps``: the Adam
    steps it was trained for; ``curve``: under a stopping rule, ``(steps, validation
    accuracy)`` after every round trained."""

    weights: np.ndarray
    mean: np.ndarray
    scale: np.ndarray
    objective: str
    steps: int | None = None
    curve: tuple[tuple[int, float], ...] = ()

    def project(self, features: np.ndarray) -> np.ndarray:
        """Image features ``(n, feature_dim)`` -> points in the text space, float32
        ``(n, text_dim)``."""
        f = checks.features("features", features)
        if f.shape[1] != len(self.mean):
            raise ValueError(f"features must have {len(self.mean)} columns, got {f.shape[1]}")
        h = (f.astype(np.float64) - self.mean) / self.scale
        return (h @ self.weights[:-1] + self.weights[-1]).astype(np.float32)


_OBJECTIVES = ("devise", "contrastive")


def _devise_grad(u: np.ndarray, y: np.ndarray, protos: np.ndarray, margin: float) -> np.ndarray:
    """Gradient of DeViSE's hinge rank loss (Frome et al. 2013) with respect to the projected
    images ``u``: ``sum_j max(0, margin - t_y.u + t_j.u)`` over the other seen classes ``j``."""
    rows = np.arange(len(y))
    s = u @ protos.T
    active = (margin - s[rows, y][:, None] + s > 0).astype(np.float64)
    active[rows, y] = 0.0
    g = active
    g[rows, y] = -active.sum(axis=1)
    return (g @ protos) / len(y)


def _softmax(s: np.ndarray, axis: int) -> np.ndarray:
    e = np.exp(s - s.max(axis=axis, keepdims=True))
    return e / e.sum(axis=axis, keepdims=True)


def _contrastive_grad(u: np.ndarray, y: np.ndarray, texts: np.ndarray,
                      temperature: float) -> np.ndarray:
    """Gradient of CLIP's symmetric cross-entropy (Radford et al. 2021) over a batch of
    image-text pairs (image ``i`` with text ``i``), on cosine similarities divided by the
    temperature; every pair of the same class counts as a match."""
    norm = np.maximum(np.linalg.norm(u, axis=1, keepdims=True), 1e-12)
    z = u / norm
    s = z @ texts.T / temperature
    same = (y[:, None] == y[None, :]).astype(np.float64)
    g_s = ((_softmax(s, 1) - same / same.sum(axis=1, keepdims=True))
           + (_softmax(s, 0) - same / same.sum(axis=0, keepdims=True))) / (2 * len(y))
    g_z = (g_s @ texts) / temperature
    return (g_z - np.sum(g_z * z, axis=1, keepdims=True) * z) / norm


def _one_blas_thread():
    """Small matrix products run fastest on one BLAS thread (and do not fight other work)."""
    try:
        from threadpoolctl import threadpool_limits
    except ImportError:  # pragma: no cover - scikit-learn brings threadpoolctl
        return contextlib.nullcontext()
    return threadpool_limits(1, user_api="blas")


class _MapTrainer:
    """One map's training state: the weights, Adam's moments, the step count and the random
    stream, so that training continued round after round is exactly one longer run."""

    def __init__(self, f: np.ndarray, y: np.ndarray, z: np.ndarray, text_y: np.ndarray, *,
                 objective: str, batch_size: int, lr: float, l2: float, margin: float,
                 temperature: float, seed: int) -> None:
        seen = np.unique(y)
        self.objective, self.lr, self.l2 = objective, lr, l2
        self.margin, self.temperature = margin, temperature
        self.mean = f.mean(axis=0).astype(np.float64)
        self.scale = f.std(axis=0).astype(np.float64) + 1e-6
        self.h_all = np.concatenate([(f - self.mean) / self.scale, np.ones((len(f), 1))], axis=1)
        keep = np.isin(text_y, seen)
        self.z, text_y = z[keep], text_y[keep]
        self.protos = class_embeddings(self.z, text_y).astype(np.float64)[seen]
        self.y_idx = np.searchsorted(seen, y)  # seen classes renumbered 0..k-1
        self.by_class = [np.flatnonzero(text_y == c) for c in seen]
        self.rng = np.random.default_rng(seed)
        self.w = self.rng.normal(0.0, 1.0 / np.sqrt(self.h_all.shape[1]),
                                 size=(self.h_all.shape[1], self.z.shape[1]))
        self.m, self.v = np.zeros_like(self.w), np.zeros_like(self.w)
        self.b = min(batch_size, len(self.h_all))
        self.steps = 0

    def advance(self, steps: int) -> None:
        """Train ``steps`` more Adam steps."""
        beta1, beta2 = 0.9, 0.999
        rng, w = self.rng, self.w
        with _one_blas_thread():
            for _ in range(steps):
                self.steps += 1
                step = self.steps
                idx = rng.choice(len(self.h_all), size=self.b, replace=False)
                h, yb = self.h_all[idx], self.y_idx[idx]
                u = h @ w
                if self.objective == "devise":
                    g_u = _devise_grad(u, yb, self.protos, self.margin)
                else:
                    pick = np.array([self.by_class[k][rng.integers(len(self.by_class[k]))]
                                     for k in yb])
                    g_u = _contrastive_grad(u, yb, self.z[pick], self.temperature)
                g = h.T @ g_u + self.l2 * w
                self.m = beta1 * self.m + (1 - beta1) * g
                self.v = beta2 * self.v + (1 - beta2) * g * g
                w -= (self.lr * (self.m / (1 - beta1 ** step))
                      / (np.sqrt(self.v / (1 - beta2 ** step)) + 1e-8))

    def text_map(self, curve: tuple[tuple[int, float], ...] = ()) -> TextMap:
        return TextMap(weights=self.w.astype(np.float32), mean=self.mean, scale=self.scale,
                       objective=self.objective, steps=self.steps, curve=curve)


def _zero_shot_accuracy(text_map: TextMap, features: np.ndarray, y: np.ndarray,
                        class_emb: np.ndarray, classes: list[int]) -> float:
    scores = text_map_scores(text_map, features, class_emb, classes)
    return float(np.mean(np.asarray(classes)[scores.argmax(axis=1)] == y))


def _check_stopping(stopping: object):
    from tlutils import engine  # imports Keras: only when a stopping rule is asked for

    return checks.instance("stopping", stopping, engine.Stopping)


def _train_to_rule(trainers: Sequence[_MapTrainer], score: Callable[[], float],
                   rule) -> tuple[int, float, tuple[tuple[int, float], ...], list[TextMap]]:
    """Advance every trainer by ``rule.every`` steps per round and ``score()`` them after each
    round, under ``rule`` (:class:`tlutils.engine.Stopping`: stop after ``patience`` rounds
    without improvement, or at ``max_steps``; the best round is the earliest on ties).
    Returns the best round's steps, its score, the curve ``((steps, score), ...)`` of every
    round trained, and the trainers' maps at the best round."""
    best, best_steps, wait, curve, maps = -np.inf, 0, 0, [], []
    for _ in range(rule.max_steps // rule.every):
        for trainer in trainers:
            trainer.advance(rule.every)
        value = float(score())
        curve.append((trainers[0].steps, value))
        if value > best:
            best, best_steps, wait = value, trainers[0].steps, 0
            maps = [trainer.text_map() for trainer in trainers]
        else:
            wait += 1
            if wait >= rule.patience:
                break
    return best_steps, best, tuple(curve), maps


def fit_text_map(features: np.ndarray, y: np.ndarray, embeddings: np.ndarray,
                 classes: Sequence[int] | np.ndarray, *, objective: str = "devise",
                 steps: int | None = None, batch_size: int = 128, lr: float = 0.01,
                 l2: float = 1e-4, margin: float = 0.1, temperature: float = 0.1,
                 seed: int = 0, validation: tuple[np.ndarray, np.ndarray] | None = None,
                 stopping=None) -> TextMap:
    """Learn a linear map from image features into a text-embedding space from images of the
    *seen* classes only (chapter 05, "From words to pictures").

    ``features`` ``(n, feature_dim)`` are a frozen network's features of images with class
    labels ``y``; ``embeddings`` ``(texts, text_dim)`` with ``classes`` (the class of each
    row, as :func:`text_embeddings` returns them) describe the classes. Only the texts of the
    classes present in ``y`` are used, so an unseen class's description never reaches
    training. Two objectives:

    * ``"devise"``: DeViSE's hinge rank loss (Frome et al. 2013): each projected image must
      be closer (dot product, by ``margin``) to its class's embedding
      (:func:`class_embeddings`) than to any other seen class's.
    * ``"contrastive"``: a toy CLIP (Radford et al. 2021): each image in a batch is paired
      with one random description of its class, and the symmetric cross-entropy of the
      batch's cosine similarities over ``temperature`` pulls matching pairs together and
      pushes the others apart; pairs of the same class all count as matches.

    Features are standardised, then a weight matrix (and bias) is trained by Adam with weight
    decay ``l2``, in NumPy: the same ``seed`` gives the same map. Training runs either for
    ``steps`` mini-batches (default 300), or, with ``stopping`` (a
    :class:`tlutils.engine.Stopping`) and ``validation=(features_val, y_val)``, in rounds of
    ``stopping.every`` steps until the zero-shot accuracy on the validation images (among
    their own classes, which must be absent from ``y``: a *class split* of the seen classes,
    never the real unseen ones) has not improved for ``stopping.patience`` rounds, or
    ``stopping.max_steps``. The map returned is then the best round's, exactly the map that
    ``steps=text_map.steps`` gives (rounds continue one run). ``TextMap.steps`` is the number
    of steps trained; ``TextMap.curve`` the validation accuracy after each round. To choose
    the steps (and the learning rate) on several class splits and retrain on every seen class,
    use :func:`choose_text_map_steps`. Classify with :func:`text_map_scores`.
    """
    f, y = checks.xy(features, y, names=("features", "y"))
    f = checks.features("features", f)
    z, text_y = _check_text_rows(embeddings, classes)
    checks.one_of("objective", objective, _OBJECTIVES)
    seen = np.unique(y)
    missing = sorted(set(seen.tolist()) - set(text_y.tolist()))
    if missing:
        raise ValueError(f"classes has no text for the classes {missing} present in y")
    if len(seen) < 2:
        raise ValueError("y must hold at least two classes")
    fixed_steps = 300
    if stopping is None:
        if validation is not None:
            raise ValueError("validation needs a stopping rule: pass stopping= too")
        if steps is not None:
            fixed_steps = checks.int_at_least("steps", steps)
    else:
        rule = _check_stopping(stopping)
        if steps is not None:
            raise ValueError("steps and stopping: give one of the two (the stopping rule "
                             "chooses the steps)")
        if validation is None:
            raise ValueError("stopping needs validation=(features_val, y_val), images of "
                             "classes absent from y")
        f_val, y_val = checks.validation(validation)
        f_val = checks.features("x_val", f_val)
        if f_val.shape[1] != f.shape[1]:
            raise ValueError(f"validation features must have {f.shape[1]} columns, got "
                             f"{f_val.shape[1]}")
        val_classes = np.unique(y_val).astype(np.int64).tolist()
        if len(val_classes) < 2 or set(val_classes) & set(seen.tolist()):
            raise ValueError(f"validation must hold images of at least two classes absent "
                             f"from y (a class split), got classes {val_classes}")
        if set(val_classes) - set(text_y.tolist()):
            raise ValueError(f"classes has no text for the validation classes "
                             f"{sorted(set(val_classes) - set(text_y.tolist()))}")
    batch_size = checks.int_at_least("batch_size", batch_size, 2)
    lr = checks.number("lr", lr, low=0.0, strict=True)
    l2 = checks.number("l2", l2, low=0.0)
    margin = checks.number("margin", margin, low=0.0, strict=True)
    temperature = checks.number("temperature", temperature, low=0.0, strict=True)
    seed = checks.int_at_least("seed", seed, 0)

    trainer = _MapTrainer(f, y, z, text_y, objective=objective, batch_size=batch_size, lr=lr,
                          l2=l2, margin=margin, temperature=temperature, seed=seed)
    if stopping is None:
        trainer.advance(fixed_steps)
        return trainer.text_map()
    class_emb = class_embeddings(z, text_y)

    def score() -> float:
        return _zero_shot_accuracy(trainer.text_map(), f_val, y_val, class_emb, val_classes)

    _, _, curve, (best,) = _train_to_rule([trainer], score, rule)
    return TextMap(weights=best.weights, mean=best.mean, scale=best.scale,
                   objective=objective, steps=best.steps, curve=curve)


@dataclass(frozen=True)
class TextMapChoice:
    """The training settings :func:`choose_text_map_steps` chose on a class split of the seen
    classes (chapter 05, "From words to pictures"): ``steps`` and ``lr`` to pass to
    :func:`fit_text_map`, the mean pseudo-unseen accuracy ``val_accuracy`` they reached,
    ``stopped`` (the steps trained when the rule stopped that run), the rule's ``max_steps``,
    and ``grid``: one row ``(lr, steps, val_accuracy, stopped)`` per learning rate tried."""

    steps: int
    lr: float
    val_accuracy: float
    stopped: int
    max_steps: int
    grid: tuple[tuple[float, int, float, int], ...]

    @property
    def capped(self) -> bool:
        """Whether any run of the grid reached ``max_steps`` (the cap should be one no run
        reaches: then every run was stopped by the rule, not by the cap)."""
        return any(row[3] >= self.max_steps for row in self.grid)


def _check_folds(held_out: object, seen: list[int]) -> list[list[int]]:
    if isinstance(held_out, (str, bytes)) or not isinstance(held_out, Sequence) or not held_out:
        raise ValueError(f"held_out must be a non-empty sequence of folds (each a sequence of "
                         f"seen classes), got {held_out!r}")
    if all(isinstance(c, (int, np.integer)) and not isinstance(c, bool) for c in held_out):
        held_out = [held_out]  # one fold
    folds = []
    for fold in held_out:
        if (isinstance(fold, (str, bytes)) or not isinstance(fold, (Sequence, np.ndarray))
                or not all(isinstance(c, (int, np.integer)) and not isinstance(c, bool)
                           for c in fold)):
            raise ValueError(f"held_out must hold folds of class indices, got {fold!r}")
        out = [int(c) for c in fold]
        if (len(out) < 2 or len(set(out)) != len(out) or not set(out) <= set(seen)
                or len(seen) - len(out) < 2):
            raise ValueError(f"held_out: each fold must hold at least two distinct classes "
                             f"of y and leave at least two to train on, got {fold!r} with "
                             f"classes {seen} in y")
        folds.append(out)
    return folds


def choose_text_map_steps(features: np.ndarray, y: np.ndarray, embeddings: np.ndarray,
                          classes: Sequence[int] | np.ndarray, *,
                          held_out: Sequence[Sequence[int]], stopping,
                          lrs: Sequence[float] | None = None, objective: str = "devise",
                          batch_size: int = 128, lr: float = 0.01, l2: float = 1e-4,
                          margin: float = 0.1, temperature: float = 0.1,
                          seed: int = 0) -> TextMapChoice:
    """Choose :func:`fit_text_map`'s number of steps (and learning rate) on a *class split* of
    the seen classes, the zero-shot validation of Xian et al. (2018), so that the unseen
    classes and the test images play no part in the choice (chapter 05, "From words to
    pictures").

    ``features``, ``y`` are the seen classes' training images; ``held_out`` is a list of
    folds, each a few seen classes (at least two) to treat as pseudo-unseen. For each fold a
    map is trained on the other seen classes' images and scored by zero-shot accuracy on the
    fold's images among the fold's classes; the folds train side by side in rounds, and
    ``stopping`` (a :class:`tlutils.engine.Stopping`) is applied to their mean accuracy after
    each round. Each learning rate in ``lrs`` (default ``(lr,)``) is run so; the one whose best
    round scores highest wins (the first in ``lrs`` on ties). The other arguments are
    :func:`fit_text_map`'s. Retrain on every seen class with the choice:
    ``fit_text_map(..., steps=choice.steps, lr=choice.lr)``.
    """
    f, y = checks.xy(features, y, names=("features", "y"))
    f = checks.features("features", f)
    z, text_y = _check_text_rows(embeddings, classes)
    checks.one_of("objective", objective, _OBJECTIVES)
    seen = np.unique(y).astype(np.int64).tolist()
    missing = sorted(set(seen) - set(text_y.tolist()))
    if missing:
        raise ValueError(f"classes has no text for the classes {missing} present in y")
    folds = _check_folds(held_out, seen)
    rule = _check_stopping(stopping)
    grid = [lr] if lrs is None else checks.sequence("lrs", lrs)
    grid = [checks.number("lrs", v, low=0.0, strict=True) for v in grid]
    batch_size = checks.int_at_least("batch_size", batch_size, 2)
    l2 = checks.number("l2", l2, low=0.0)
    margin = checks.number("margin", margin, low=0.0, strict=True)
    temperature = checks.number("temperature", temperature, low=0.0, strict=True)
    seed = checks.int_at_least("seed", seed, 0)

    class_emb = class_embeddings(z, text_y)
    parts = []
    for fold in folds:
        out = np.isin(y, fold)
        parts.append((f[~out], y[~out], f[out], y[out], fold))
    rows = []
    for rate in grid:
        trainers = [_MapTrainer(f_tr, y_tr, z, text_y, objective=objective,
                                batch_size=batch_size, lr=rate, l2=l2, margin=margin,
                                temperature=temperature, seed=seed)
                    for f_tr, y_tr, _, _, _ in parts]

        def score(trainers=trainers) -> float:
            return float(np.mean([_zero_shot_accuracy(t.text_map(), f_val, y_val, class_emb,
                                                      fold)
                                  for t, (_, _, f_val, y_val, fold) in zip(trainers, parts)]))

        steps, value, curve, _ = _train_to_rule(trainers, score, rule)
        rows.append((rate, steps, value, curve[-1][0]))
    best = max(range(len(rows)), key=lambda i: (rows[i][2], -i))
    rate, steps, value, stopped = rows[best]
    return TextMapChoice(steps=steps, lr=rate, val_accuracy=value, stopped=stopped,
                         max_steps=rule.max_steps, grid=tuple(rows))


def text_map_scores(text_map: TextMap, features: np.ndarray, class_emb: np.ndarray,
                    classes: Sequence[int]) -> np.ndarray:
    """Zero-shot scores, shape ``(n, len(classes))``: the cosine similarity of each projected
    image with the embedding of each class in ``classes`` (rows of ``class_emb``, as
    :func:`class_embeddings` returns them) (chapter 05, "From words to pictures"). The
    prediction is ``np.asarray(classes)[scores.argmax(1)]``."""
    checks.instance("text_map", text_map, TextMap)
    emb = checks.features("class_emb", class_emb)
    if emb.shape[1] != text_map.weights.shape[1]:
        raise ValueError(f"class_emb must have {text_map.weights.shape[1]} columns (the text "
                         f"space of text_map), got {emb.shape[1]}")
    cls = _check_classes("classes", classes, len(emb))
    u = text_map.project(features).astype(np.float64)
    u /= np.maximum(np.linalg.norm(u, axis=1, keepdims=True), 1e-12)
    t = emb[cls].astype(np.float64)
    t /= np.maximum(np.linalg.norm(t, axis=1, keepdims=True), 1e-12)
    return (u @ t.T).astype(np.float32)
