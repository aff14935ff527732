"""Argument validators shared by every public ``tlutils`` function (all chapters).

Each validator checks one argument, raises a ``ValueError`` that names it, and returns the value
in the form the caller needs (an int, a float, a list). Public functions call them once, at their
entry; the inner functions they call trust their arguments.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence
from typing import TYPE_CHECKING, Any

import numpy as np

if TYPE_CHECKING:
    import keras

__all__ = ["features", "finite_array", "grid", "images", "instance", "int_at_least", "int_in",
           "int_sequence", "labels", "layer_name", "layer_names", "model", "model_inputs",
           "needs_validation", "number", "one_of", "positive_ints", "rate_grids", "seeds",
           "sequence", "vector", "xy"]


def model(value: object, name: str = "model") -> keras.Model:
    """``value`` itself if it is a ``keras.Model``."""
    import keras

    if not isinstance(value, keras.Model):
        raise ValueError(f"{name} must be a keras.Model, got {type(value).__name__}")
    return value


def int_at_least(name: str, value: object, low: int = 1) -> int:
    """``value`` as an int if it is an int (not a bool) ``>= low``."""
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < low:
        what = "a positive int" if low == 1 else f"an int >= {low}"
        raise ValueError(f"{name} must be {what}, got {value!r}")
    return int(value)


def number(name: str, value: object, *, low: float | None = None, high: float | None = None,
           strict: bool = False, strict_high: bool = False) -> float:
    """``value`` as a float if it is a finite real number in ``[low, high]`` (``strict``:
    ``low`` itself excluded; ``strict_high``: ``high`` excluded). NumPy scalars are accepted;
    bools and NaN are not."""
    if isinstance(value, bool) or not isinstance(value, (int, float, np.integer, np.floating)):
        raise ValueError(f"{name} must be a number, got {value!r}")
    out = float(value)
    if not math.isfinite(out):
        raise ValueError(f"{name} must be a finite number, got {value!r}")
    if low is not None and (out < low or (strict and out == low)):
        bound = ">" if strict else ">="
        raise ValueError(f"{name} must be {bound} {low:g}, got {value!r}")
    if high is not None and (out > high or (strict_high and out == high)):
        bound = "<" if strict_high else "<="
        raise ValueError(f"{name} must be {bound} {high:g}, got {value!r}")
    return out


def one_of(name: str, value: object, options: Iterable[object]) -> Any:
    """``value`` if it is one of ``options``."""
    options = tuple(options)
    if value not in options:
        raise ValueError(f"{name} must be one of {list(options)}, got {value!r}")
    return value


def sequence(name: str, values: object) -> list[Any]:
    """``values`` as a list if it is a non-empty sequence (not a string)."""
    if isinstance(values, (str, bytes)) or not isinstance(values, Iterable):
        raise ValueError(f"{name} must be a non-empty sequence, got {values!r}")
    out = list(values)
    if not out:
        raise ValueError(f"{name} must be a non-empty sequence, got {values!r}")
    return out


def int_sequence(name: str, values: object, low: int = 0) -> list[int]:
    """``values`` as a list of ints ``>= low``, non-empty and without repeats."""
    out = sequence(name, values)
    if not all(isinstance(v, (int, np.integer)) and not isinstance(v, bool) and v >= low
               for v in out) or len(set(out)) != len(out):
        raise ValueError(f"{name} must be a non-empty sequence of distinct ints >= {low}, "
                         f"got {values!r}")
    return [int(v) for v in out]


def grid(name: str, values: object, *, strict: bool = True) -> list[float]:
    """A grid of settings to choose from on validation data (learning rates, alignment
    weights): a non-empty sequence of distinct numbers ``> 0`` (``strict=False``: ``>= 0``)."""
    out = [number(name, v, low=0.0, strict=strict) for v in sequence(name, values)]
    if len(set(out)) != len(out):
        raise ValueError(f"{name} repeats a value: {out}")
    return out


def rate_grids(keys: Sequence[str], lrs: object, defaults: Mapping[str, float],
               name: str = "lrs") -> dict[str, list[float]]:
    """Each key's checked grid of learning rates from an ``lrs=`` argument (sections 2.2, 4.3,
    5.4, 5.6): one grid for every key, a mapping key -> grid (every key and no other), or
    ``None`` for each key's own rate in ``defaults``."""
    keys = list(keys)
    if lrs is None:
        return {key: [float(defaults[key])] for key in keys}
    if isinstance(lrs, Mapping):
        missing = [key for key in keys if key not in lrs]
        unknown = sorted(str(key) for key in lrs if key not in keys)
        if missing or unknown:
            raise ValueError(f"{name} must give a grid for each of {keys} and no other: "
                             f"missing {missing}, unknown {unknown}")
        return {key: grid(f"{name}[{key!r}]", lrs[key]) for key in keys}
    shared = grid(name, lrs)
    return {key: list(shared) for key in keys}


