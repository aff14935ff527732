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
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

__all__ = ["ATTRIBUTES", "attribute_table", "build_attribute_model", "calibrated_stacking",
           "dap_scores", "fit_attribute_model", "learnable", "predict_attributes",
           "unseen_split"]

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

    from tlutils import config, data, train

    train._check_model(model)
    train._check_xy(x, y)
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
