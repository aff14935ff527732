"""Tests for tlutils.adapt: DANN, Deep CORAL, MMD and the A-distance (chapter 05).

Behaviour on tiny data, in the style of a domain-adaptation library's test suite: with the
adaptation weight at 0 every method *is* source-only training; the reversal layer flips the
gradient's sign exactly; the alignment losses vanish on identical batches and grow with a shift.
"""

from __future__ import annotations

import math

import numpy as np
import pytest

import tlutils  # (quiet TensorFlow first)
from tlutils import adapt, models, train

keras = pytest.importorskip("keras")
tf = pytest.importorskip("tensorflow")


def _parts(seed: int = 0, n_in: int = 6, n_feat: int = 8, n_classes: int = 3):
    """A tiny MLP encoder and linear classifier with seeded initial weights."""
    init = keras.initializers.GlorotUniform
    inp = keras.Input((n_in,))
    enc = keras.Model(inp, keras.layers.Dense(n_feat, activation="relu",
                                              kernel_initializer=init(seed))(inp))
    feat = keras.Input((n_feat,))
    cls = keras.Model(feat, keras.layers.Dense(n_classes, kernel_initializer=init(seed + 1))(feat))
    return enc, cls


def _toy(n: int = 64, shift: float = 2.0, seed: int = 0):
    rng = np.random.default_rng(seed)
    xs = rng.normal(size=(n, 6)).astype(np.float32)
    ys = (xs[:, 0] > 0).astype(np.int64) + (xs[:, 1] > 0.5).astype(np.int64)
    xt = (rng.normal(size=(n, 6)) + shift).astype(np.float32)
    return xs, ys, xt


# --- the schedule and the reversal layer ----------------------------------------------------

def test_ganin_lambda_schedule():
    assert adapt.ganin_lambda(0.0) == 0.0
    assert adapt.ganin_lambda(0.5) == pytest.approx(2 / (1 + math.exp(-5)) - 1)
    assert adapt.ganin_lambda(1.0) == pytest.approx(0.99991, abs=1e-5)
    values = [adapt.ganin_lambda(p) for p in np.linspace(0, 1, 11)]
    assert all(a < b for a, b in zip(values, values[1:]))
    tensor = adapt.ganin_lambda(tf.constant([0.0, 0.5]))
    np.testing.assert_allclose(np.asarray(tensor), [0.0, values[5]], rtol=1e-6)


@pytest.mark.parametrize("lam", [1.0, 0.25, 0.0])
def test_reversal_is_identity_forward_and_flips_the_gradient(lam):
    layer = adapt.GradientReversal(lam)
    x = tf.constant([[1.5, -2.0, 3.0]])
    w = tf.constant([[0.5, 2.0, -4.0]])
    with tf.GradientTape(persistent=True) as tape:
        tape.watch(x)
        y = layer(x)
        plain = tf.reduce_sum(w * x)
        reversed_ = tf.reduce_sum(w * y)
    np.testing.assert_array_equal(np.asarray(y), np.asarray(x))
    g_plain = np.asarray(tape.gradient(plain, x))
    g_rev = np.asarray(tape.gradient(reversed_, x))
    np.testing.assert_array_equal(g_rev, -lam * g_plain)
    if lam == 1.0:
        np.testing.assert_array_equal(g_rev, -g_plain)


def test_reversal_weight_can_be_scheduled():
    layer = adapt.GradientReversal(1.0)
    layer.lam.assign(0.5)
    x = tf.constant([[2.0]])
    with tf.GradientTape() as tape:
        tape.watch(x)
        y = layer(x)
    assert float(np.asarray(tape.gradient(y, x))[0, 0]) == -0.5


# --- the alignment losses ------------------------------------------------------------------

