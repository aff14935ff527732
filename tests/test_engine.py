"""The comparison engine: a rewound run is bit for bit a fresh run, and the test notices when
the rewind is disabled (tlutils.engine, used by every chapter's comparisons)."""

import keras
import numpy as np
import pandas as pd
import pytest

from tests.toy import striped_digits
from tlutils import config, data, engine, models, transfer

SEEDS = [0, 1, 2]
STEPS = 6


def _task(n=60, k=4, seed=0):
    x, y = striped_digits(n, k, seed)
    return x.astype(np.float32), y


@pytest.fixture(scope="module")
def source():
    config.setup(0)
    return models.build_cnn(num_classes=4, filters=(4, 8), dense=16)


def _fresh(recipe, source, seed, xs, ys):
    """The reference: a model built and compiled from nothing for ``seed``, then trained."""
    keras.utils.set_random_seed(seed)
    model = recipe.build(source, 4, seed)
    recipe.compile(model)
    engine.train_steps(model, xs, ys, steps=STEPS, batch_size=8, seed=seed)
    return [v.numpy() for v in model.variables]


def _grid(trainee, seeds, xs_of):
    """Each seed's weights after the engine's rewind + training, seeds in the given order."""
    out = {}
    for seed in seeds:
        xs, ys = xs_of(seed)
        engine.train_steps(trainee.rewind(seed), xs, ys, steps=STEPS, batch_size=8, seed=seed)
        out[seed] = [v.numpy() for v in trainee.model.variables]
    return out


RECIPES = {"fine_tune": transfer.Recipe("fine_tune", lr=3e-3),
           "scratch+augment": transfer.Recipe("scratch", augment=True),
           "layerwise+l2sp": transfer.Recipe("fine_tune", l2sp=0.01,
                                             lr_multipliers={"head": 10.0})}


@pytest.mark.parametrize("name", list(RECIPES))
def test_a_rewound_run_equals_a_fresh_run_bit_for_bit(source, name):
    recipe = RECIPES[name]
    x, y = _task()
    samples = {s: data.few_shot(x, y, 3, seed=s) for s in SEEDS}
    trainee = recipe.trainee(source, 4, SEEDS)
    # Seeds out of order, after other seeds have trained the same compiled model.
    got = _grid(trainee, [2, 0, 1], samples.__getitem__)
    for seed in SEEDS:
        want = _fresh(recipe, source, seed, *samples[seed])
        assert len(got[seed]) == len(want)
        for a, b in zip(got[seed], want):
            np.testing.assert_array_equal(a, b)


def test_the_check_fails_when_the_rewind_is_disabled(source, monkeypatch):
    """Mutation check: a rewind that only reseeds (no restore of weights, optimizer and RNG
    state) must make the comparison with a fresh run fail."""
    recipe = RECIPES["fine_tune"]
    x, y = _task()
    samples = {s: data.few_shot(x, y, 3, seed=s) for s in SEEDS}
    trainee = recipe.trainee(source, 4, SEEDS)
    monkeypatch.setattr(engine.Trainee, "rewind",
                        lambda self, seed: (keras.utils.set_random_seed(seed), self.model)[1])
    got = _grid(trainee, [0, 1], samples.__getitem__)
    want = _fresh(recipe, source, 1, *samples[1])
    assert any(not np.array_equal(a, b) for a, b in zip(got[1], want))


def test_a_grid_cell_equals_an_isolated_fresh_run(source):
    x, y = _task()
    xt, yt = _task(40, seed=1)
    df = transfer.compare(source, x, y, xt, yt, recipes={"ft": RECIPES["fine_tune"]},
                          budgets=[3, 5], seeds=[0, 1], steps=STEPS, batch_size=8)
    recipe = RECIPES["fine_tune"]
    for budget in (3, 5):
        for seed in (0, 1):
            keras.utils.set_random_seed(seed)
            model = recipe.build(source, 4, seed)
            recipe.compile(model)
            xs, ys = data.few_shot(x, y, budget, seed=seed)
            engine.train_steps(model, xs, ys, steps=STEPS, batch_size=8, seed=seed)
            from tlutils import train

            cell = df[(df.budget == budget) & (df.seed == seed)].accuracy.item()
            assert cell == train.accuracy(model, xt, yt)


