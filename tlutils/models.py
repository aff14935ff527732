"""Model builders and the surgery transfer learning needs (chapters 02-05).

Everything here returns or edits plain :class:`keras.Model` objects: ``summary()``, ``fit()``,
saving and callbacks all keep working. Models output **logits** (no softmax layer); the loss
applies a numerically stable log-softmax (chapter 03 shows why).
"""

from __future__ import annotations

from collections.abc import Iterable

import numpy as np

__all__ = [
    "build_cnn",
    "build_mlp",
    "clone",
    "copy_weights",
    "feature_extractor",
    "freeze",
    "param_table",
    "replace_head",
    "unfreeze",
    "weighted_layers",
]


def _keras():
    import keras

    return keras


def _check_shape(input_shape: object) -> tuple[int, ...]:
    if (not isinstance(input_shape, (tuple, list)) or not input_shape
            or not all(isinstance(d, int) and d > 0 for d in input_shape)):
        raise ValueError(f"input_shape must be a tuple of positive ints, got {input_shape!r}")
    return tuple(input_shape)


def _check_classes(num_classes: object) -> int:
    if not isinstance(num_classes, int) or isinstance(num_classes, bool) or num_classes < 2:
        raise ValueError(f"num_classes must be an int >= 2, got {num_classes!r}")
    return num_classes


def build_mlp(input_shape: tuple[int, ...] = (28, 28, 1), num_classes: int = 10, *,
              hidden: int = 128, dropout: float = 0.2, name: str = "mlp"):
    """The source article's model: Flatten -> Dense(128, relu) -> Dropout(0.2) -> Dense(10)
    (chapter 04, "The article's setup"). Outputs logits; layers are named ``flatten``,
    ``dense``, ``dropout``, ``head``."""
    keras = _keras()
    shape = _check_shape(input_shape)
    _check_classes(num_classes)
    if not isinstance(hidden, int) or hidden <= 0:
        raise ValueError(f"hidden must be a positive int, got {hidden!r}")
    if not isinstance(dropout, (int, float)) or not 0.0 <= dropout < 1.0:
        raise ValueError(f"dropout must be in [0, 1), got {dropout!r}")
    inputs = keras.Input(shape, name="image")
    h = keras.layers.Flatten(name="flatten")(inputs)
    h = keras.layers.Dense(hidden, activation="relu", name="dense")(h)
    h = keras.layers.Dropout(dropout, name="dropout")(h)
    outputs = keras.layers.Dense(num_classes, name="head")(h)
    return keras.Model(inputs, outputs, name=name)


def build_cnn(input_shape: tuple[int, ...] = (28, 28, 1), num_classes: int = 10, *,
              filters: tuple[int, int] = (16, 32), dense: int = 64, dropout: float = 0.3,
              batchnorm: bool = False, name: str = "cnn"):
    """The book's small CNN: two conv blocks and a dense layer, then a ``head`` (chapter 04).

    With the defaults it has 105,866 parameters, about as many as the article's MLP
    (101,770), but it sees images as images, so its features transfer.

    Layers: ``conv1`` [``bn1``] ``pool1`` ``conv2`` [``bn2``] ``pool2`` ``flatten`` ``dense``
    ``dropout`` ``head``. ``batchnorm=True`` adds BatchNormalization after each convolution
    (chapter 03's BatchNorm pitfall). Outputs logits.
    """
    keras = _keras()
    shape = _check_shape(input_shape)
    _check_classes(num_classes)
    if (not isinstance(filters, (tuple, list)) or len(filters) != 2
            or not all(isinstance(f, int) and f > 0 for f in filters)):
        raise ValueError(f"filters must be two positive ints, got {filters!r}")
    if not isinstance(dense, int) or dense <= 0:
        raise ValueError(f"dense must be a positive int, got {dense!r}")
    if not isinstance(dropout, (int, float)) or not 0.0 <= dropout < 1.0:
        raise ValueError(f"dropout must be in [0, 1), got {dropout!r}")
    layers = keras.layers
    inputs = keras.Input(shape, name="image")
    h = inputs
    for i, f in enumerate(filters, start=1):
        h = layers.Conv2D(f, 3, padding="same", activation=None if batchnorm else "relu",
                          name=f"conv{i}")(h)
        if batchnorm:
            h = layers.BatchNormalization(name=f"bn{i}")(h)
            h = layers.Activation("relu", name=f"relu{i}")(h)
        h = layers.MaxPooling2D(name=f"pool{i}")(h)
    h = layers.Flatten(name="flatten")(h)
    h = layers.Dense(dense, activation="relu", name="dense")(h)
    h = layers.Dropout(dropout, name="dropout")(h)
    outputs = layers.Dense(num_classes, name="head")(h)
    return keras.Model(inputs, outputs, name=name)


