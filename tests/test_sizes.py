"""Tests for tlutils.sizes (chapter 01's parameter counts)."""

from __future__ import annotations

import dataclasses

import pytest

import tlutils  # noqa: F401  (quiet TensorFlow first)
from tlutils import sizes


def _tiny(family: str) -> sizes.TransformerConfig:
    return sizes.TransformerConfig("tiny", family, vocabulary_size=97, num_layers=2,
                                   num_heads=2, hidden_dim=16, intermediate_dim=24,
                                   max_sequence_length=11)


@pytest.mark.parametrize("family", ["bert", "roberta", "gpt2"])
def test_formula_matches_an_allocated_keras_hub_build(family):
    config = _tiny(family)
    model = sizes.build_backbone(config, allocate=True)
    assert model.count_params() == sizes.transformer_params(config)
    assert sizes.count_params(model) == sizes.transformer_params(config)


def test_formula_matches_the_published_preset_counts():
    for config in sizes.CONFIGS.values():
        if config.preset is not None:
            assert sizes.transformer_params(config) == sizes.published_params(config.preset)


def test_heads_do_not_change_the_count_but_width_does():
    base = _tiny("bert")
    more_heads = dataclasses.replace(base, num_heads=4)
    wider = dataclasses.replace(base, hidden_dim=32)
    assert sizes.transformer_params(more_heads) == sizes.transformer_params(base)
    assert sizes.transformer_params(wider) > sizes.transformer_params(base)


def test_breakdown_terms_sum_to_the_total_and_depend_on_family():
    parts = sizes.param_breakdown(sizes.CONFIGS["BERT-base"])
    assert sum(parts.values()) == sizes.transformer_params(sizes.CONFIGS["BERT-base"])
    assert parts["pooler"] == 768 * 768 + 768
    gpt = sizes.param_breakdown(sizes.CONFIGS["GPT-2 small"])
    assert gpt["pooler"] == 0 and gpt["segment embedding"] == 0 and gpt["final LayerNorm"] > 0


def test_shape_only_build_counts_bert_large():
    config = sizes.CONFIGS["BERT-large"]
    model = sizes.build_backbone(config, allocate=False)
    assert sizes.count_params(model) == sizes.transformer_params(config) == 335_141_888


def test_shape_only_allocates_nothing_and_leaves_nothing_pending():
    """Keras defers the weights built in a stateless scope and allocates every deferred
    weight still pending when a later stateless scope closes, e.g. while tracing a layer that
    has no ``compute_output_shape``. A counting initializer shows that a shape-only build
    never draws its initial values, not even after such a trace."""
    import keras

    drawn = []

    class Counting(keras.initializers.Initializer):
        def __call__(self, shape, dtype=None):
            drawn.append(tuple(shape))
            return keras.ops.zeros(shape, dtype=dtype)

    class Doubler(keras.layers.Layer):
        def call(self, x):
            return 2.0 * x

    model = sizes.shape_only(lambda: keras.Sequential(
        [keras.Input((3,)), keras.layers.Dense(5, kernel_initializer=Counting())]))
    assert isinstance(model, keras.Model) and sizes.count_params(model) == 3 * 5 + 5
    assert drawn == []
    Doubler()(keras.Input((2,)))  # closes a stateless scope on this thread
    assert drawn == []
    # The same build outside shape_only does draw them: the counter works.
    keras.Sequential([keras.Input((3,)), keras.layers.Dense(5, kernel_initializer=Counting())])
    assert drawn == [(3, 5)]


def test_count_params_accepts_a_builder():
    import keras

    def builder():
        return keras.Sequential([keras.Input((3,)), keras.layers.Dense(5)])

    assert sizes.count_params(builder) == 3 * 5 + 5


def test_cost_arithmetic():
    assert sizes.memory_bytes(10) == 40.0
    assert sizes.memory_bytes(10, training=True) == 160.0
    assert sizes.memory_bytes(10, bytes_per_param=2) == 20.0
    assert sizes.training_flops(2, 3) == 36.0


@pytest.mark.parametrize("call, name", [
    (lambda: sizes.TransformerConfig("x", "lstm", 1, 1, 1, 1, 1, 1), "family"),
    (lambda: sizes.TransformerConfig("x", "bert", 0, 1, 1, 1, 1, 1), "vocabulary_size"),
    (lambda: sizes.TransformerConfig("x", "bert", 5, 1, 3, 16, 1, 1), "hidden_dim"),
    (lambda: sizes.transformer_params("BERT-base"), "config"),
    (lambda: sizes.build_backbone(_tiny("bert"), allocate="no"), "allocate"),
    (lambda: sizes.count_params(42), "model_or_builder"),
    (lambda: sizes.count_params(lambda: 42), "model_or_builder"),
    (lambda: sizes.shape_only(42), "builder"),
    (lambda: sizes.shape_only(lambda: 42), "builder"),
    (lambda: sizes.published_params("gpt5_en"), "preset"),
    (lambda: sizes.memory_bytes(-1), "n_params"),
    (lambda: sizes.memory_bytes(1, bytes_per_param=0), "bytes_per_param"),
    (lambda: sizes.training_flops(1, -5), "n_tokens"),
])
def test_bad_input_names_the_argument(call, name):
    with pytest.raises(ValueError, match=name):
        call()


def test_cost_arithmetic_accepts_numpy_numbers():
    import numpy as np

    assert sizes.training_flops(np.int64(2), np.float64(3.0)) == 36.0
    assert sizes.memory_bytes(np.int64(10)) == 40.0