def test_a_rate_set_at_rewind_equals_compiling_with_that_rate(source):
    """One compiled graph serves a grid of learning rates: a run at ``lr`` set by
    ``rewind(seed, lr=...)`` equals a fresh model compiled with that rate, bit for bit, and a
    later rewind without ``lr`` is back at the compiled rate."""
    x, y = _task()
    xs, ys = data.few_shot(x, y, 3, seed=1)
    for name in ("fine_tune", "layerwise+l2sp"):
        recipe = RECIPES[name]
        trainee = recipe.trainee(source, 4, SEEDS)
        engine.train_steps(trainee.rewind(1, lr=3e-2), xs, ys, steps=STEPS, batch_size=8,
                           seed=1)
        got = [v.numpy() for v in trainee.model.variables]
        import dataclasses

        want = _fresh(dataclasses.replace(recipe, lr=3e-2), source, 1, xs, ys)
        for a, b in zip(got, want):
            np.testing.assert_array_equal(a, b)
        engine.train_steps(trainee.rewind(1), xs, ys, steps=STEPS, batch_size=8, seed=1)
        for a, b in zip(trainee.model.variables, _fresh(recipe, source, 1, xs, ys)):
            np.testing.assert_array_equal(a.numpy(), b)


def test_trainee_rejects_mismatched_builds_and_unknown_seeds(source):
    def build(seed):
        return models.build_cnn(num_classes=4, dense=8 + seed)

    with pytest.raises(ValueError, match="same architecture"):
        engine.Trainee(build, [0, 1], compile=lambda m: m.compile("adam", "mse"))
    trainee = RECIPES["fine_tune"].trainee(source, 4, [0])
    with pytest.raises(ValueError, match="seed"):
        trainee.rewind(5)
    with pytest.raises(ValueError, match="seeds"):
        engine.Trainee(build, [], compile=lambda m: None)
    with pytest.raises(ValueError, match="compile"):
        engine.Trainee(lambda s: models.build_cnn(num_classes=4), [0], compile=lambda m: None)


def test_run_bad_input(source):
    x, y = _task()
    trainee = RECIPES["fine_tune"].trainee(source, 4, [0])
    task = engine.Task(x, y, x, y, 2)
    with pytest.raises(ValueError, match="trainees"):
        engine.run({}, [task], steps=2)
    with pytest.raises(ValueError, match="steps"):
        engine.run({"a": trainee}, [task], steps=0)
    with pytest.raises(ValueError, match="budget"):
        engine.run({"a": trainee}, [engine.Task(x, y, x, y, 0)], steps=2)
    with pytest.raises(ValueError, match="y_pool"):
        engine.run({"a": trainee}, [engine.Task(x, y.astype(float), x, y, 2)], steps=2)


def test_l2sp_and_layerwise_adam_survive_get_config_from_config():
    reg = transfer.L2SP(np.ones((2, 3), np.float32), 0.5)
    again = keras.regularizers.deserialize(keras.regularizers.serialize(reg))
    assert isinstance(again, transfer.L2SP)
    assert again.alpha == 0.5 and np.array_equal(again.anchor, reg.anchor)
    opt = transfer.LayerwiseAdam(1e-3, {"conv1": 0.1}, default=0.5)
    back = keras.optimizers.deserialize(keras.optimizers.serialize(opt))
    assert isinstance(back, transfer.LayerwiseAdam)
    assert back.multipliers == {"conv1": 0.1} and back.default == 0.5


# --- cached frozen features (issue 12) -------------------------------------------------------

def _uncached(recipe, source, seeds):
    return engine.Trainee(lambda s: recipe.build(source, 4, s), seeds, compile=recipe.compile,
                          cache_features=False)