def weighted_layers(model) -> list[str]:
    """Names of the layers that own weights, input to output (conv, dense, BatchNorm, head).
    Used to count "the first n layers" in chapter 02's layer-generality sweep."""
    _check_model(model)
    return [layer.name for layer in model.layers if layer.weights]


def _check_model(model: object) -> None:
    keras = _keras()
    if not isinstance(model, keras.Model):
        raise ValueError(f"model must be a keras.Model, got {type(model).__name__}")


def _select(model, layers: Iterable[str] | None, upto: str | int | None) -> list:
    """Resolve a selection by names or by depth (``upto``: a name, inclusive, or a count of
    weighted layers from the input)."""
    if layers is not None and upto is not None:
        raise ValueError("give either layers or upto, not both")
    if layers is not None:
        if isinstance(layers, str):
            raise ValueError("layers must be a list of names, not a single string")
        names = list(layers)
        known = {layer.name for layer in model.layers}
        unknown = [n for n in names if n not in known]
        if unknown:
            raise ValueError(f"layers {unknown} are not in model {model.name!r}; "
                             f"it has {sorted(known)}")
        return [model.get_layer(n) for n in names]
    if upto is None:
        return list(model.layers)
    if isinstance(upto, bool) or not isinstance(upto, (str, int)):
        raise ValueError(f"upto must be a layer name or an int, got {upto!r}")
    if isinstance(upto, str):
        names = [layer.name for layer in model.layers]
        if upto not in names:
            raise ValueError(f"upto={upto!r} is not a layer of {model.name!r}; it has {names}")
        return list(model.layers[: names.index(upto) + 1])
    weighted = weighted_layers(model)
    if not 0 <= upto <= len(weighted):
        raise ValueError(f"upto must be between 0 and {len(weighted)} weighted layers, got {upto}")
    if upto == 0:
        return []
    last = model.layers.index(model.get_layer(weighted[upto - 1]))
    return list(model.layers[: last + 1])


def freeze(model, layers: Iterable[str] | None = None, *, upto: str | int | None = None
           ) -> list[str]:
    """Make layers non-trainable and return their names (chapters 03-04).

    Select by ``layers`` (names) or ``upto`` (a layer name, inclusive, or the number of
    weighted layers from the input); neither freezes every layer. A frozen BatchNormalization
    layer also runs in inference mode in Keras 3, so its moving statistics stay put.
    Recompile (``tlutils.train.fit`` does) before training again.
    """
    _check_model(model)
    chosen = _select(model, layers, upto)
    for layer in chosen:
        layer.trainable = False
    return [layer.name for layer in chosen]


def unfreeze(model, layers: Iterable[str] | None = None, *, upto: str | int | None = None
             ) -> list[str]:
    """Make layers trainable again; same selection rules as :func:`freeze` (chapter 03)."""
    _check_model(model)
    model.trainable = True  # a frozen outer model would mask its layers' flags
    chosen = _select(model, layers, upto)
    for layer in chosen:
        layer.trainable = True
    return [layer.name for layer in chosen]


def clone(model):
    """An independent copy of ``model`` with the same weights and trainable flags; training the
    copy leaves the original untouched (the zoo's source models are shared)."""
    _check_model(model)
    keras = _keras()
    copy = keras.models.clone_model(model)
    copy.set_weights(model.get_weights())
    for src, dst in zip(model.layers, copy.layers):
        dst.trainable = src.trainable
    return copy


