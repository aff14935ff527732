import numpy as np
import pandas as pd
import pytest

from tests.toy import striped_digits
from tlutils import config, models, train, transfer


def _source(num_classes=4):
    config.setup(0)
    return models.build_cnn(num_classes=num_classes)


def _data(n=24, k=4, seed=0):
    return striped_digits(n, k, seed)


def test_make_target_methods():
    src = _source()
    scratch = transfer.make_target(src, "scratch", seed=1)
    fe = transfer.make_target(src, "feature_extraction", num_classes=3)
    ft = transfer.make_target(src, "fine_tune", keep_head=True)
    assert not np.allclose(scratch.get_layer("conv1").get_weights()[0],
                           src.get_layer("conv1").get_weights()[0])
    np.testing.assert_array_equal(ft.get_layer("head").get_weights()[0],
                                  src.get_layer("head").get_weights()[0])
    assert fe.output_shape == (None, 3)
    assert [layer.name for layer in fe.layers if layer.trainable and layer.weights] == ["head"]
    assert all(layer.trainable for layer in ft.layers)
    with pytest.raises(ValueError, match="keep_head"):
        transfer.make_target(src, "fine_tune", num_classes=3, keep_head=True)
    with pytest.raises(ValueError, match="method"):
        transfer.make_target(src, "distil")


def test_l2sp_is_zero_at_the_anchor_and_grows_away_from_it():
    reg = transfer.L2SP(np.ones((2, 2)), alpha=0.5)
    assert float(reg(np.ones((2, 2), np.float32))) == 0.0
    assert float(reg(np.zeros((2, 2), np.float32))) == pytest.approx(0.5 * 4)
    with pytest.raises(ValueError, match="alpha"):
        transfer.L2SP(np.ones(2), alpha=-1)


def test_apply_l2sp_keeps_fine_tuned_weights_near_the_source():
    src = _source()
    x, y = _data()
    drift = {}
    for alpha in (0.0, 10.0):
        m = transfer.make_target(src, "fine_tune", keep_head=True)
        applied = transfer.apply_l2sp(m, alpha=alpha, beta=0.0)
        assert applied["head/kernel"].startswith("L2(")
        assert applied["conv1/kernel"].startswith("L2-SP(")
        train.fit(m, x, y, epochs=5, batch_size=8, lr=1e-2)
        drift[alpha] = np.abs(m.get_layer("dense").get_weights()[0]
                              - src.get_layer("dense").get_weights()[0]).sum()
    assert drift[10.0] < 0.5 * drift[0.0]


def test_apply_l2_regularises_every_weight():
    m = _source()
    paths = transfer.apply_l2(m, 1e-3)
    assert len(paths) == len(m.trainable_weights)
    assert all(v.regularizer is not None for v in m.trainable_weights)
    with pytest.raises(ValueError, match="factor"):
        transfer.apply_l2(m, -1.0)


def test_layerwise_adam_zero_multiplier_freezes_a_layer():
    src = _source()
    x, y = _data()
    m = transfer.make_target(src, "fine_tune", keep_head=True)
    before = m.get_layer("conv1").get_weights()[0].copy()
    dense_before = m.get_layer("dense").get_weights()[0].copy()
    opt = transfer.LayerwiseAdam(1e-2, {"conv1": 0.0})
    train.fit(m, x, y, epochs=2, batch_size=8, optimizer=opt)
    np.testing.assert_array_equal(before, m.get_layer("conv1").get_weights()[0])
    assert not np.allclose(dense_before, m.get_layer("dense").get_weights()[0])
    with pytest.raises(ValueError, match="multipliers"):
        transfer.LayerwiseAdam(1e-3, {"conv1": -1})


def test_compare_runs_every_cell_and_resets_between_runs():
    src = _source()
    x, y = _data(40)
    xt, yt = _data(40, seed=1)
    recipes = {"scratch": transfer.Recipe("scratch"),
               "ft": transfer.Recipe("fine_tune", lr=3e-3)}
    df = transfer.compare(src, x, y, xt, yt, recipes=recipes, budgets=[2, 5], seeds=[0, 1], steps=15)
    assert len(df) == 2 * 2 * 2
    assert list(df.columns) == ["method", "budget", "seed", "accuracy", "seconds"]
    # (Equality with a fresh run, cell by cell, is tests/test_engine.py's job.)
    # Training happened on every run (a reset that zeroed the learning rate would not).
    untrained = train.accuracy(transfer.make_target(src, "fine_tune", keep_head=True), xt, yt)
    assert (df[df.method == "ft"].accuracy > untrained).all()


def test_compare_bad_input():
    src = _source()
    x, y = _data()
    with pytest.raises(ValueError, match="budgets"):
        transfer.compare(src, x, y, x, y, budgets=[0])
    with pytest.raises(ValueError, match="recipes"):
        transfer.compare(src, x, y, x, y, recipes={"a": "fine_tune"})
    with pytest.raises(ValueError, match="steps"):
        transfer.compare(src, x, y, x, y, steps=0)
    with pytest.raises(ValueError, match="method"):
        transfer.Recipe("transplant")
    with pytest.raises(ValueError, match="not both"):
        transfer.Recipe("fine_tune", l2=0.1, l2sp=0.1)


def test_run_grid_summarise_and_efficiency():
    df = transfer.run_grid(lambda method, budget, seed: 0.5 + 0.1 * (method == "b") + 0.01 * seed,
                           budget=[1, 2], method=["a", "b"], seeds=[0, 1])
    assert len(df) == 8
    assert list(df.columns) == ["budget", "method", "seed", "accuracy", "seconds"]
    table = transfer.summarise(df)
    assert table.loc[(1, "b"), "mean"] == pytest.approx(0.605)
    assert table.loc[(1, "b"), "count"] == 2
    assert transfer.transfer_efficiency(0.8, 0.95, 1.0) == pytest.approx(0.75)
    with pytest.raises(ValueError, match="oracle"):
        transfer.transfer_efficiency(0.9, 0.95, 0.85)
    with pytest.raises(ValueError, match="run returned"):
        transfer.run_grid(lambda **k: 2.0, method=["a"], budget=[1], seeds=[0])
    with pytest.raises(ValueError, match="axis"):
        transfer.run_grid(lambda **k: 0.5, seeds=[0])
    with pytest.raises(ValueError, match="budget"):
        transfer.run_grid(lambda **k: 0.5, budget=[], seeds=[0])
    assert transfer.transfer_efficiency(np.float32(0.8), np.float64(0.9), 1.0) == \
        pytest.approx(0.5)
    with pytest.raises(ValueError, match="transfer"):
        transfer.transfer_efficiency(0.8, float("nan"), 1.0)
    with pytest.raises(ValueError, match="results"):
        transfer.summarise(pd.DataFrame({"x": [1]}))