@pytest.mark.parametrize("keep_head", [True, False])
def test_cached_frozen_features_give_what_training_through_the_network_gives(source,
                                                                             keep_head):
    """Feature extraction trained on features computed once equals training through the
    frozen base: the same accuracies to the printed precision, weights equal to float
    rounding. The learner keeps the dropout layer, so its random masks are the same too."""
    recipe = transfer.Recipe("feature_extraction", lr=1e-2, keep_head=keep_head)
    x, y = _task()
    xt, yt = _task(40, seed=1)
    tasks = [engine.Task(x, y, xt, yt, b, {"budget": b}) for b in (2, 5)]
    cached = recipe.trainee(source, 4, SEEDS)
    assert cached.trunk is not None and cached.shared_trunk
    assert [layer.name for layer in cached.learner.layers] == ["dropout", "head"]
    plain = _uncached(recipe, source, SEEDS)
    assert plain.trunk is None and plain.learner is plain.model
    got = engine.run({"fe": cached}, tasks, steps=STEPS, batch_size=8)
    want = engine.run({"fe": plain}, tasks, steps=STEPS, batch_size=8)
    np.testing.assert_array_equal(got.accuracy.round(3), want.accuracy.round(3))
    for seed in SEEDS:  # the last task's weights, seed by seed, after a rerun of each
        xs, ys = data.few_shot(x, y, 5, seed=seed)
        engine.train_steps(plain.rewind(seed), xs, ys, steps=STEPS, batch_size=8, seed=seed)
        cached.rewind(seed)
        engine.train_steps(cached.learner, cached.features(xs), ys, steps=STEPS, batch_size=8,
                           seed=seed)
        for a, b in zip(cached.model.variables, plain.model.variables):
            np.testing.assert_allclose(a.numpy(), b.numpy(), rtol=1e-5, atol=1e-6)


def test_only_frozen_deterministic_prefixes_are_cached(source):
    fine = transfer.Recipe("fine_tune").trainee(source, 4, [0])
    augmented = transfer.Recipe("feature_extraction", augment=True).trainee(source, 4, [0])
    convs = transfer.Recipe("feature_extraction", freeze_upto="conv2").trainee(source, 4, [0])
    assert fine.trunk is None and augmented.trunk is None  # nothing frozen / random first
    assert convs.trunk is not None
    assert convs.learner.layers[0].name == "dense"  # pool2, flatten: weightless, cached
    assert [v.trainable for v in convs.learner.variables if v.trainable]


def test_a_frozen_random_trunk_is_featurised_per_seed():
    """A frozen base whose weights differ by seed (random features) must not share one set
    of features across seeds."""
    def build(seed):
        model = models.build_cnn(num_classes=4, filters=(4, 8), dense=16)
        models.freeze(model, upto="dense")
        return model

    trainee = engine.Trainee(build, [0, 1], compile=lambda m: m.compile(
        "adam", keras.losses.SparseCategoricalCrossentropy(from_logits=True)))
    assert trainee.trunk is not None and not trainee.shared_trunk
    x, y = _task()
    table = engine.run({"random": trainee}, [engine.Task(x, y, x, y, 3)], steps=2,
                       batch_size=8)
    assert len(table) == 2


# --- the stopping rule (issue 13) ------------------------------------------------------------

def test_stopping_rule_keeps_the_best_round_and_stops_after_patience(source):
    x, y = _task()
    xv, yv = _task(40, seed=2)
    xt, yt = _task(40, seed=1)
    rule = engine.Stopping(every=2, max_steps=10, patience=1)
    recipe = transfer.Recipe("fine_tune", lr=3e-3)
    trainee = recipe.trainee(source, 4, [0, 1])
    task = engine.Task(x, y, xt, yt, 3, {"budget": 3}, x_val=xv, y_val=yv)
    table = engine.run({"ft": trainee}, [task], stopping=rule, batch_size=8)
    assert set(table.columns) >= {"steps", "val_accuracy", "accuracy"}
    assert all(s % 2 == 0 and 2 <= s <= 10 for s in table.steps)
    from tlutils import train

    for seed, row in zip((0, 1), table.itertuples()):
        # Replay by hand: the state after round r is a fresh run of 2r steps (the batch
        # stream and Adam's state run on across rounds). The rule keeps the first best round
        # and stops one round after the last improvement.
        xs, ys = data.few_shot(x, y, 3, seed=seed)
        scores, test_scores = [], []
        for r in range(1, 6):
            model = trainee.rewind(seed)
            engine.train_steps(model, xs, ys, steps=2 * r, batch_size=8, seed=seed)
            scores.append(train.accuracy(model, xv, yv))
            test_scores.append(train.accuracy(model, xt, yt))
            if len(scores) - 1 - int(np.argmax(scores)) >= 1:
                break
        best = int(np.argmax(scores))
        assert row.steps == 2 * (best + 1)
        assert row.val_accuracy == scores[best]
        assert row.accuracy == test_scores[best]


