"""Looking inside a transferred model: saliency maps, Grad-CAM, linear CKA and weight change
(section 5.5, "Interpretability").

* :func:`saliency` is the gradient of a class score with respect to the input pixels
  (Simonyan et al. 2014): which pixels would change the decision most.
* :func:`grad_cam` weights a convolution layer's feature maps by the pooled gradient of the
  class score (Selvaraju et al. 2017): a coarse map of where the evidence is.
* :func:`linear_cka` compares two representations of the same inputs (Kornblith et al.
  2019); :func:`layer_cka` applies it layer by layer to two models, e.g. a source model and
  its fine-tuned copy.
* :func:`relative_change` is the book's one measure of how far weights moved,
  ``||w - w0|| / ||w0||``; :func:`weight_change` tabulates it layer by layer.

All of them take plain ``keras.Model``s and NumPy arrays and return arrays, numbers or
DataFrames.
"""

from __future__ import annotations

from collections.abc import Sequence

import keras
import numpy as np
import pandas as pd
import tensorflow as tf

from tlutils import checks, models

__all__ = ["activations", "cka_matrix", "grad_cam", "layer_cka", "linear_cka",
           "relative_change", "saliency", "weight_change"]


def _class_indices(class_index: int | Sequence[int] | None, n: int,
                   n_classes: int) -> np.ndarray | None:
    """None (use the predicted class), one int for every input, or one int per input."""
    if class_index is None:
        return None
    idx = np.asarray(class_index)
    if idx.ndim == 0:
        idx = np.full(n, idx)
    if idx.shape != (n,):
        raise ValueError(f"class_index must be None, an int or {n} ints, got {class_index!r}")
    return checks.labels("class_index", idx, n_classes).astype(np.int64)


def _pick(logits: tf.Tensor, idx: np.ndarray | None) -> tf.Tensor:
    if idx is None:
        idx = tf.argmax(logits, axis=-1)
    return tf.gather(logits, idx, axis=-1, batch_dims=1)


def saliency(model: keras.Model, x: np.ndarray, class_index: int | Sequence[int] | None = None,
             *, batch_size: int = 256) -> np.ndarray:
    """Vanilla gradient saliency: ``|d logit_c / d x|``, the largest over colour channels, one
    map per input (section 5.5, "Saliency: which pixels move the score"; Simonyan et al.
    2014).

    ``class_index`` picks the class score to explain: ``None`` (each input's predicted
    class), one int for every input, or one int per input. Returns an array of shape
    ``(n, height, width)`` for image inputs (``x.shape`` minus the channel axis), float32,
    non-negative. The model runs in inference mode (no dropout).
    """
    checks.model(model)
    x = checks.model_inputs("x", x, model).astype(np.float32, copy=False)
    batch_size = checks.int_at_least("batch_size", batch_size)
    idx = _class_indices(class_index, len(x), int(model.output_shape[-1]))
    maps = []
    for start in range(0, len(x), batch_size):
        xb = tf.convert_to_tensor(x[start: start + batch_size])
        with tf.GradientTape() as tape:
            tape.watch(xb)
            score = _pick(model(xb, training=False),
                          None if idx is None else idx[start: start + batch_size])
        grad = np.abs(tape.gradient(score, xb).numpy())
        maps.append(grad.max(axis=-1) if grad.ndim == 4 else grad)
    return np.concatenate(maps).astype(np.float32)


def grad_cam(model: keras.Model, x: np.ndarray, class_index: int | Sequence[int] | None = None,
             *, layer: str = "conv2", batch_size: int = 256) -> np.ndarray:
    """Grad-CAM heat maps for the convolution layer ``layer`` (section 5.5, "Grad-CAM: where
    the evidence is"; Selvaraju et al. 2017).

    Each feature map of ``layer`` is weighted by the spatial mean of the class score's
    gradient with respect to it; the weighted sum goes through a ReLU, is resized to the input
    size (bilinear) and scaled to [0, 1] per input (an all-zero map stays zero). Returns
    ``(n, height, width)`` float32. ``class_index`` works as in :func:`saliency`.
    """
    checks.model(model)
    x = checks.model_inputs("x", x, model).astype(np.float32, copy=False)
    feature_maps = model.get_layer(checks.layer_name("layer", layer, model)).output
    if len(feature_maps.shape) != 4:
        raise ValueError(f"layer={layer!r} must output 4-D feature maps (n, h, w, c), got "
                         f"{tuple(feature_maps.shape)}")
    if x.ndim != 4:
        raise ValueError(f"x must be images (n, h, w, c), got shape {x.shape}")
    batch_size = checks.int_at_least("batch_size", batch_size)
    idx = _class_indices(class_index, len(x), int(model.output_shape[-1]))
    probe = keras.Model(model.inputs[0], [feature_maps, model.outputs[0]])
    maps = []
    for start in range(0, len(x), batch_size):
        xb = tf.convert_to_tensor(x[start: start + batch_size])
        with tf.GradientTape() as tape:
            feats, logits = probe(xb, training=False)
            score = _pick(logits, None if idx is None else idx[start: start + batch_size])
        grads = tape.gradient(score, feats)
        weights = tf.reduce_mean(grads, axis=(1, 2), keepdims=True)
        cam = tf.nn.relu(tf.reduce_sum(weights * feats, axis=-1, keepdims=True))
        cam = tf.image.resize(cam, x.shape[1:3], method="bilinear")[..., 0].numpy()
        peak = cam.reshape(len(cam), -1).max(axis=1).reshape(-1, 1, 1)
        maps.append(np.where(peak > 0, cam / np.where(peak > 0, peak, 1.0), 0.0))
    return np.concatenate(maps).astype(np.float32)