def test_coral_on_wide_features_equals_the_covariance_formula():
    # Wide features (d > both batches) take the Gram-matrix route; the value must not change.
    rng = np.random.default_rng(3)
    s = rng.normal(size=(16, 300)).astype(np.float32)
    t = (rng.normal(size=(12, 300)) * 1.5 + 0.2).astype(np.float32)
    cs, ct = np.cov(s, rowvar=False), np.cov(t, rowvar=False)
    expected = np.sum((cs - ct) ** 2) / (4 * 300 ** 2)
    assert float(adapt.coral_loss(s, t)) == pytest.approx(expected, rel=1e-4)
    assert float(adapt.coral_loss(s, s)) == pytest.approx(0.0, abs=1e-9)
    assert float(adapt.coral_loss(s, t)) > 10 * float(adapt.coral_loss(s, s + 0.5))


def test_coral_of_identical_batches_is_zero_and_matches_the_paper_scale():
    rng = np.random.default_rng(0)
    s = rng.normal(size=(32, 5)).astype(np.float32)
    assert float(adapt.coral_loss(s, s)) == 0.0
    t = (rng.normal(size=(32, 5)) * np.array([1, 2, 3, 1, 1])).astype(np.float32)
    d = s.shape[1]
    expected = np.sum((np.cov(s, rowvar=False) - np.cov(t, rowvar=False)) ** 2) / (4 * d * d)
    assert float(adapt.coral_loss(s, t)) == pytest.approx(expected, rel=1e-4)
    # CORAL sees covariances only: a pure mean shift costs nothing.
    assert float(adapt.coral_loss(s, s + 3.0)) == pytest.approx(0.0, abs=1e-5)


def test_mmd_is_zero_for_identical_samples_and_grows_with_a_mean_shift():
    rng = np.random.default_rng(0)
    x = rng.normal(size=(40, 4)).astype(np.float32)
    assert float(adapt.mmd_loss(x, x)) == 0.0
    values = [float(adapt.mmd_loss(x, x + shift)) for shift in (0.25, 0.5, 1.0, 2.0)]
    assert values[0] > 0.0
    assert all(a < b for a, b in zip(values, values[1:]))
    # Two samples of the same distribution are much closer than a shifted pair.
    y = rng.normal(size=(40, 4)).astype(np.float32)
    assert float(adapt.mmd_loss(x, y)) < values[2]


def test_alignment_losses_have_gradients():
    s = tf.Variable(np.random.default_rng(1).normal(size=(16, 3)).astype(np.float32))
    t = tf.constant(np.random.default_rng(2).normal(size=(16, 3)).astype(np.float32) + 1.0)
    for loss_fn in (adapt.coral_loss, adapt.mmd_loss):
        with tf.GradientTape() as tape:
            loss = loss_fn(s, t)
        grad = np.asarray(tape.gradient(loss, s))
        assert np.all(np.isfinite(grad)) and np.abs(grad).sum() > 0


# --- the adapter ---------------------------------------------------------------------------

def _train_adapter(method: str, weight: float, steps: int = 12):
    xs, ys, xt = _toy()
    enc, cls = _parts(0)
    adapter = adapt.DomainAdapter(enc, cls, method=method, weight=weight, total_steps=steps,
                                  schedule="constant")
    adapter.compile(optimizer=keras.optimizers.Adam(0.05))
    ds = adapt.adaptation_dataset(xs, ys, xt, batch_size=16, shuffle=False)
    adapter.fit(ds, epochs=1, steps_per_epoch=steps, verbose=0, shuffle=False)
    return [np.asarray(w) for w in enc.weights + cls.weights]


def _train_plain(steps: int = 12):
    xs, ys, _ = _toy()
    enc, cls = _parts(0)
    inp = keras.Input((6,))
    model = keras.Model(inp, cls(enc(inp)))
    model.compile(optimizer=keras.optimizers.Adam(0.05),
                  loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True))
    ds = tf.data.Dataset.from_tensor_slices((xs, ys)).repeat().batch(16, drop_remainder=True)
    model.fit(ds, epochs=1, steps_per_epoch=steps, verbose=0, shuffle=False)
    return [np.asarray(w) for w in enc.weights + cls.weights]


