"""The validators tlutils.checks gained for the leaf modules (models, interpret, shift, optim,
domains, sizes, plots): each returns the checked value and names the argument when it refuses."""

from __future__ import annotations

import keras
import numpy as np
import pandas as pd
import pytest

from tlutils import checks


@pytest.fixture(scope="module")
def model():
    return keras.Sequential([keras.Input((4, 3)), keras.layers.Flatten(name="flat"),
                             keras.layers.Dense(2, name="out")], name="tiny")


def test_accepted_values_come_back_in_the_form_callers_need(model):
    assert checks.number("p", 0.5, low=0.0, high=1.0, strict=True, strict_high=True) == 0.5
    assert checks.number("p", 1.0, low=0.0, high=1.0) == 1.0  # strict_high is opt-in
    assert checks.int_in("n", np.int64(3), 1, 3) == 3
    assert checks.positive_ints("shape", [28, 28, 1]) == (28, 28, 1)
    assert checks.positive_ints("filters", (8, 16), length=2) == (8, 16)
    np.testing.assert_array_equal(checks.vector("theta0", (1, 2.5)), [1.0, 2.5])
    assert checks.instance("table", pd.DataFrame(), pd.DataFrame).empty
    assert checks.layer_name("layer", "out", model) == "out"
    assert checks.layer_names("layers", ("flat", "out"), model) == ["flat", "out"]
    assert checks.layer_names("layers", [], model, allow_empty=True) == []
    x = np.zeros((5, 4, 3), np.float32)
    assert checks.model_inputs("x", x, model) is x
    assert checks.grid("weights", (0, 1.5), strict=False) == [0.0, 1.5]
    # One checker for every rate grid (2.2's layer sweep, 4.3's compare, 5.4, 5.6):
    own = {"a": 1e-3, "b": 1e-2}
    assert checks.rate_grids(["a", "b"], None, own) == {"a": [1e-3], "b": [1e-2]}
    assert checks.rate_grids(["a", "b"], (1e-3, 1e-2), own) == {"a": [1e-3, 1e-2],
                                                                "b": [1e-3, 1e-2]}
    assert checks.rate_grids(["a", "b"], {"b": [0.1], "a": [0.2]}, own) == {"a": [0.2],
                                                                          "b": [0.1]}
    checks.needs_validation(x, "choosing rates")


@pytest.mark.parametrize("call, message", [
    (lambda m: checks.number("p", 1.0, high=1.0, strict_high=True), r"p must be < 1"),
    (lambda m: checks.int_in("n", 4, 1, 3), r"n must be an int in \[1, 3\]"),
    (lambda m: checks.int_in("n", True, 0, 3), r"n must be an int"),
    (lambda m: checks.positive_ints("shape", (28, 0)), r"shape must be a non-empty tuple"),
    (lambda m: checks.positive_ints("filters", (8,), length=2), r"filters must be a tuple of 2"),
    (lambda m: checks.vector("theta0", [[1.0]]), r"theta0 must be a non-empty 1-D"),
    (lambda m: checks.vector("theta0", ["a"]), r"theta0 must be a 1-D sequence"),
    (lambda m: checks.instance("table", [1], pd.DataFrame), r"table must be a DataFrame"),
    (lambda m: checks.layer_name("head", "nope", m), r"head='nope' is not a layer of 'tiny'"),
    (lambda m: checks.layer_names("layers", "out", m), r"layers must be a list of layer names"),
    (lambda m: checks.layer_names("layers", [], m), r"layers must be a non-empty sequence"),
    (lambda m: checks.layer_names("layers", ["out", "x"], m), r"layers \['x'\] are not layers"),
    (lambda m: checks.model_inputs("x", np.zeros((2, 4, 2)), m), r"x must have shape \(n, 4, 3\)"),
    (lambda m: checks.model_inputs("x", np.zeros((2, 12)), m), r"x must have shape"),
    (lambda m: checks.model_inputs("x", np.zeros((2, 4, 3)), keras.Sequential()),
     r"x cannot be fed to"),
    (lambda m: checks.grid("lrs", [1e-3, 1e-3]), r"lrs repeats a value"),
    (lambda m: checks.grid("lrs", [0.0]), r"lrs must be > 0"),
    (lambda m: checks.grid("weights", []), r"weights must be a non-empty sequence"),
    (lambda m: checks.rate_grids(["a"], {"a": [1e-3], "c": [1]}, {"a": 1e-3}),
     r"lrs must give a grid for each of \['a'\] and no other: missing \[\], unknown \['c'\]"),
    (lambda m: checks.rate_grids(["a", "b"], {"a": [1e-3]}, {}), r"missing \['b'\]"),
    (lambda m: checks.rate_grids(["a"], {"a": [-1]}, {}), r"lrs\['a'\] must be > 0"),
    (lambda m: checks.rate_grids(["a"], "1e-3", {}), r"lrs must be a non-empty sequence"),
    (lambda m: checks.needs_validation(None, "choosing weights"),
     r"choosing weights needs a validation set: .* never the test set"),
])
def test_refusals_name_the_argument(model, call, message):
    with pytest.raises(ValueError, match=message):
        call(model)


def test_zero_shot_rows_with_nan_are_refused_not_put_in_class_0():
    from tlutils import text

    emb = np.array([[np.nan, 1.0], [0.5, 0.5]], np.float32)
    labels = np.eye(2, dtype=np.float32)
    with pytest.raises(ValueError, match="a holds NaN"):
        text.zero_shot_predict(emb, labels)
    assert text.zero_shot_predict(np.array([[0.1, 0.9]], np.float32), labels).tolist() == [1]
