"""Model builders and the surgery transfer learning needs (chapters 01-06).

Everything here returns or edits plain :class:`keras.Model` objects: ``summary()``, ``fit()``,
saving and callbacks all keep working. Models output **logits** (no softmax layer); the loss
applies a numerically stable log-softmax (section 3.1 shows why).
"""

from __future__ import annotations

from collections.abc import Iterable

import keras
import numpy as np
import pandas as pd

from tlutils import checks

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


def build_mlp(input_shape: tuple[int, ...] = (28, 28, 1), num_classes: int = 10, *,
              hidden: int = 128, dropout: float = 0.2, name: str = "mlp") -> keras.Model:
    """The source article's model: Flatten -> Dense(128, relu) -> Dropout(0.2) -> Dense(10)
    (section 4.2, "Two models of the same size"; section 4.4, "The article's setup,
    reproduced"). Outputs logits; layers are named ``flatten``, ``dense``, ``dropout``,
    ``head``."""
    shape = checks.positive_ints("input_shape", input_shape)
    num_classes = checks.int_at_least("num_classes", num_classes, 2)
    hidden = checks.int_at_least("hidden", hidden)
    rate = checks.number("dropout", dropout, low=0.0, high=1.0, strict_high=True)
    inputs = keras.Input(shape, name="image")
    h = keras.layers.Flatten(name="flatten")(inputs)
    h = keras.layers.Dense(hidden, activation="relu", name="dense")(h)
    h = keras.layers.Dropout(rate, name="dropout")(h)
    outputs = keras.layers.Dense(num_classes, name="head")(h)
    return keras.Model(inputs, outputs, name=name)


def build_cnn(input_shape: tuple[int, ...] = (28, 28, 1), num_classes: int = 10, *,
              filters: tuple[int, int] = (16, 32), dense: int = 64, dropout: float = 0.3,
              batchnorm: bool = False, name: str = "cnn") -> keras.Model:
    """The book's small CNN: two conv blocks and a dense layer, then a ``head`` (section 4.2,
    "Two models of the same size").

    With the defaults it has 105,866 parameters, about as many as the article's MLP
    (101,770), but it sees images as images, so its features transfer.

    Layers: ``conv1`` [``bn1``] ``pool1`` ``conv2`` [``bn2``] ``pool2`` ``flatten`` ``dense``
    ``dropout`` ``head``. ``batchnorm=True`` adds BatchNormalization after each convolution
    (section 3.2's pitfall "BatchNorm: ``trainable=False`` versus ``training=False``"). Outputs
    logits.
    """
    shape = checks.positive_ints("input_shape", input_shape)
    num_classes = checks.int_at_least("num_classes", num_classes, 2)
    widths = checks.positive_ints("filters", filters, length=2)
    dense = checks.int_at_least("dense", dense)
    rate = checks.number("dropout", dropout, low=0.0, high=1.0, strict_high=True)
    layers = keras.layers
    inputs = keras.Input(shape, name="image")
    h = inputs
    for i, f in enumerate(widths, start=1):
        h = layers.Conv2D(f, 3, padding="same", activation=None if batchnorm else "relu",
                          name=f"conv{i}")(h)
        if batchnorm:
            h = layers.BatchNormalization(name=f"bn{i}")(h)
            h = layers.Activation("relu", name=f"relu{i}")(h)
        h = layers.MaxPooling2D(name=f"pool{i}")(h)
    h = layers.Flatten(name="flatten")(h)
    h = layers.Dense(dense, activation="relu", name="dense")(h)
    h = layers.Dropout(rate, name="dropout")(h)
    outputs = layers.Dense(num_classes, name="head")(h)
    return keras.Model(inputs, outputs, name=name)


def _weighted(model: keras.Model) -> list[str]:
    return [layer.name for layer in model.layers if layer.weights]


def weighted_layers(model: keras.Model) -> list[str]:
    """Names of the layers that own weights, input to output (conv, dense, BatchNorm, head).
    Used to count "the first n layers" in section 2.2's layer-generality sweep."""
    return _weighted(checks.model(model))


def _select(model: keras.Model, layers: Iterable[str] | None,
            upto: str | int | None) -> list[keras.Layer]:
    """Check and resolve a selection by names or by depth (``upto``: a name, inclusive, or a
    count of weighted layers from the input)."""
    if layers is not None and upto is not None:
        raise ValueError("give either layers or upto, not both")
    if layers is not None:
        return [model.get_layer(n)
                for n in checks.layer_names("layers", layers, model, allow_empty=True)]
    if upto is None:
        return list(model.layers)
    if isinstance(upto, str):
        index = [layer.name for layer in model.layers].index(
            checks.layer_name("upto", upto, model))
        return list(model.layers[: index + 1])
    weighted = _weighted(model)
    count = checks.int_in("upto", upto, 0, len(weighted))
    if count == 0:
        return []
    last = model.layers.index(model.get_layer(weighted[count - 1]))
    return list(model.layers[: last + 1])


