import numpy as np
import pytest

from tlutils import config, models, train


def _separable(n=60, seed=0):
    rng = np.random.default_rng(seed)
    y = np.arange(n) % 2
    x = rng.normal(0, 0.1, (n, 28, 28, 1)).astype(np.float32)
    x[y == 1, :14] += 1.0
    return np.clip(x, 0, 1), y


def test_fit_learns_and_returns_history():
    x, y = _separable()
    m = models.build_cnn(num_classes=2)
    hist = train.fit(m, x, y, epochs=5, batch_size=16, lr=3e-3)
    assert list(hist["epoch"]) == [5] and "loss" in hist
    assert train.accuracy(m, x, y) > 0.95


def test_fit_is_deterministic_for_a_seed():
    x, y = _separable()
    # seed the build too: the initial weights are part of the run
    ms = []
    for seed in (0, 0, 1):
        config.setup(123)
        m = models.build_cnn(num_classes=2)
        train.fit(m, x, y, epochs=2, batch_size=16, seed=seed)
        ms.append(m.get_layer("dense").get_weights()[0])
    np.testing.assert_array_equal(ms[0], ms[1])
    assert not np.array_equal(ms[0], ms[2])


def test_verbose_prints_one_line_per_epoch_without_timings(capsys):
    x, y = _separable(20)
    m = models.build_cnn(num_classes=2)
    hist = train.fit(m, x, y, epochs=3, batch_size=10, verbose=1, validation_data=(x, y))
    lines = [line for line in capsys.readouterr().out.splitlines() if line.strip()]
    assert [line.split()[1] for line in lines] == ["1/3", "2/3", "3/3"]
    assert all("ms" not in line and "val_accuracy" in line for line in lines)
    assert list(hist["epoch"]) == [1, 2, 3]


def test_augment_keeps_the_architecture():
    from tlutils import data

    x, y = _separable(20)
    m = models.build_cnn(num_classes=2)
    names = [layer.name for layer in m.layers]
    train.fit(m, x, y, epochs=1, batch_size=10, augment=data.augmenter())
    assert [layer.name for layer in m.layers] == names


def test_fit_accepts_a_builder_and_strategy():
    import tensorflow as tf

    x, y = _separable(20)
    hist = train.fit(lambda: models.build_cnn(num_classes=2), x, y, epochs=1, batch_size=10,
                     strategy=tf.distribute.get_strategy())
    assert len(hist) == 1


@pytest.mark.parametrize("kwargs,name", [
    ({"epochs": 0}, "epochs"), ({"batch_size": -1}, "batch_size"), ({"lr": 0}, "lr"),
    ({"optimizer": "rmsprop"}, "optimizer"), ({"verbose": 2}, "verbose"),
    ({"validation_data": [1, 2]}, "validation_data"), ({"strategy": "gpu"}, "strategy"),
])
def test_fit_bad_input(kwargs, name):
    x, y = _separable(10)
    with pytest.raises(ValueError, match=name):
        train.fit(models.build_cnn(num_classes=2), x, y, **kwargs)


def test_fit_rejects_mismatched_data():
    x, y = _separable(10)
    with pytest.raises(ValueError, match="same|equal"):
        train.fit(models.build_cnn(num_classes=2), x, y[:-1])
    with pytest.raises(ValueError, match="model"):
        train.fit("cnn", x, y)


def test_predictions_and_evaluate():
    x, y = _separable(30)
    m = models.build_cnn(num_classes=2)
    logits = train.predict_logits(m, x, batch_size=7)
    assert logits.shape == (30, 2)
    np.testing.assert_array_equal(train.predict_labels(m, x), logits.argmax(1))
    result = train.evaluate(m, x, y)
    assert set(result) == {"loss", "accuracy"} and result["loss"] > 0
    assert result["accuracy"] == train.accuracy(m, x, y)
    with pytest.raises(ValueError, match="batch_size"):
        train.predict_logits(m, x, batch_size=0)


def test_make_optimizer_names_instances_and_schedules():
    import keras

    assert isinstance(train.make_optimizer("adam", 1e-3), keras.optimizers.Adam)
    momentum = train.make_optimizer("momentum", 0.1)
    assert isinstance(momentum, keras.optimizers.SGD) and momentum.momentum == 0.9
    assert train.make_optimizer("sgd", 0.1).momentum == 0.0
    mine = keras.optimizers.Adam(0.5)
    assert train.make_optimizer(mine, 1e-3) is mine
    schedule = keras.optimizers.schedules.ExponentialDecay(0.1, 10, 0.5)
    assert train.make_optimizer("sgd", schedule).learning_rate is not None
    for bad in ("rmsprop", 3):
        with pytest.raises(ValueError, match="optimizer"):
            train.make_optimizer(bad, 1e-3)


def test_fit_rejects_what_would_otherwise_train_silently_or_fail_deep_in_tensorflow():
    import keras

    model = keras.Sequential([keras.Input((4,)), keras.layers.Dense(3)])
    x = np.zeros((6, 4), np.float32)
    y = np.array([0, 1, 2, 0, 1, 2])
    with pytest.raises(ValueError, match="below 3"):  # out of range for 3 outputs
        train.fit(model, x, np.array([0, 1, 2, 3, 1, 2]), epochs=1)
    with pytest.raises(ValueError, match="NaN"):
        train.fit(model, np.full((6, 4), np.nan, np.float32), y, epochs=1)
    with pytest.raises(ValueError, match="integer"):
        train.fit(model, x, y.astype(np.float32), epochs=1)
    with pytest.raises(ValueError, match="lr"):
        train.fit(model, x, y, lr=float("nan"), epochs=1)