@pytest.mark.parametrize("method", ["dann", "coral", "mmd"])
def test_weight_zero_reduces_to_plain_source_only_training(method):
    plain = _train_plain()
    zero = _train_adapter(method, 0.0)
    adapted = _train_adapter(method, 1.0)
    for a, b in zip(plain, zero):
        np.testing.assert_allclose(a, b, rtol=0, atol=1e-6)
    assert max(np.abs(a - b).max() for a, b in zip(plain, adapted)) > 1e-3


def test_source_only_method_matches_plain_training():
    for a, b in zip(_train_plain(), _train_adapter("source_only", 1.0)):
        np.testing.assert_allclose(a, b, rtol=0, atol=1e-6)


def test_dann_uses_the_ganin_schedule_by_default():
    enc, cls = _parts(0)
    adapter = adapt.DomainAdapter(enc, cls, method="dann", weight=0.5, total_steps=100)
    assert adapter.schedule == "ganin"
    assert float(adapter.adaptation_weight(0)) == 0.0
    assert float(adapter.adaptation_weight(50)) == pytest.approx(0.5 * adapt.ganin_lambda(0.5))
    coral = adapt.DomainAdapter(*_parts(0), method="coral", weight=2.0)
    assert coral.schedule == "constant" and float(coral.adaptation_weight(0)) == 2.0


def test_dann_makes_the_domains_harder_to_tell_apart():
    # Target = source with four nuisance inputs shifted; the label depends on the others.
    rng = np.random.default_rng(0)
    xs = rng.normal(size=(256, 6)).astype(np.float32)
    ys = (xs[:, 0] > 0).astype(np.int64) + (xs[:, 1] > 0.5).astype(np.int64)
    xt = rng.normal(size=(256, 6)).astype(np.float32)
    xt[:, 2:] += 2.0
    out = {}
    for weight in (0.0, 1.0):
        enc, cls = _parts(0)
        hist = adapt.fit_adapter(adapt.DomainAdapter(enc, cls, method="dann", weight=weight,
                                                     schedule="constant"),
                                 xs, ys, xt, steps=150, batch_size=32, lr=0.01)
        out[weight] = (float(hist["align_loss"].iloc[0]),
                       adapt.a_distance(np.asarray(enc(xs)), np.asarray(enc(xt))))
    assert set(hist.columns) >= {"steps", "loss", "class_loss", "align_loss", "lambda"}
    # Without reversal the domain classifier wins (low loss); with it, it is confused.
    assert out[1.0][0] > out[0.0][0] + 0.15
    assert out[1.0][1] < out[0.0][1]


def test_fit_adapter_under_a_distribution_strategy():
    xs, ys, xt = _toy()
    strategy = tf.distribute.MirroredStrategy(["/cpu:0"])
    hist = adapt.fit_adapter(lambda: adapt.DomainAdapter(*_parts(0), method="mmd"),
                             xs, ys, xt, steps=5, batch_size=16, strategy=strategy)
    assert np.isfinite(hist["loss"].iloc[0])


def test_compare_returns_a_tidy_table_with_the_oracle():
    xs, ys, xt = _toy(n=48)
    results = adapt.compare(_parts, xs, ys, xt, xs, ys, methods=["source_only", "coral"],
                            seeds=(0, 1), steps=5, batch_size=16, oracle=(xt, ys))
    assert list(results.columns) == ["method", "seed", "accuracy", "seconds"]
    assert results["method"].tolist() == ["source_only"] * 2 + ["coral"] * 2 + ["target_oracle"] * 2
    assert results["accuracy"].between(0, 1).all()