def needs_validation(x_val: object, what: str) -> None:
    """Raise unless a validation set was given: choosing ``what`` (rates, weights, stopping
    points) on anything else would mean choosing on the test set."""
    if x_val is None:
        raise ValueError(f"{what} needs a validation set: pass validation=(x_val, y_val), "
                         "never the test set")


def seeds(values: object, name: str = "seeds") -> list[int]:
    """Seeds: a non-empty sequence of distinct non-negative ints."""
    return int_sequence(name, values, 0)


def finite_array(name: str, x: object, *, ndim: int | None = None,
                 min_ndim: int = 1) -> np.ndarray:
    """``x`` if it is a non-empty numeric NumPy array of all-finite values with the given rank."""
    if not isinstance(x, np.ndarray) or not np.issubdtype(x.dtype, np.number):
        raise ValueError(f"{name} must be a numeric numpy array, got {type(x).__name__}")
    if (ndim is not None and x.ndim != ndim) or x.ndim < min_ndim:
        want = f"{ndim}-D" if ndim is not None else f"at least {min_ndim}-D"
        raise ValueError(f"{name} must be a {want} array, got shape {x.shape}")
    if x.size == 0:
        raise ValueError(f"{name} must not be empty")
    if np.issubdtype(x.dtype, np.floating) and not np.all(np.isfinite(x)):
        raise ValueError(f"{name} holds NaN or infinite values")
    return x


def features(name: str, x: object) -> np.ndarray:
    """A 2-D finite array of feature vectors, one row per sample."""
    return finite_array(name, x, ndim=2)


def images(name: str, x: object) -> np.ndarray:
    """A batch of images ``(n, height, width, channels)`` with finite values."""
    return finite_array(name, x, ndim=4)


def labels(name: str, y: object, num_classes: int | None = None) -> np.ndarray:
    """``y`` if it is a 1-D integer array of labels in ``0 .. num_classes - 1``."""
    if not isinstance(y, np.ndarray) or y.ndim != 1 or y.size == 0:
        raise ValueError(f"{name} must be a non-empty 1-D numpy array of integer labels, "
                         f"got {getattr(y, 'shape', type(y).__name__)!r}")
    if not np.issubdtype(y.dtype, np.integer):
        raise ValueError(f"{name} must hold integer class labels, got dtype {y.dtype}")
    if y.min() < 0 or (num_classes is not None and y.max() >= num_classes):
        top = "" if num_classes is None else f" and below {num_classes}"
        raise ValueError(f"{name} must hold labels >= 0{top}, got range "
                         f"{int(y.min())}..{int(y.max())}")
    return y


