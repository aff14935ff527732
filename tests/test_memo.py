"""Results computed once (tlutils.memo, transfer.compare(cache=True)): same numbers from the
cache as from training, one computation per key, a key that sees every input."""

from __future__ import annotations

import warnings

import keras
import numpy as np
import pandas as pd
import pytest

from tests.toy import striped_digits
from tlutils import config, engine, io, memo, models, transfer


def _source():
    config.setup(0)
    return models.build_cnn(num_classes=4)


def test_fingerprint_sees_every_input():
    x, y = striped_digits(12)
    src = _source()
    base = {"x": x, "y": y, "model": src, "recipe": transfer.Recipe("fine_tune"),
            "grid": {"a": [1e-3, 1e-2]}, "rule": engine.Stopping(every=10, max_steps=20),
            "n": 3, "none": None}
    key = memo.fingerprint(base)
    assert key == memo.fingerprint(dict(base)) and len(key) == 64
    x2 = x.copy()
    x2[0, 0, 0, 0] += 1e-6
    src2 = _source()
    src2.get_layer("head").bias.assign(np.full(4, 1e-7, dtype=np.float32))
    changed = [
        {**base, "x": x2},
        {**base, "x": x.astype(np.float64)},
        {**base, "model": src2},
        {**base, "recipe": transfer.Recipe("fine_tune", lr=2e-3)},
        {**base, "grid": {"a": [1e-3, 3e-2]}},
        {**base, "rule": engine.Stopping(every=10, max_steps=30)},
        {**base, "n": 3.0},
        {**base, "extra": 1},
    ]
    keys = {memo.fingerprint(parts) for parts in changed}
    assert key not in keys and len(keys) == len(changed)
    # A model's weights make its key, not the random-number state of its dropout layer,
    # which depends on what else the process built first (chapter 1 builds other models
    # before it loads the source that section 4.3 loads first).
    models.build_cnn()
    same = models.build_cnn(num_classes=4)
    same.set_weights(src.get_weights())
    states = [[v.numpy().tolist() for v in m.variables if "seed_generator" in v.path]
              for m in (src, same)]
    assert states[0] and states[0] != states[1]  # the test means something
    assert memo.fingerprint({**base, "model": same}) == key


def test_fingerprint_rejects_what_it_cannot_key():
    with pytest.raises(ValueError, match="parts"):
        memo.fingerprint([1, 2])
    with pytest.raises(ValueError, match="parts"):
        memo.fingerprint({1: 2})
    with pytest.raises(ValueError, match="cannot make a cache key from a object"):
        memo.fingerprint({"f": object()})


def test_cached_table_computes_once_and_reads_back_exactly():
    calls = []

    def compute():
        calls.append(1)
        return pd.DataFrame({"a": [0.1 + 0.2, 1 / 3], "b": [True, False], "c": ["x", "y"]})

    first, hit1 = memo.cached_table("t", {"k": 1}, compute)
    second, hit2 = memo.cached_table("t", {"k": 1}, compute)
    other, hit3 = memo.cached_table("t", {"k": 2}, compute)
    assert (hit1, hit2, hit3) == (False, True, False) and len(calls) == 2
    pd.testing.assert_frame_equal(first, second, check_exact=True)
    pd.testing.assert_frame_equal(first, other, check_exact=True)


def test_an_unreadable_entry_is_recomputed():
    table = pd.DataFrame({"a": [1.0]})
    memo.cached_table("broken", {"k": 1}, lambda: table)
    (path,) = (config.cache_dir() / "results").glob("broken.*.pkl")
    path.write_bytes(b"not a pickle")
    with pytest.warns(UserWarning, match="unusable"):
        again, hit = memo.cached_table("broken", {"k": 1}, lambda: table)
    assert not hit
    pd.testing.assert_frame_equal(again, table)
    assert memo.cached_table("broken", {"k": 1}, lambda: table)[1]  # rewritten whole


def test_an_unwritable_cache_computes_and_stores_nothing(tmp_path, monkeypatch):
    blocker = tmp_path / "a-file"
    blocker.write_text("not a folder")  # so no folder can be made under it, even by root
    monkeypatch.setenv("TLUTILS_CACHE_DIR", str(blocker / "cache"))
    table, hit = memo.cached_table("ro", {"k": 1}, lambda: pd.DataFrame({"a": [1]}))
    assert not hit and table.a.tolist() == [1]
    assert blocker.read_text() == "not a folder"


def test_cached_table_bad_input():
    with pytest.raises(ValueError, match="name"):
        memo.cached_table("a b", {}, lambda: pd.DataFrame())
    with pytest.raises(ValueError, match="compute"):
        memo.cached_table("a", {}, None)
    with pytest.raises(ValueError, match="compute must return a pandas.DataFrame"):
        memo.cached_table("a", {"k": "not a frame"}, lambda: [1, 2])
    with pytest.raises(ValueError, match="exclusive"):
        with io.locked(config.cache_dir() / "x.lock", exclusive=1):
            pass


def test_compare_from_the_cache_equals_training_and_leaves_the_same_random_state(monkeypatch):
    src = _source()
    x, y = striped_digits(40)
    xv, yv = striped_digits(16, seed=2)
    xt, yt = striped_digits(24, seed=1)
    kwargs = dict(recipes={"scratch": transfer.Recipe("scratch"),
                           "ft": transfer.Recipe("fine_tune")},
                  budgets=[2, 4], seeds=[0, 1], steps=None, validation=(xv, yv),
                  lrs=[1e-3, 1e-2], stopping=engine.Stopping(every=5, max_steps=15),
                  choose_at=2)
    trained = transfer.compare(src, x, y, xt, yt, cache=True, **kwargs)
    after_training = (np.random.rand(), float(keras.random.uniform((1,))[0]))
    uncached = transfer.compare(src, x, y, xt, yt, **kwargs)
    pd.testing.assert_frame_equal(trained.drop(columns="seconds"),
                                  uncached.drop(columns="seconds"), check_exact=True)

    def no_training(*args, **kw):
        raise AssertionError("a cached comparison must not train")

    monkeypatch.setattr(engine, "run", no_training)
    np.random.rand(5)  # disturb the random state: the cached path must reset it the same way
    cached = transfer.compare(src, x, y, xt, yt, cache=True, **kwargs)
    after_cache = (np.random.rand(), float(keras.random.uniform((1,))[0]))
    pd.testing.assert_frame_equal(trained, cached, check_exact=True)
    assert after_cache == after_training
    # any change of input is a new computation
    with pytest.raises(AssertionError, match="must not train"):
        transfer.compare(src, x, y, xt, yt, cache=True, **{**kwargs, "seeds": [0, 2]})
    with pytest.raises(ValueError, match="cache"):
        transfer.compare(src, x, y, xt, yt, cache="yes", **kwargs)


def test_a_changed_source_is_a_new_computation():
    src = _source()
    x, y = striped_digits(24)
    xt, yt = striped_digits(24, seed=1)
    kwargs = dict(recipes=["fine_tune"], budgets=[2], seeds=[0], steps=5, cache=True)
    transfer.compare(src, x, y, xt, yt, **kwargs)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        n = len(list((config.cache_dir() / "results").glob("compare.*.pkl")))
        src.get_layer("conv1").kernel.assign(src.get_layer("conv1").kernel * 0.5)
        transfer.compare(src, x, y, xt, yt, **kwargs)
        assert len(list((config.cache_dir() / "results").glob("compare.*.pkl"))) == n + 1