def test_compare_keeps_each_entry_s_own_model_when_entries_share_a_graph():
    # source_only and the oracle share one compiled adapter; each kept model must be its own.
    xs, ys, xt = _toy(n=48)
    yt = (ys + 1) % 3  # the oracle learns a different labelling, so the two must differ
    results, kept = adapt.compare(_parts, xs, ys, xt, xt, yt, methods=["source_only"],
                                  seeds=(0, 1), steps=20, batch_size=16, oracle=(xt, yt),
                                  keep=True, lr=0.05)
    assert set(kept) == {"source_only", "target_oracle"}
    assert kept["source_only"] is not kept["target_oracle"]
    for name, model in kept.items():
        last = results[(results["method"] == name) & (results["seed"] == 1)]["accuracy"].iloc[0]
        assert train.accuracy(model, xt, yt) == pytest.approx(last)
    assert any(not np.array_equal(a, b) for a, b in
               zip(kept["source_only"].get_weights(), kept["target_oracle"].get_weights()))
    alone = adapt.compare(_parts, xs, ys, xt, xt, yt, methods=["source_only"], seeds=(0, 1),
                          steps=20, batch_size=16, lr=0.05)
    assert alone["accuracy"].tolist() == results["accuracy"].tolist()[:2]


ORACLE_NAMED = {"target_oracle": {"method": "source_only"}}


def test_compare_refuses_a_second_oracle_entry():
    xs, ys, xt = _toy(n=48)
    with pytest.raises(ValueError, match="target_oracle"):
        adapt.compare(_parts, xs, ys, xt, xs, ys, methods=ORACLE_NAMED, seeds=(0,),
                      steps=5, batch_size=16, oracle=(xt, ys))
    # Without oracle=, an entry may use that name; it is trained on the data passed in.
    named = adapt.compare(_parts, xs, ys, xt, xs, ys, methods=ORACLE_NAMED,
                          seeds=(0,), steps=5, batch_size=16)
    plain = adapt.compare(_parts, xs, ys, xt, xs, ys, methods=["source_only"], seeds=(0,),
                          steps=5, batch_size=16)
    assert named["accuracy"].tolist() == plain["accuracy"].tolist()


def test_compare_is_reproducible():
    xs, ys, xt = _toy(n=48)
    runs = [adapt.compare(_parts, xs, ys, xt, xt, ys, methods={"dann": {"weight": 0.3}},
                          seeds=(0,), steps=5, batch_size=16)["accuracy"].tolist()
            for _ in range(2)]
    assert runs[0] == runs[1]


# --- helpers and diagnostics ---------------------------------------------------------------

def test_a_distance_separates_far_domains_not_identical_ones():
    rng = np.random.default_rng(0)
    a = rng.normal(size=(400, 5))
    b = rng.normal(size=(400, 5))
    assert adapt.a_distance(a, b) < 0.4
    assert adapt.a_distance(a, b + 5.0) == pytest.approx(2.0)


def test_split_model_composes_back_to_the_model():
    model = models.build_cnn(num_classes=4)
    enc, cls = adapt.split_model(model, at="dense")
    x = np.random.default_rng(0).random((3, 28, 28, 1)).astype(np.float32)
    np.testing.assert_allclose(np.asarray(cls(enc(x))), np.asarray(model(x)), atol=1e-6)
    assert enc.output.shape[-1] == 64


def test_inflated_model_matches_the_grey_model_on_grey_images():
    model = models.build_cnn(num_classes=4)
    rgb = adapt.inflate_channels(model)
    x = np.random.default_rng(0).random((3, 28, 28, 1)).astype(np.float32)
    assert rgb.input_shape[1:] == (28, 28, 3)
    np.testing.assert_allclose(np.asarray(rgb(np.repeat(x, 3, axis=-1))), np.asarray(model(x)),
                               atol=1e-5)