def xy(x: object, y: object, *, names: Sequence[str] = ("x", "y"),
       num_classes: int | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Samples ``x`` (finite, at least 2-D) and their integer labels ``y``, of equal length."""
    x = finite_array(names[0], x, min_ndim=2)
    y = labels(names[1], y, num_classes)
    if len(x) != len(y):
        raise ValueError(f"{names[0]} and {names[1]} must have equal length, "
                         f"got {len(x)} and {len(y)}")
    return x, y


def validation(value: object) -> tuple[Any, Any]:
    """``(x_val, y_val)`` from a ``validation=`` argument (a pair of samples and labels, checked
    as :func:`xy` does), or ``(None, None)`` when it is None."""
    if value is None:
        return None, None
    if not isinstance(value, (tuple, list)) or len(value) != 2:
        raise ValueError("validation must be a pair (x_val, y_val)")
    x_val, y_val = value
    xy(x_val, y_val, names=("x_val", "y_val"))
    return x_val, y_val


def instance(name: str, value: object, cls: type) -> Any:
    """``value`` if it is an instance of ``cls``."""
    if not isinstance(value, cls):
        raise ValueError(f"{name} must be a {cls.__qualname__}, got {type(value).__name__}")
    return value


def int_in(name: str, value: object, low: int, high: int) -> int:
    """``value`` as an int if it is an int (not a bool) in ``[low, high]``."""
    if (isinstance(value, bool) or not isinstance(value, (int, np.integer))
            or not low <= value <= high):
        raise ValueError(f"{name} must be an int in [{low}, {high}], got {value!r}")
    return int(value)


def positive_ints(name: str, value: object, length: int | None = None) -> tuple[int, ...]:
    """``value`` as a tuple if it is a non-empty tuple or list of positive ints (exactly
    ``length`` of them if given), e.g. an input shape."""
    if (not isinstance(value, (tuple, list)) or not value
            or (length is not None and len(value) != length)
            or not all(isinstance(v, (int, np.integer)) and not isinstance(v, bool) and v > 0
                       for v in value)):
        what = "a non-empty tuple" if length is None else f"a tuple of {length}"
        raise ValueError(f"{name} must be {what} of positive ints, got {value!r}")
    return tuple(int(v) for v in value)


def vector(name: str, value: object) -> np.ndarray:
    """``value`` as a float64 array if it is a non-empty 1-D sequence of finite numbers."""
    try:
        out = np.asarray(value, dtype=np.float64)
    except (TypeError, ValueError):
        raise ValueError(f"{name} must be a 1-D sequence of numbers, got {value!r}") from None
    if out.ndim != 1 or out.size == 0 or not np.all(np.isfinite(out)):
        raise ValueError(f"{name} must be a non-empty 1-D vector of finite numbers, "
                         f"got {value!r}")
    return out


def layer_name(name: str, value: object, model: keras.Model) -> str:
    """``value`` if it is the name of a layer of ``model``."""
    names = [layer.name for layer in model.layers]
    if not isinstance(value, str) or value not in names:
        raise ValueError(f"{name}={value!r} is not a layer of {model.name!r}; it has {names}")
    return value


def layer_names(name: str, values: object, model: keras.Model, *,
                allow_empty: bool = False) -> list[str]:
    """``values`` as a list if it is a sequence of names of layers of ``model`` (a single
    string is refused; ``allow_empty``: an empty sequence is accepted)."""
    if isinstance(values, str):
        raise ValueError(f"{name} must be a list of layer names, not a single string")
    if allow_empty and isinstance(values, (list, tuple)) and not values:
        return []
    out = sequence(name, values)
    names = [layer.name for layer in model.layers]
    unknown = [v for v in out if v not in names]
    if unknown:
        raise ValueError(f"{name} {unknown} are not layers of {model.name!r}; it has {names}")
    return out


def model_inputs(name: str, x: object, model: keras.Model) -> np.ndarray:
    """``x`` if it is a finite numeric array that fits ``model``'s single input:
    ``(n, *input_shape)``, with any size where the model allows any."""
    x = finite_array(name, x, min_ndim=2)
    inputs = model.inputs if model.built else []
    if len(inputs) != 1:
        raise ValueError(f"{name} cannot be fed to {model.name!r}: it must have a single "
                         f"defined input, it has {len(inputs)}")
    expected = tuple(inputs[0].shape[1:])
    if len(x.shape) - 1 != len(expected) or any(
            e is not None and e != d for e, d in zip(expected, x.shape[1:])):
        shown = ", ".join("any" if e is None else str(e) for e in expected)
        raise ValueError(f"{name} must have shape (n, {shown}) to fit {model.name!r}, "
                         f"got {x.shape}")
    return x
