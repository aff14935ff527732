"""Looking inside a transferred model: saliency maps, Grad-CAM and linear CKA (chapter 05,
"Interpretability").

* :func:`saliency` is the gradient of a class score with respect to the input pixels
  (Simonyan et al. 2014): which pixels would change the decision most.
* :func:`grad_cam` weights a convolution layer's feature maps by the pooled gradient of the
  class score (Selvaraju et al. 2017): a coarse map of where the evidence is.
* :func:`linear_cka` compares two representations of the same inputs (Kornblith et al.
  2019); :func:`layer_cka` applies it layer by layer to two models, e.g. a source model and
  its fine-tuned copy, and :func:`weight_change` measures how far each layer's weights moved.

All of them take plain ``keras.Model``s and NumPy arrays and return arrays or DataFrames.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

__all__ = ["activations", "cka_matrix", "grad_cam", "layer_cka", "linear_cka", "saliency",
           "weight_change"]


def _keras():
    import keras

    return keras


def _check_model(model: object, name: str = "model") -> None:
    if not isinstance(model, _keras().Model):
        raise ValueError(f"{name} must be a keras.Model, got {type(model).__name__}")


def _input_of(model):
    """The single input tensor (a one-element list would make Keras warn on every call)."""
    if len(model.inputs) != 1:
        raise ValueError(f"model must have a single input, {model.name!r} has {len(model.inputs)}")
    return model.inputs[0]


def _check_images(x: object, model) -> np.ndarray:
    if not isinstance(x, np.ndarray) or x.ndim < 2 or len(x) == 0:
        raise ValueError(f"x must be a non-empty numpy array of inputs, "
                         f"got {getattr(x, 'shape', type(x).__name__)!r}")
    expected = tuple(model.input_shape[1:])
    if tuple(x.shape[1:]) != expected:
        raise ValueError(f"x must have shape (n, {', '.join(map(str, expected))}) to fit "
                         f"{model.name!r}, got {x.shape}")
    return x.astype(np.float32, copy=False)


def _class_indices(class_index: object, n: int, n_classes: int) -> np.ndarray | None:
    """None (use the predicted class), one int for every input, or one int per input."""
    if class_index is None:
        return None
    idx = np.asarray(class_index)
    if idx.ndim == 0:
        idx = np.full(n, idx)
    if idx.shape != (n,) or not np.issubdtype(idx.dtype, np.integer):
        raise ValueError(f"class_index must be None, an int or {n} ints, got {class_index!r}")
    if idx.min() < 0 or idx.max() >= n_classes:
        raise ValueError(f"class_index must lie in [0, {n_classes}), got {class_index!r}")
    return idx.astype(np.int64)


def _pick(logits, idx: np.ndarray | None):
    import tensorflow as tf

    if idx is None:
        idx = tf.argmax(logits, axis=-1)
    return tf.gather(logits, idx, axis=-1, batch_dims=1)


def saliency(model, x: np.ndarray, class_index: int | Sequence[int] | None = None, *,
             batch_size: int = 256) -> np.ndarray:
    """Vanilla gradient saliency: ``|d logit_c / d x|``, the largest over colour channels, one
    map per input (chapter 05, "Interpretability"; Simonyan et al. 2014).

    ``class_index`` picks the class score to explain: ``None`` (each input's predicted
    class), one int for every input, or one int per input. Returns an array of shape
    ``(n, height, width)`` for image inputs (``x.shape`` minus the channel axis), float32,
    non-negative. The model runs in inference mode (no dropout).
    """
    import tensorflow as tf

    _check_model(model)
    x = _check_images(x, model)
    if not isinstance(batch_size, int) or isinstance(batch_size, bool) or batch_size <= 0:
        raise ValueError(f"batch_size must be a positive int, got {batch_size!r}")
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


def grad_cam(model, x: np.ndarray, class_index: int | Sequence[int] | None = None, *,
             layer: str = "conv2", batch_size: int = 256) -> np.ndarray:
    """Grad-CAM heat maps for the convolution layer ``layer`` (chapter 05,
    "Interpretability"; Selvaraju et al. 2017).

    Each feature map of ``layer`` is weighted by the spatial mean of the class score's
    gradient with respect to it; the weighted sum goes through a ReLU, is resized to the input
    size (bilinear) and scaled to [0, 1] per input (an all-zero map stays zero). Returns
    ``(n, height, width)`` float32. ``class_index`` works as in :func:`saliency`.
    """
    import tensorflow as tf

    _check_model(model)
    x = _check_images(x, model)
    names = [lay.name for lay in model.layers]
    if layer not in names:
        raise ValueError(f"layer={layer!r} is not a layer of {model.name!r}; it has {names}")
    if len(model.get_layer(layer).output.shape) != 4:
        raise ValueError(f"layer={layer!r} must output 4-D feature maps (n, h, w, c), got "
                         f"{tuple(model.get_layer(layer).output.shape)}")
    if x.ndim != 4:
        raise ValueError(f"x must be images (n, h, w, c), got shape {x.shape}")
    if not isinstance(batch_size, int) or isinstance(batch_size, bool) or batch_size <= 0:
        raise ValueError(f"batch_size must be a positive int, got {batch_size!r}")
    idx = _class_indices(class_index, len(x), int(model.output_shape[-1]))
    probe = _keras().Model(_input_of(model), [model.get_layer(layer).output, model.outputs[0]])
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


def _as_matrix(name: str, a: object) -> np.ndarray:
    if not isinstance(a, np.ndarray) or a.ndim < 2:
        raise ValueError(f"{name} must be a numpy array (n_examples, features...), "
                         f"got {getattr(a, 'shape', type(a).__name__)!r}")
    a = a.reshape(len(a), -1).astype(np.float64)
    if not np.all(np.isfinite(a)):
        raise ValueError(f"{name} contains NaN or infinite values")
    return a


def linear_cka(a: np.ndarray, b: np.ndarray) -> float:
    """Linear centred kernel alignment between two representations of the same ``n`` inputs
    (chapter 05, "Interpretability"; Kornblith et al. 2019).

    ``a`` is ``(n, p)`` and ``b`` is ``(n, q)`` (extra axes are flattened). With centred
    columns, ``CKA = ||b^T a||_F^2 / (||a^T a||_F ||b^T b||_F)``: 1 for identical
    representations and unchanged by rotations and isotropic scaling of either one.
    Raises ValueError if the example counts differ, ``n < 2`` or a representation is constant.
    """
    x, y = _as_matrix("a", a), _as_matrix("b", b)
    if len(x) != len(y):
        raise ValueError(f"a and b must describe the same examples, got {len(x)} and {len(y)}")
    if len(x) < 2:
        raise ValueError(f"a and b need at least 2 examples, got {len(x)}")
    x = x - x.mean(axis=0)
    y = y - y.mean(axis=0)
    if max(x.shape[1], y.shape[1]) > len(x):  # wide features: use the n x n Gram matrices
        k, m = x @ x.T, y @ y.T
        num, den = float(np.sum(k * m)), float(np.linalg.norm(k) * np.linalg.norm(m))
    else:
        num = float(np.linalg.norm(y.T @ x) ** 2)
        den = float(np.linalg.norm(x.T @ x) * np.linalg.norm(y.T @ y))
    if den == 0.0:
        raise ValueError("a or b is constant across examples: CKA is undefined")
    return num / den


def activations(model, x: np.ndarray, layers: Sequence[str], *,
                batch_size: int = 512) -> dict[str, np.ndarray]:
    """The outputs of ``layers`` for inputs ``x``, each flattened to ``(n, features)``, in
    inference mode (chapter 05, "Interpretability")."""
    _check_model(model)
    x = _check_images(x, model)
    if isinstance(layers, str) or not isinstance(layers, Sequence) or not layers:
        raise ValueError(f"layers must be a non-empty list of layer names, got {layers!r}")
    names = [lay.name for lay in model.layers]
    unknown = [n for n in layers if n not in names]
    if unknown:
        raise ValueError(f"layers {unknown} are not in {model.name!r}; it has {names}")
    if not isinstance(batch_size, int) or isinstance(batch_size, bool) or batch_size <= 0:
        raise ValueError(f"batch_size must be a positive int, got {batch_size!r}")
    probe = _keras().Model(_input_of(model), [model.get_layer(n).output for n in layers])
    parts: list[list[np.ndarray]] = [[] for _ in layers]
    for start in range(0, len(x), batch_size):
        outs = probe(x[start: start + batch_size], training=False)
        outs = outs if isinstance(outs, (list, tuple)) else [outs]
        for i, out in enumerate(outs):
            arr = np.asarray(out)
            parts[i].append(arr.reshape(len(arr), -1))
    return {n: np.concatenate(p) for n, p in zip(layers, parts)}


def _default_layers(model) -> list[str]:
    from tlutils import models

    return models.weighted_layers(model)


def layer_cka(model_a, model_b, x: np.ndarray, layers: Sequence[str] | None = None):
    """Linear CKA between the same-named layers of two models on the same inputs, e.g. a
    source model and its fine-tuned copy (chapter 05, "Interpretability"). ``layers``
    defaults to ``model_a``'s weighted layers. Returns a DataFrame with columns ``layer`` and
    ``cka``, input to output."""
    import pandas as pd

    _check_model(model_a, "model_a")
    _check_model(model_b, "model_b")
    names = _default_layers(model_a) if layers is None else layers
    acts_a = activations(model_a, x, names)
    acts_b = activations(model_b, x, names)
    return pd.DataFrame({"layer": list(names),
                         "cka": [linear_cka(acts_a[n], acts_b[n]) for n in names]})


def _centred_gram(name: str, a: np.ndarray) -> np.ndarray:
    x = _as_matrix(name, a)
    x = x - x.mean(axis=0)
    return x @ x.T


def _cka_from_grams(k: np.ndarray, m: np.ndarray) -> float:
    den = float(np.linalg.norm(k) * np.linalg.norm(m))
    if den == 0.0:
        raise ValueError("a representation is constant across examples: CKA is undefined")
    return float(np.sum(k * m)) / den


def cka_matrix(model_a, model_b, x: np.ndarray, layers_a: Sequence[str] | None = None,
               layers_b: Sequence[str] | None = None):
    """Linear CKA between every layer of ``model_a`` (rows) and every layer of ``model_b``
    (columns) on the same inputs (chapter 05, "Interpretability"). Layers default to each
    model's weighted layers. Each layer's centred Gram matrix is computed once. Returns a
    DataFrame."""
    import pandas as pd

    _check_model(model_a, "model_a")
    _check_model(model_b, "model_b")
    rows = _default_layers(model_a) if layers_a is None else layers_a
    cols = _default_layers(model_b) if layers_b is None else layers_b
    if len(x) < 2:
        raise ValueError(f"x needs at least 2 examples, got {len(x)}")
    grams_a = {n: _centred_gram(n, a) for n, a in activations(model_a, x, rows).items()}
    grams_b = {n: _centred_gram(n, b) for n, b in activations(model_b, x, cols).items()}
    values = [[_cka_from_grams(grams_a[r], grams_b[c]) for c in cols] for r in rows]
    return pd.DataFrame(values, index=pd.Index(list(rows), name=model_a.name),
                        columns=pd.Index(list(cols), name=model_b.name))


def weight_change(before, after, layers: Sequence[str] | None = None):
    """How far each layer's weights moved: ``||W_after - W_before|| / ||W_before||`` over all
    of a layer's weight tensors (chapter 05, "Interpretability"). Layers are matched by name
    and default to ``before``'s weighted layers. Returns a DataFrame with columns ``layer``,
    ``parameters`` and ``relative_change``."""
    import pandas as pd

    _check_model(before, "before")
    _check_model(after, "after")
    names = _default_layers(before) if layers is None else list(layers)
    rows = []
    for name in names:
        try:
            wa, wb = before.get_layer(name).get_weights(), after.get_layer(name).get_weights()
        except ValueError as exc:
            raise ValueError(f"layers: {name!r} is missing from before or after") from exc
        if not wa or [w.shape for w in wa] != [w.shape for w in wb]:
            raise ValueError(f"layers: {name!r} has no weights or different shapes in the "
                             f"two models")
        diff = np.sqrt(sum(float(np.sum((b - a) ** 2)) for a, b in zip(wa, wb)))
        norm = np.sqrt(sum(float(np.sum(a ** 2)) for a in wa))
        rows.append({"layer": name, "parameters": int(sum(a.size for a in wa)),
                     "relative_change": diff / norm if norm > 0 else float("inf")})
    return pd.DataFrame(rows)