@pytest.mark.parametrize(
    ("call", "name"),
    [
        (lambda: adapt.ganin_lambda(1.5), "progress"),
        (lambda: adapt.ganin_lambda(0.5, gamma=0), "gamma"),
        (lambda: adapt.GradientReversal(-1.0), "lam"),
        (lambda: adapt.coral_loss(np.zeros(4), np.zeros((4, 2))), "source"),
        (lambda: adapt.coral_loss(np.zeros((4, 2)), np.zeros((4, 3))), "target"),
        (lambda: adapt.mmd_loss(np.zeros((4, 2)), np.zeros((4, 2)), multipliers=[]),
         "multipliers"),
        (lambda: adapt.DomainAdapter(*_parts(), method="tca"), "method"),
        (lambda: adapt.DomainAdapter(*_parts(), weight=-1.0), "weight"),
        (lambda: adapt.DomainAdapter(*_parts(), schedule="linear"), "schedule"),
        (lambda: adapt.DomainAdapter("encoder", _parts()[1]), "encoder"),
        (lambda: adapt.DomainAdapter(*_parts(), domain_hidden=(0,)), "domain_hidden"),
        (lambda: adapt.adaptation_dataset(*_toy()[:2], np.zeros((8, 5), np.float32)), "x_target"),
        (lambda: adapt.adaptation_dataset(_toy()[0], _toy()[1][:5], _toy()[2]), "y_source"),
        (lambda: adapt.fit_adapter(adapt.DomainAdapter(*_parts()), *_toy(), steps=0), "steps"),
        (lambda: adapt.fit_adapter("adapter", *_toy()), "adapter"),
        (lambda: adapt.compare(_parts, *_toy(), *_toy()[:2], seeds=()), "seeds"),
        (lambda: adapt.compare(_parts, *_toy(), *_toy()[:2], methods=["tca"]), "methods"),
        (lambda: adapt.a_distance(np.zeros((10, 2)), np.zeros((10, 3))), "target_features"),
        (lambda: adapt.a_distance(np.zeros(10), np.zeros((10, 3))), "source_features"),
        (lambda: adapt.split_model(models.build_cnn(), at="nope"), "at"),
        (lambda: adapt.inflate_channels(adapt.inflate_channels(models.build_cnn())), "model"),
    ],
)
def test_bad_input_names_the_argument(call, name):
    with pytest.raises(ValueError, match=rf"\b{name}\b"):
        call()


def test_domain_adapter_accepts_a_plain_sequential_encoder():
    import keras

    encoder = keras.Sequential([keras.Input((28, 28, 3)), keras.layers.Conv2D(4, 3),
                                keras.layers.Flatten()])
    classifier = keras.Sequential([keras.Input((26 * 26 * 4,)), keras.layers.Dense(10)])
    adapter = adapt.DomainAdapter(encoder, classifier, method="dann", total_steps=2)
    rng = np.random.default_rng(0)
    xs = rng.random((16, 28, 28, 3), dtype=np.float32)
    ys = np.arange(16) % 10
    table = adapt.fit_adapter(adapter, xs, ys, xs[::-1].copy(), steps=2, batch_size=8)
    assert table["steps"].item() == 2
    assert adapter.predict(xs[:2], verbose=0).shape == (2, 10)


# --- model selection on a labelled target validation set -----------------------------------

def _val(n: int = 30, seed: int = 5):
    """A small labelled 'target' validation set for the toy task."""
    rng = np.random.default_rng(seed)
    x = (rng.normal(size=(n, 6)) + 2.0).astype(np.float32)
    y = ((x[:, 0] > 2.0).astype(np.int64) + (x[:, 1] > 2.5).astype(np.int64))
    return x, y


def _final_weights(adapter):
    return [np.asarray(w) for w in adapter.get_weights()]


@pytest.mark.parametrize("method", ["coral", "dann"])
def test_a_run_stopped_at_round_r_equals_a_fixed_run_of_r_rounds(method):
    # Rounds continue one data stream and one optimizer: the weights kept at the best round r
    # are bit for bit those of one run of r x every steps (DANN's ramp: progress over the cap).
    from tlutils import engine

    xs, ys, xt = _toy(n=64)
    rule = engine.Stopping(every=4, max_steps=40, patience=1)
    settings = {"method": method, "weight": 0.5}
    stopped = adapt.DomainAdapter(*_parts(0), **settings)
    table = adapt.fit_adapter(stopped, xs, ys, xt, steps=None, stopping=rule, batch_size=16,
                              lr=0.05, validation=_val())
    used = int(table["steps"].iloc[0])
    assert used % rule.every == 0 and 0 < used < rule.max_steps
    assert float(stopped.total_steps.numpy()) == rule.max_steps
    fixed = adapt.DomainAdapter(*_parts(0), **settings)
    tlutils.setup(0)
    fixed.compile(optimizer=train.make_optimizer("adam", 0.05),
                  steps_per_execution=adapt._steps_per_execution(rule.every))
    fixed.set_total_steps(rule.max_steps)
    fixed.fit(adapt.adaptation_dataset(xs, ys, xt, batch_size=16, seed=0), epochs=1,
              steps_per_epoch=used, verbose=0, shuffle=False)
    for a, b in zip(_final_weights(stopped), _final_weights(fixed)):
        np.testing.assert_array_equal(a, b)
    x_val, y_val = _val()
    assert table["val_accuracy"].iloc[0] == train.accuracy(fixed, x_val, y_val)