def _centred(a: np.ndarray) -> np.ndarray:
    """``a`` as a float64 ``(n, features)`` matrix with centred columns."""
    m = a.reshape(len(a), -1).astype(np.float64)
    return m - m.mean(axis=0)


def _gram(a: np.ndarray) -> np.ndarray:
    """The centred ``n x n`` Gram matrix of a representation."""
    x = _centred(a)
    return x @ x.T


def _cka_from_grams(k: np.ndarray, m: np.ndarray) -> float:
    den = float(np.linalg.norm(k) * np.linalg.norm(m))
    if den == 0.0:
        raise ValueError("a representation is constant across examples: CKA is undefined")
    return float(np.sum(k * m)) / den


def _linear_cka(a: np.ndarray, b: np.ndarray) -> float:
    x, y = _centred(a), _centred(b)
    if max(x.shape[1], y.shape[1]) > len(x):  # wide features: use the n x n Gram matrices
        return _cka_from_grams(x @ x.T, y @ y.T)
    den = float(np.linalg.norm(x.T @ x) * np.linalg.norm(y.T @ y))
    if den == 0.0:
        raise ValueError("a representation is constant across examples: CKA is undefined")
    return float(np.linalg.norm(y.T @ x) ** 2) / den


def linear_cka(a: np.ndarray, b: np.ndarray) -> float:
    """Linear centred kernel alignment between two representations of the same ``n`` inputs
    (section 5.5, "Which layers did fine-tuning change? Representations, with linear CKA";
    Kornblith et al. 2019).

    ``a`` is ``(n, p)`` and ``b`` is ``(n, q)`` (extra axes are flattened). With centred
    columns, ``CKA = ||b^T a||_F^2 / (||a^T a||_F ||b^T b||_F)``: 1 for identical
    representations and unchanged by rotations and isotropic scaling of either one.
    Raises ValueError if the example counts differ, ``n < 2`` or a representation is constant.
    """
    checks.finite_array("a", a, min_ndim=2)
    checks.finite_array("b", b, min_ndim=2)
    if len(a) != len(b):
        raise ValueError(f"a and b must describe the same examples, got {len(a)} and {len(b)}")
    if len(a) < 2:
        raise ValueError(f"a and b need at least 2 examples, got {len(a)}")
    return _linear_cka(a, b)


def _activations(model: keras.Model, x: np.ndarray, layers: Sequence[str],
                 batch_size: int = 512) -> dict[str, np.ndarray]:
    probe = keras.Model(model.inputs[0], [model.get_layer(n).output for n in layers])
    parts: list[list[np.ndarray]] = [[] for _ in layers]
    for start in range(0, len(x), batch_size):
        outs = probe(x[start: start + batch_size], training=False)
        outs = outs if isinstance(outs, (list, tuple)) else [outs]
        for i, out in enumerate(outs):
            arr = np.asarray(out)
            parts[i].append(arr.reshape(len(arr), -1))
    return {n: np.concatenate(p) for n, p in zip(layers, parts)}


def activations(model: keras.Model, x: np.ndarray, layers: Sequence[str], *,
                batch_size: int = 512) -> dict[str, np.ndarray]:
    """The outputs of ``layers`` for inputs ``x``, each flattened to ``(n, features)``, in
    inference mode (sections 5.4 and 5.5)."""
    checks.model(model)
    x = checks.model_inputs("x", x, model).astype(np.float32, copy=False)
    names = checks.layer_names("layers", layers, model)
    return _activations(model, x, names, checks.int_at_least("batch_size", batch_size))


def _two_models(model_a: keras.Model, model_b: keras.Model, x: np.ndarray) -> np.ndarray:
    """``x`` as float32 once both models and ``x`` (at least 2 inputs that fit both) pass."""
    checks.model(model_a, "model_a")
    checks.model(model_b, "model_b")
    x = checks.model_inputs("x", x, model_a).astype(np.float32, copy=False)
    checks.model_inputs("x", x, model_b)
    if len(x) < 2:
        raise ValueError(f"x needs at least 2 examples, got {len(x)}")
    return x