def replace_head(model, num_classes: int, *, head: str = "head", seed: int = 0,
                 copy: bool = True):
    """Swap the output layer for a fresh ``Dense(num_classes)`` (chapter 04).

    The base (every layer before ``head``) is copied first unless ``copy=False``, so the source
    model stays intact. The new head is initialised with ``seed``.
    """
    _check_model(model)
    _check_classes(num_classes)
    keras = _keras()
    names = [layer.name for layer in model.layers]
    if head not in names:
        raise ValueError(f"head={head!r} is not a layer of {model.name!r}; it has {names}")
    base_model = clone(model) if copy else model
    features = base_model.get_layer(head).input
    init = keras.initializers.GlorotUniform(seed=seed)
    outputs = keras.layers.Dense(num_classes, name=head, kernel_initializer=init)(features)
    return keras.Model(base_model.inputs, outputs, name=f"{model.name}_target")


def feature_extractor(model, layer: str = "dense"):
    """A model mapping inputs to ``layer``'s output (the features transferred in chapters
    02 and 05). Shares weights with ``model``."""
    _check_model(model)
    keras = _keras()
    names = [lay.name for lay in model.layers]
    if layer not in names:
        raise ValueError(f"layer={layer!r} is not a layer of {model.name!r}; it has {names}")
    return keras.Model(model.inputs, model.get_layer(layer).output, name=f"{model.name}_{layer}")


def copy_weights(source, target, layers: Iterable[str] | None = None) -> list[str]:
    """Copy weights layer by layer, matched by name; return the names copied (chapters 02, 04).

    With ``layers=None`` every layer present in both models with weights of the same shapes is
    copied. Named layers must exist in both and match in shape, else ValueError.
    """
    _check_model(source)
    _check_model(target)
    src_names = {layer.name for layer in source.layers}
    tgt_names = {layer.name for layer in target.layers}
    if layers is None:
        wanted = [layer.name for layer in target.layers
                  if layer.weights and layer.name in src_names]
        strict = False
    else:
        if isinstance(layers, str):
            raise ValueError("layers must be a list of names, not a single string")
        wanted = list(layers)
        missing = [n for n in wanted if n not in src_names or n not in tgt_names]
        if missing:
            raise ValueError(f"layers {missing} are missing from source or target")
        strict = True
    copied = []
    for name in wanted:
        src_w = source.get_layer(name).get_weights()
        tgt_layer = target.get_layer(name)
        shapes_ok = ([w.shape for w in src_w] == [w.shape for w in tgt_layer.get_weights()])
        if not shapes_ok:
            if strict:
                raise ValueError(f"layers: {name!r} has weight shapes "
                                 f"{[w.shape for w in src_w]} in source but "
                                 f"{[w.shape for w in tgt_layer.get_weights()]} in target")
            continue
        tgt_layer.set_weights(src_w)
        copied.append(name)
    return copied


def param_table(model):
    """A pandas DataFrame with one row per layer: type, output shape, trainable and frozen
    parameter counts, plus a ``total`` row (chapters 01 and 04)."""
    import pandas as pd

    _check_model(model)
    rows = []
    for layer in model.layers:
        trainable = int(sum(np.prod(w.shape) for w in layer.trainable_weights))
        frozen = int(sum(np.prod(w.shape) for w in layer.non_trainable_weights))
        out = getattr(layer, "output", None)
        shape = tuple(out.shape) if out is not None and hasattr(out, "shape") else None
        rows.append({"layer": layer.name, "type": type(layer).__name__,
                     "output shape": str(shape), "trainable": trainable, "frozen": frozen})
    table = pd.DataFrame(rows)
    total = {"layer": "total", "type": "", "output shape": "",
             "trainable": int(table["trainable"].sum()), "frozen": int(table["frozen"].sum())}
    return pd.concat([table, pd.DataFrame([total])], ignore_index=True)