def test_compare_with_stopping_equals_fixed_steps_runs_of_the_chosen_length():
    from tlutils import engine

    xs, ys, xt = _toy(n=64)
    rule = engine.Stopping(every=4, max_steps=40, patience=1)
    ruled = adapt.compare(_parts, xs, ys, xt, xt, ys, methods={"coral": {"weight": 0.5}},
                          seeds=(0, 1), steps=None, stopping=rule, batch_size=16, lr=0.05,
                          validation=_val())
    assert list(ruled.columns) == ["method", "seed", "accuracy", "steps", "val_accuracy",
                                   "seconds"]
    for seed, used, acc in zip(ruled.seed, ruled.steps, ruled.accuracy):
        fixed = adapt.compare(_parts, xs, ys, xt, xt, ys, methods={"coral": {"weight": 0.5}},
                              seeds=(seed,), steps=int(used), batch_size=16, lr=0.05)
        assert fixed["accuracy"].iloc[0] == acc


def test_weights_are_chosen_on_validation_never_on_the_test_set():
    from tlutils import engine

    xs, ys, xt = _toy(n=64)
    x_val, y_val = _val()
    rule = engine.Stopping(every=4, max_steps=24, patience=1)
    kwargs = dict(methods={"source_only": {}, "mmd": {}}, seeds=(0, 1), steps=None,
                  stopping=rule, batch_size=16, lr=0.05, validation=(x_val, y_val),
                  weights={"mmd": [0.0, 2.0, 20.0]}, all_weights=True)
    real = adapt.compare(_parts, xs, ys, xt, xt, ys, **kwargs)
    rng = np.random.default_rng(9)
    noise = adapt.compare(_parts, xs, ys, xt, rng.normal(size=xt.shape).astype(np.float32),
                          rng.integers(0, 3, len(ys)), **kwargs)
    assert list(real.columns) == ["method", "weight", "seed", "accuracy", "steps",
                                  "val_accuracy", "seconds", "chosen"]
    for column in ("method", "weight", "seed", "steps", "val_accuracy", "chosen"):
        assert real[column].fillna(-1).tolist() == noise[column].fillna(-1).tolist()
    grid = real[real.method == "mmd"]
    means = grid.groupby("weight", sort=False).val_accuracy.mean()
    assert grid[grid.chosen].weight.unique().tolist() == [means.idxmax()]
    assert real[real.method == "source_only"].weight.isna().all()
    assert real[real.method == "source_only"].chosen.all()
    # Without all_weights only the chosen runs are returned, with the same numbers.
    kwargs["all_weights"] = False
    chosen = adapt.compare(_parts, xs, ys, xt, xt, ys, **kwargs)
    assert "chosen" not in chosen.columns
    assert chosen.accuracy.tolist() == real[real.chosen].accuracy.tolist()


def test_ties_choose_the_first_weight_of_the_grid():
    xs, ys, xt = _toy(n=64)
    # weight 0 is source-only training, whatever the grid says: equal validation scores.
    res = adapt.compare(_parts, xs, ys, xt, xt, ys, methods={"coral": {}}, seeds=(0,), steps=4,
                        batch_size=16, validation=_val(), weights={"coral": [0.0, 0.0 + 1e-12]},
                        all_weights=True)
    assert res.val_accuracy.nunique() == 1
    assert res.chosen.tolist() == [True, False]