def test_stopping_and_validation_bad_input(source):
    x, y = _task()
    trainee = RECIPES["fine_tune"].trainee(source, 4, [0])
    with pytest.raises(ValueError, match="max_steps"):
        engine.Stopping(every=3, max_steps=10)
    with pytest.raises(ValueError, match="every"):
        engine.Stopping(every=0)
    with pytest.raises(ValueError, match="validation"):
        engine.run({"a": trainee}, [engine.Task(x, y, x, y, 2)], stopping=engine.Stopping())
    with pytest.raises(ValueError, match="steps or stopping"):
        engine.run({"a": trainee}, [engine.Task(x, y, x, y, 2, x_val=x, y_val=y)], steps=2,
                   stopping=engine.Stopping())
    with pytest.raises(ValueError, match="together"):
        engine.run({"a": trainee}, [engine.Task(x, y, x, y, 2, x_val=x)], steps=2)
    with pytest.raises(ValueError, match="validation set"):
        transfer.compare(source, x, y, x, y, recipes=["fine_tune"], budgets=[2], seeds=[0],
                         lrs=[1e-3, 1e-2])
    with pytest.raises(ValueError, match="missing"):
        transfer.compare(source, x, y, x, y, recipes=["fine_tune", "scratch"], budgets=[2],
                         seeds=[0], validation=(x, y), lrs={"fine_tune": [1e-3]})
    with pytest.raises(ValueError, match="lrs"):
        transfer.compare(source, x, y, x, y, recipes=["fine_tune"], budgets=[2], seeds=[0],
                         validation=(x, y), lrs=[1e-3, -1.0])


def test_compare_picks_each_recipes_rate_on_validation_never_on_test(source):
    x, y = _task()
    xv, yv = _task(40, seed=2)
    xt, yt = _task(40, seed=1)
    grid = {"ft": [1e-4, 3e-3], "fe": [1e-3, 3e-2]}
    recipes = {"ft": transfer.Recipe("fine_tune"),
               "fe": transfer.Recipe("feature_extraction")}
    res = transfer.compare(source, x, y, xt, yt, recipes=recipes, budgets=[2, 4],
                           seeds=[0, 1], steps=4, batch_size=8, validation=(xv, yv),
                           lrs=grid)
    full = transfer.compare(source, x, y, xt, yt, recipes=recipes, budgets=[2, 4],
                            seeds=[0, 1], steps=4, batch_size=8, validation=(xv, yv),
                            lrs=grid, all_rates=True)
    assert len(full) == 2 * 2 * 2 * 2 and len(res) == 2 * 2 * 2
    pd.testing.assert_frame_equal(full[full.chosen].drop(columns=["chosen", "seconds"])
                                  .reset_index(drop=True), res.drop(columns="seconds"))
    for (method, budget), rows in res.groupby(["method", "budget"]):
        means = full[(full.method == method) & (full.budget == budget)].groupby(
            "lr", sort=False).val_accuracy.mean()
        assert rows.lr.nunique() == 1 and rows.lr.iloc[0] == means.idxmax()
    # Scoring the test set differently must not change the choice: swap the test set for
    # noise and the chosen rates stay the same.
    noise = np.random.default_rng(0).random(xt.shape).astype(np.float32)
    again = transfer.compare(source, x, y, noise, yt, recipes=recipes, budgets=[2, 4],
                             seeds=[0, 1], steps=4, batch_size=8, validation=(xv, yv),
                             lrs=grid)
    assert again.lr.tolist() == res.lr.tolist()