def freeze(model: keras.Model, layers: Iterable[str] | None = None, *,
           upto: str | int | None = None) -> list[str]:
    """Make layers non-trainable and return their names (section 3.2; chapter 06, Q5).

    Select by ``layers`` (names) or ``upto`` (a layer name, inclusive, or the number of
    weighted layers from the input); neither freezes every layer. A frozen BatchNormalization
    layer also runs in inference mode in Keras 3, so its moving statistics stay put.
    Recompile (``tlutils.train.fit`` does) before training again.
    """
    chosen = _select(checks.model(model), layers, upto)
    for layer in chosen:
        layer.trainable = False
    return [layer.name for layer in chosen]


def unfreeze(model: keras.Model, layers: Iterable[str] | None = None, *,
             upto: str | int | None = None) -> list[str]:
    """Make layers trainable again; same selection rules as :func:`freeze` (section 3.2)."""
    chosen = _select(checks.model(model), layers, upto)
    model.trainable = True  # a frozen outer model would mask its layers' flags
    for layer in chosen:
        layer.trainable = True
    return [layer.name for layer in chosen]


def _clone(model: keras.Model) -> keras.Model:
    copy = keras.models.clone_model(model)
    copy.set_weights(model.get_weights())
    for src, dst in zip(model.layers, copy.layers):
        dst.trainable = src.trainable
    return copy


def clone(model: keras.Model) -> keras.Model:
    """An independent copy of ``model`` with the same weights and trainable flags; training the
    copy leaves the original untouched (the zoo's source models are shared)."""
    return _clone(checks.model(model))


def replace_head(model: keras.Model, num_classes: int, *, head: str = "head", seed: int = 0,
                 copy: bool = True) -> keras.Model:
    """Swap the output layer for a fresh ``Dense(num_classes)`` (section 3.2, "The
    fine-tuning procedure, step by step").

    The base (every layer before ``head``) is copied first unless ``copy=False``, so the source
    model stays intact. The new head is initialised with ``seed``.
    """
    checks.model(model)
    num_classes = checks.int_at_least("num_classes", num_classes, 2)
    checks.layer_name("head", head, model)
    seed = checks.int_at_least("seed", seed, 0)
    base_model = _clone(model) if copy else model
    features = base_model.get_layer(head).input
    init = keras.initializers.GlorotUniform(seed=seed)
    outputs = keras.layers.Dense(num_classes, name=head, kernel_initializer=init)(features)
    return keras.Model(base_model.inputs, outputs, name=f"{model.name}_target")


def feature_extractor(model: keras.Model, layer: str = "dense") -> keras.Model:
    """A model mapping inputs to ``layer``'s output (the features reused in sections 2.1,
    "Feature transfer: reuse the representation", and 2.2). Shares weights with ``model``."""
    checks.model(model)
    checks.layer_name("layer", layer, model)
    return keras.Model(model.inputs, model.get_layer(layer).output, name=f"{model.name}_{layer}")


def copy_weights(source: keras.Model, target: keras.Model,
                 layers: Iterable[str] | None = None) -> list[str]:
    """Copy weights layer by layer, matched by name; return the names copied (section 2.2's
    layer sweep, chapter 06's Q5).

    With ``layers=None`` every layer present in both models with weights of the same shapes is
    copied. Named layers must exist in both and match in shape, else ValueError.
    """
    checks.model(source, "source")
    checks.model(target, "target")
    if layers is None:
        src_names = {layer.name for layer in source.layers}
        wanted = [layer.name for layer in target.layers
                  if layer.weights and layer.name in src_names]
    else:
        wanted = checks.layer_names("layers", layers, source, allow_empty=True)
        checks.layer_names("layers", wanted, target, allow_empty=True)
    copied = []
    for name in wanted:
        src_w = source.get_layer(name).get_weights()
        tgt_layer = target.get_layer(name)
        tgt_shapes = [w.shape for w in tgt_layer.get_weights()]
        if [w.shape for w in src_w] != tgt_shapes:
            if layers is not None:
                raise ValueError(f"layers: {name!r} has weight shapes "
                                 f"{[w.shape for w in src_w]} in source but {tgt_shapes} "
                                 f"in target")
            continue
        tgt_layer.set_weights(src_w)
        copied.append(name)
    return copied


def param_table(model: keras.Model) -> pd.DataFrame:
    """A pandas DataFrame with one row per layer: type, output shape, trainable and frozen
    parameter counts, plus a ``total`` row (chapters 02, 04, 05 and 06)."""
    checks.model(model)
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