def test_compare_keeps_the_chosen_weight_s_model():
    xs, ys, xt = _toy(n=48)
    x_val, y_val = _val()
    res, kept = adapt.compare(_parts, xs, ys, xt, xt, ys, methods={"mmd": {}}, seeds=(0, 1),
                              steps=10, batch_size=16, lr=0.05, validation=(x_val, y_val),
                              weights={"mmd": [0.0, 50.0]}, keep=True)
    assert kept["mmd"].weight == res.weight.iloc[0]
    assert train.accuracy(kept["mmd"], xt, ys) == pytest.approx(res.accuracy.iloc[-1])
    assert res["steps"].tolist() == [10, 10]  # fixed steps with a validation set


def test_default_compare_output_is_unchanged_by_the_new_options():
    xs, ys, xt = _toy(n=48)
    plain = adapt.compare(_parts, xs, ys, xt, xt, ys, methods={"dann": {"weight": 0.3}},
                          seeds=(0,), steps=5, batch_size=16)
    with_val = adapt.compare(_parts, xs, ys, xt, xt, ys, methods={"dann": {"weight": 0.3}},
                             seeds=(0,), steps=5, batch_size=16, validation=_val())
    assert list(plain.columns) == ["method", "seed", "accuracy", "seconds"]
    assert with_val["accuracy"].tolist() == plain["accuracy"].tolist()


def _rule():
    from tlutils import engine

    return engine.Stopping(every=2, max_steps=4)


@pytest.mark.parametrize(
    ("call", "name"),
    [
        (lambda: adapt.compare(_parts, *_toy(), *_toy()[:2], validation=(_val()[0],)),
         "validation"),
        (lambda: adapt.compare(_parts, *_toy(), *_toy()[:2], validation=_val(),
                               stopping="early"), "stopping"),
        (lambda: adapt.compare(_parts, *_toy(), *_toy()[:2], stopping=_rule(), steps=None),
         "validation"),
        (lambda: adapt.compare(_parts, *_toy(), *_toy()[:2], stopping=_rule(),
                               validation=_val()), "steps"),
        (lambda: adapt.compare(_parts, *_toy(), *_toy()[:2], steps=None), "steps"),
        (lambda: adapt.compare(_parts, *_toy(), *_toy()[:2], weights={"mmd": [1.0, 2.0]}),
         "validation"),
        (lambda: adapt.compare(_parts, *_toy(), *_toy()[:2], validation=_val(),
                               weights={"tca": [1.0]}), "weights"),
        (lambda: adapt.compare(_parts, *_toy(), *_toy()[:2], validation=_val(),
                               weights={"mmd": [1.0, -1.0]}), "weights"),
        (lambda: adapt.compare(_parts, *_toy(), *_toy()[:2], validation=_val(),
                               weights={"mmd": [1.0, 1.0]}), "weights"),
        (lambda: adapt.compare(_parts, *_toy(), *_toy()[:2], validation=_val(),
                               weights={"source_only": [1.0]}), "weights"),
        (lambda: adapt.compare(_parts, *_toy(), *_toy()[:2], validation=_val(),
                               weights={"mmd": []}), "weights"),
        (lambda: adapt.compare(_parts, *_toy(), *_toy()[:2], all_weights="yes"),
         "all_weights"),
        (lambda: adapt.compare(_parts, *_toy(), *_toy()[:2],
                               validation=(np.zeros((4, 5), np.float32), np.zeros(4, int))),
         "validation"),
        (lambda: adapt.fit_adapter(adapt.DomainAdapter(*_parts()), *_toy(), steps=None,
                                   stopping=_rule()), "validation"),
        (lambda: adapt.fit_adapter(adapt.DomainAdapter(*_parts()), *_toy(), stopping=_rule(),
                                   validation=_val()), "steps"),
    ],
)
def test_bad_selection_input_names_the_argument(call, name):
    with pytest.raises(ValueError, match=rf"\b{name}\b"):
        call()