def test_compare_can_choose_the_rate_at_one_budget_and_keep_it(source):
    x, y = _task()
    xv, yv = _task(40, seed=2)
    xt, yt = _task(40, seed=1)
    kw = dict(recipes={"ft": transfer.Recipe("fine_tune")}, seeds=[0, 1], batch_size=8,
              validation=(xv, yv), lrs=[1e-4, 3e-3],
              stopping=engine.Stopping(every=2, max_steps=6))
    full = transfer.compare(source, x, y, xt, yt, budgets=[2, 4], steps=None, choose_at=4,
                            all_rates=True, **kw)
    assert sorted(full[full.budget == 4].lr.unique()) == [1e-4, 3e-3]
    assert full[full.budget == 2].lr.nunique() == 1 and full[full.budget == 2].chosen.all()
    chosen_at_4 = full[(full.budget == 4) & full.chosen].lr.unique()
    assert list(full[full.budget == 2].lr.unique()) == list(chosen_at_4)
    # The runs at budget 2 are what a compare at that one rate gives.
    alone = transfer.compare(source, x, y, xt, yt, budgets=[2], steps=None,
                             **{**kw, "lrs": list(chosen_at_4)})
    np.testing.assert_array_equal(alone.accuracy, full[full.budget == 2].accuracy)
    with pytest.raises(ValueError, match="choose_at"):
        transfer.compare(source, x, y, xt, yt, budgets=[2], steps=None, choose_at=3, **kw)


def test_run_rates_chooses_per_task_on_validation_and_equals_single_rate_runs(source):
    x, y = _task()
    xv, yv = _task(40, seed=2)
    xt, yt = _task(40, seed=1)
    tasks = [engine.Task(x, y, xt, yt, b, {"budget": b}, x_val=xv, y_val=yv) for b in (2, 4)]
    trainee = RECIPES["fine_tune"].trainee(source, 4, [0, 1])
    grid = engine.run_rates({"ft": trainee}, tasks, {"ft": [1e-4, 3e-3]}, steps=4,
                           batch_size=8)
    assert list(grid.columns) == ["method", "budget", "lr", "seed", "accuracy", "steps",
                                  "val_accuracy", "seconds", "chosen"]
    assert len(grid) == 2 * 2 * 2
    for budget, rows in grid.groupby("budget"):
        means = rows.groupby("lr", sort=False).val_accuracy.mean()
        assert set(rows[rows.chosen].lr) == {means.idxmax()}
        # Each rate's rows are exactly what run() gives at that rate.
        for lr, part in rows.groupby("lr"):
            alone = engine.run({"ft": trainee}, [t for t in tasks if t.budget == budget],
                               steps=4, lr=lr, batch_size=8)
            np.testing.assert_array_equal(part.accuracy, alone.accuracy)
    # The test set plays no part: noise in its place chooses the same rates.
    noisy = [engine.Task(x, y, np.zeros_like(xt), yt, t.budget, t.columns, x_val=xv, y_val=yv)
             for t in tasks]
    again = engine.run_rates({"ft": trainee}, noisy, {"ft": [1e-4, 3e-3]}, steps=4,
                            batch_size=8)
    assert again.chosen.tolist() == grid.chosen.tolist()


def test_run_rates_bad_input(source):
    x, y = _task()
    trainee = RECIPES["fine_tune"].trainee(source, 4, [0])
    task = engine.Task(x, y, x, y, 2, x_val=x, y_val=y)
    with pytest.raises(ValueError, match="lrs"):
        engine.run_rates({"a": trainee}, [task], {"b": [1e-3]}, steps=2)
    with pytest.raises(ValueError, match="lrs"):
        engine.run_rates({"a": trainee}, [task], {"a": [1e-3, 1e-3]}, steps=2)
    with pytest.raises(ValueError, match="validation"):
        engine.run_rates({"a": trainee}, [engine.Task(x, y, x, y, 2)], {"a": [1e-3]}, steps=2)
    with pytest.raises(ValueError, match="choose_on"):
        engine.run_rates({"a": trainee}, [task], {"a": [1e-3]}, steps=2,
                        choose_on=engine.Task(x, y, x, y, 3, x_val=x, y_val=y))


