import json

import numpy as np
import pytest

from tlutils import zoo

TINY = dict(dataset="digits28", n_train=200, epochs=1, batch_size=32)


def test_trains_once_then_loads_identical_weights():
    zoo.clear()
    m1, e1 = zoo.source_model(**TINY)
    m2, e2 = zoo.source_model(**TINY)
    assert not e1.from_cache and e2.from_cache
    assert e1.key == e2.key and e1.test_accuracy == e2.test_accuracy
    for a, b in zip(m1.get_weights(), m2.get_weights()):
        np.testing.assert_array_equal(a, b)
    assert not [p for p in e1.path.parent.iterdir() if ".tmp" in p.name]  # nothing half-written


def test_training_is_reproducible_from_scratch():
    zoo.clear()
    m1, _ = zoo.source_model(**TINY)
    m2, e2 = zoo.source_model(refresh=True, **TINY)
    assert not e2.from_cache
    for a, b in zip(m1.get_weights(), m2.get_weights()):
        np.testing.assert_array_equal(a, b)


def _after_source_model(**kwargs) -> tuple[float, float, np.ndarray]:
    """Seed, ask the zoo for a model, then draw: what a notebook cell after the call sees."""
    import random

    import keras

    from tlutils import setup

    setup(7)
    zoo.source_model(**kwargs)
    layer = keras.layers.Dense(3)  # its initial weights come from Python's generator
    layer.build((None, 2))
    return random.random(), float(np.random.rand()), layer.kernel.numpy()


def test_random_state_after_the_call_does_not_depend_on_the_cache():
    # A notebook run with an empty zoo (CI) must print what a run with a full zoo printed.
    zoo.clear()
    trained = _after_source_model(**TINY)
    cached = _after_source_model(**TINY)
    assert trained[0] == cached[0] and trained[1] == cached[1]
    np.testing.assert_array_equal(trained[2], cached[2])


def test_corrupt_weights_are_rebuilt_not_trusted():
    zoo.clear()
    _, e = zoo.source_model(**TINY)
    e.path.write_bytes(b"garbage")
    with pytest.warns(UserWarning, match="unusable"):
        m, e2 = zoo.source_model(**TINY)
    assert not e2.from_cache and e2.test_accuracy == e.test_accuracy


def test_tampered_card_is_rebuilt():
    zoo.clear()
    _, e = zoo.source_model(**TINY)
    card = e.path.with_name(f"{e.key}.json")
    meta = json.loads(card.read_text())
    meta["sha256"] = "0" * 64
    card.write_text(json.dumps(meta))
    with pytest.warns(UserWarning, match="checksum"):
        _, e2 = zoo.source_model(**TINY)
    assert not e2.from_cache


def test_the_key_follows_the_recipe():
    zoo.clear()
    _, a = zoo.source_model(**TINY)
    _, b = zoo.source_model(**{**TINY, "classes": (0, 1, 2, 3, 4)})
    assert a.key != b.key
    assert len(zoo.entries()) == 2


@pytest.mark.parametrize("kwargs,name", [({"dataset": "cifar"}, "dataset"), ({"arch": "vit"}, "arch"),
                                         ({"classes": (1,)}, "classes"), ({"epochs": 0}, "epochs"),
                                         ({"lr": -1.0}, "lr")])
def test_spec_validation(kwargs, name):
    with pytest.raises(ValueError, match=name):
        zoo.SourceSpec(**kwargs)