def layer_cka(model_a: keras.Model, model_b: keras.Model, x: np.ndarray,
              layers: Sequence[str] | None = None) -> pd.DataFrame:
    """Linear CKA between the same-named layers of two models on the same inputs, e.g. a
    source model and its fine-tuned copy (section 5.5, "Which layers did fine-tuning
    change? Representations, with linear CKA"). ``layers`` defaults to ``model_a``'s weighted
    layers. Returns a DataFrame with columns ``layer`` and ``cka``, input to output."""
    x = _two_models(model_a, model_b, x)
    names = (models.weighted_layers(model_a) if layers is None
             else checks.layer_names("layers", layers, model_a))
    checks.layer_names("layers", names, model_b)
    acts_a = _activations(model_a, x, names)
    acts_b = _activations(model_b, x, names)
    return pd.DataFrame({"layer": names,
                         "cka": [_linear_cka(acts_a[n], acts_b[n]) for n in names]})


def cka_matrix(model_a: keras.Model, model_b: keras.Model, x: np.ndarray,
               layers_a: Sequence[str] | None = None,
               layers_b: Sequence[str] | None = None) -> pd.DataFrame:
    """Linear CKA between every layer of ``model_a`` (rows) and every layer of ``model_b``
    (columns) on the same inputs (section 5.5). Layers default to each model's weighted
    layers. Each layer's centred Gram matrix is computed once. Returns a DataFrame."""
    x = _two_models(model_a, model_b, x)
    rows = (models.weighted_layers(model_a) if layers_a is None
            else checks.layer_names("layers_a", layers_a, model_a))
    cols = (models.weighted_layers(model_b) if layers_b is None
            else checks.layer_names("layers_b", layers_b, model_b))
    grams_a = {n: _gram(a) for n, a in _activations(model_a, x, rows).items()}
    grams_b = {n: _gram(b) for n, b in _activations(model_b, x, cols).items()}
    values = [[_cka_from_grams(grams_a[r], grams_b[c]) for c in cols] for r in rows]
    return pd.DataFrame(values, index=pd.Index(rows, name=model_a.name),
                        columns=pd.Index(cols, name=model_b.name))


def _relative(before: Sequence[np.ndarray], after: Sequence[np.ndarray]) -> float:
    diff = np.sqrt(sum(float(np.sum((np.asarray(a, np.float64) - b) ** 2))
                       for b, a in zip(before, after)))
    norm = np.sqrt(sum(float(np.sum(np.asarray(b, np.float64) ** 2)) for b in before))
    if norm > 0:
        return float(diff / norm)
    return 0.0 if diff == 0 else float("inf")


def relative_change(before: np.ndarray | Sequence[np.ndarray],
                    after: np.ndarray | Sequence[np.ndarray]) -> float:
    """How far weights moved, relative to where they started: ``||after - before|| /
    ||before||`` (section 5.5, "Which layers did fine-tuning change? Weights first").

    ``before`` and ``after`` are one array each, or equally long sequences of arrays (e.g. a
    layer's ``get_weights()``), paired in order and of equal shapes; the norm is the
    Euclidean (Frobenius) norm over all their entries together, computed in float64.
    Zero rule: when ``before`` is all zeros the change is ``0.0`` if ``after`` is too and
    ``inf`` otherwise; there is no epsilon.
    """
    pairs = []
    for name, value in (("before", before), ("after", after)):
        arrays = [value] if isinstance(value, np.ndarray) else checks.sequence(name, value)
        pairs.append([checks.finite_array(f"{name}[{i}]" if len(arrays) > 1 else name,
                                          np.asarray(w), min_ndim=0)
                      for i, w in enumerate(arrays)])
    b_arrays, a_arrays = pairs
    if [w.shape for w in b_arrays] != [w.shape for w in a_arrays]:
        raise ValueError(f"before and after must hold arrays of the same shapes, got "
                         f"{[w.shape for w in b_arrays]} and {[w.shape for w in a_arrays]}")
    return _relative(b_arrays, a_arrays)


def weight_change(before: keras.Model, after: keras.Model,
                  layers: Sequence[str] | None = None) -> pd.DataFrame:
    """How far each layer's weights moved, as :func:`relative_change` over all of a layer's
    weight tensors (section 5.5, "Which layers did fine-tuning change? Weights first").
    Layers are matched by name and default to ``before``'s weighted layers. Returns a
    DataFrame with columns ``layer``, ``parameters`` and ``relative_change``."""
    checks.model(before, "before")
    checks.model(after, "after")
    names = (models.weighted_layers(before) if layers is None
             else checks.layer_names("layers", layers, before))
    checks.layer_names("layers", names, after)
    rows = []
    for name in names:
        wb, wa = before.get_layer(name).get_weights(), after.get_layer(name).get_weights()
        if not wb or [w.shape for w in wb] != [w.shape for w in wa]:
            raise ValueError(f"layers: {name!r} has no weights or different shapes in the "
                             f"two models")
        rows.append({"layer": name, "parameters": int(sum(w.size for w in wb)),
                     "relative_change": _relative(wb, wa)})
    return pd.DataFrame(rows)