def test_mark_chosen_keeps_the_best_mean_validation_rate_first_on_ties():
    table = pd.DataFrame({"who": ["a"] * 4 + ["b"] * 4, "lr": [1, 1, 2, 2] * 2,
                          "val_accuracy": [0.5, 0.7, 0.9, 0.1, 0.4, 0.4, 0.3, 0.5]})
    # a: means 0.6 vs 0.5 -> lr 1; b: 0.4 vs 0.4, a tie -> the first of the grid, lr 1
    assert engine.mark_chosen(table, within=["who"]).tolist() == [True] * 2 + [False] * 2 + \
        [True] * 2 + [False] * 2
    assert engine.mark_chosen(table).tolist() == [True, True, False, False] * 2
    with pytest.raises(ValueError, match="within"):
        engine.mark_chosen(table, within=["nope"])
    with pytest.raises(ValueError, match="columns"):
        engine.mark_chosen(table.drop(columns="val_accuracy"))


def test_fit_to_rule_and_extra_reject_bad_input():
    model = keras.Sequential([keras.Input((3,)), keras.layers.Dense(2)])
    model.compile(optimizer="adam", loss="mse")
    x, y = np.zeros((4, 3), np.float32), np.zeros(4, np.int64)
    with pytest.raises(ValueError, match="rule"):
        engine.fit_to_rule(model, None, 100, x, y)
    with pytest.raises(ValueError, match="scored"):
        engine.fit_to_rule(model, None, engine.Stopping(1, 2), x, y, scored="head")
    trainee = engine.Trainee(lambda s: keras.Sequential([keras.Input((3,)),
                                                         keras.layers.Dense(2)]), [0],
                             compile=lambda m: m.compile(optimizer="adam", loss="mse"))
    task = engine.Task(x, y, x, y, budget=1)
    with pytest.raises(ValueError, match="extra"):
        engine.run({"t": trainee}, [task], steps=1, extra={"col": 3})


@pytest.mark.parametrize("steps", [STEPS, 20])
def test_several_steps_per_call_give_the_same_runs_bit_for_bit(source, monkeypatch, steps):
    """``run`` lets Keras take gcd(steps, 10) steps per compiled call (2 for 6 steps, 10 for
    20, 10 per round of the stopping rule): the table and the final weights equal one step
    per call, and no run takes a step more than it asked for (Keras rounds an epoch up to
    whole calls, so a divisor is needed)."""
    x, y = _task()
    xv, yv = _task(40, seed=2)
    xt, yt = _task(40, seed=1)
    task = engine.Task(x, y, xt, yt, 3, {"budget": 3}, x_val=xv, y_val=yv)
    recipes = {"fine_tune": RECIPES["fine_tune"],
               "feature_extraction": transfer.Recipe("feature_extraction", lr=1e-2)}
    rule = engine.Stopping(every=steps, max_steps=3 * steps, patience=1)

    def tables(per_call):
        monkeypatch.setattr(engine, "_EXECUTION", per_call)
        trainees = {k: r.trainee(source, 4, [0, 1]) for k, r in recipes.items()}
        fixed = engine.run(trainees, [task], steps=steps, batch_size=8)
        weights = [v.numpy() for t in trainees.values() for v in t.model.variables]
        calls = {k: t.learner.steps_per_execution for k, t in trainees.items()}
        ruled = engine.run(trainees, [task], stopping=rule, batch_size=8)
        iterations = [int(t.learner.optimizer.iterations.numpy()) for t in trainees.values()]
        return fixed, weights, calls, ruled, iterations

    one = tables(1)
    ten = tables(10)
    assert set(ten[2].values()) == {int(np.gcd(steps, 10))}
    assert set(one[2].values()) == {1}
    columns = ["method", "seed", "accuracy", "steps", "val_accuracy"]
    for a, b in ((one[0], ten[0]), (one[3], ten[3])):
        pd.testing.assert_frame_equal(a[columns[:3]], b[columns[:3]], check_exact=True)
    pd.testing.assert_frame_equal(one[3][columns], ten[3][columns], check_exact=True)
    for a, b in zip(one[1], ten[1]):
        np.testing.assert_array_equal(a, b)
    assert one[4] == ten[4]  # the last run's step count: none overshot
