import numpy as np
import pytest

from tlutils import engine, models, recipe_search
from tlutils.recipe_search import Choice, Trainer


def _tiny_source(seed: int = 123):
    import keras

    keras.utils.set_random_seed(seed)
    return models.build_cnn(input_shape=(8, 8, 1), num_classes=2, filters=(2, 2), dense=4)


def _easy_data(n: int = 40, seed: int = 0):
    """Two classes a linear model separates at once: dark images vs bright images."""
    rng = np.random.default_rng(seed)
    y = np.arange(n) % 2
    x = rng.uniform(0.0, 0.2, size=(n, 8, 8, 1)).astype(np.float32) + 0.7 * y[:, None, None, None]
    return x.astype(np.float32), y.astype(np.int64)


@pytest.fixture(scope="module")
def trainer():
    return Trainer(_tiny_source(), keep_head=True, batch_size=8)


# ----------------------------------------------------------------- Choice and grid
@pytest.mark.parametrize("kwargs, name", [
    ({"init": "imagenet"}, "init"),
    ({"freeze": -1}, "freeze"),
    ({"freeze": 1.5}, "freeze"),
    ({"init": "scratch", "freeze": 2}, "freeze"),
    ({"lr": 0}, "lr"),
    ({"lr": "fast"}, "lr"),
])
def test_choice_rejects_bad_input(kwargs, name):
    with pytest.raises(ValueError, match=name):
        Choice(**kwargs)


def test_choice_names_are_distinct():
    names = [c.name for c in recipe_search.grid()]
    assert len(set(names)) == len(names)
    assert Choice("scratch", 0, 3e-3).name == "scratch, lr 3e-03"
    assert Choice("source", 2, 1e-4).name == "freeze 2, lr 1e-04"


def test_grid_covers_every_combination():
    g = recipe_search.grid(freeze=(0, 3), lrs=(1e-4, 1e-3), scratch_lrs=(1e-3,))
    assert len(g) == 5
    assert Choice("source", 3, 1e-4) in g and Choice("scratch", 0, 1e-3) in g


@pytest.mark.parametrize("kwargs, name", [
    ({"freeze": (), "scratch_lrs": ()}, "empty"),
    ({"lrs": ()}, "lrs"),
    ({"freeze": 2}, "freeze"),
    ({"freeze": (1, 1)}, "repeated"),
])
def test_grid_rejects_bad_input(kwargs, name):
    with pytest.raises(ValueError, match=name):
        recipe_search.grid(**kwargs)


def test_fixed_recipes_match_the_book():
    recipes = recipe_search.fixed_recipes(models.build_cnn())
    assert recipes["feature_extraction"] == Choice("source", 3, 1e-2)  # conv1 conv2 dense
    assert recipes["fine_tune"] == Choice("source", 0, 1e-3)
    assert recipes["scratch"].init == "scratch"


# ----------------------------------------------------------------- Trainer
def test_trainer_rejects_bad_input(trainer):
    x, y = _easy_data()
    with pytest.raises(ValueError, match="source"):
        Trainer("not a model")
    with pytest.raises(ValueError, match="batch_size"):
        Trainer(_tiny_source(), batch_size=0)
    with pytest.raises(ValueError, match="choice"):
        trainer.run("fine_tune", x, y)
    with pytest.raises(ValueError, match="steps"):
        trainer.run(Choice(), x, y, steps=-1)
    with pytest.raises(ValueError, match="freeze"):
        trainer.run(Choice(freeze=9), x, y)
    with pytest.raises(ValueError, match="y must hold labels"):
        trainer.run(Choice(), x, y + 5)


def test_frozen_layers_do_not_move_and_the_rest_do(trainer):
    x, y = _easy_data()
    before = {n: trainer.source.get_layer(n).get_weights()[0].copy() for n in trainer.layers}
    model = trainer.run(Choice("source", 2, 1e-2), x, y, steps=10, seed=0)
    for name in ("conv1", "conv2"):
        np.testing.assert_array_equal(model.get_layer(name).get_weights()[0], before[name])
    for name in ("dense", "head"):
        assert not np.allclose(model.get_layer(name).get_weights()[0], before[name])
    model = trainer.run(Choice("source", 0, 1e-2), x, y, steps=10, seed=0)
    assert not np.allclose(model.get_layer("conv1").get_weights()[0], before["conv1"])


def test_the_source_is_never_modified(trainer):
    x, y = _easy_data()
    src = [w.copy() for w in trainer.source.get_weights()]
    trainer.run(Choice("source", 0, 1e-2), x, y, steps=5, seed=0)
    for a, b in zip(src, trainer.source.get_weights()):
        np.testing.assert_array_equal(a, b)


def test_runs_are_reset_and_reproducible(trainer):
    x, y = _easy_data()
    first = [w.copy() for w in trainer.run(Choice(lr=1e-2), x, y, steps=8, seed=1).get_weights()]
    trainer.run(Choice("scratch", 0, 1e-2), x, y, steps=8, seed=2)  # something in between
    again = trainer.run(Choice(lr=1e-2), x, y, steps=8, seed=1).get_weights()
    for a, b in zip(first, again):
        np.testing.assert_array_equal(a, b)


def test_freezing_everything_is_the_source_as_is(trainer):
    x, y = _easy_data()
    steps_before = trainer.steps
    model = trainer.run(Choice("source", len(trainer.layers), 1e-2), x, y, steps=20)
    for a, b in zip(trainer.source.get_weights(), model.get_weights()):
        np.testing.assert_array_equal(a, b)
    assert trainer.steps == steps_before  # nothing to train, no steps spent


def test_scratch_starts_from_fresh_weights_per_seed(trainer):
    x, y = _easy_data()
    a = [w.copy() for w in trainer.run(Choice("scratch", 0, 1e-3), x, y, steps=0, seed=0).get_weights()]
    b = trainer.run(Choice("scratch", 0, 1e-3), x, y, steps=0, seed=1).get_weights()
    src = trainer.source.get_weights()
    assert not np.allclose(a[0], src[0]) and not np.allclose(a[0], b[0])


def test_a_new_head_cannot_be_frozen():
    t = Trainer(_tiny_source(), num_classes=3, keep_head=False)
    x, y = _easy_data()
    with pytest.raises(ValueError, match="head"):
        t.run(Choice("source", len(t.layers), 1e-3), x, y)
    with pytest.raises(ValueError, match="keep_head"):
        Trainer(_tiny_source(), num_classes=3, keep_head=True)


# ----------------------------------------------------------------- search
def test_search_picks_the_candidate_that_learns(trainer):
    x, y = _easy_data(60)
    choices = [Choice("source", 0, 1e-9), Choice("source", 0, 3e-2)]  # ~no training vs training
    result = recipe_search.search(trainer, x, y, choices, steps=30, val_fraction=0.3, seed=0)
    assert result.best == choices[1]
    assert list(result.table["choice"]) == [c.name for c in choices]
    assert result.table["val_accuracy"].iloc[1] == 1.0
    assert result.cost["runs"] == len(choices) + 1  # every candidate, then the refit
    assert result.test_accuracy is None


def test_search_never_looks_at_the_test_labels(trainer):
    x, y = _easy_data(60)
    xt, yt = _easy_data(20, seed=1)
    choices = [Choice("source", 0, 1e-9), Choice("source", 0, 3e-2)]
    honest = recipe_search.search(trainer, x, y, choices, steps=30, x_test=xt, y_test=yt)
    flipped = recipe_search.search(trainer, x, y, choices, steps=30, x_test=xt, y_test=1 - yt)
    assert honest.best == flipped.best == choices[1]
    assert honest.test_accuracy == pytest.approx(1 - flipped.test_accuracy)
    assert {"train_accuracy", "val_accuracy", "test_accuracy"} <= set(honest.table.columns)


def test_search_rejects_bad_input(trainer):
    x, y = _easy_data()
    with pytest.raises(ValueError, match="trainer"):
        recipe_search.search("t", x, y, [Choice()])
    with pytest.raises(ValueError, match="choices"):
        recipe_search.search(trainer, x, y, [])
    with pytest.raises(ValueError, match="x_test"):
        recipe_search.search(trainer, x, y, [Choice()], x_test=x)
    with pytest.raises(ValueError, match="val_fraction"):
        recipe_search.search(trainer, x, y, [Choice()], val_fraction=1.5)


# ----------------------------------------------------------------- the stopping rule
def _noisy_data(n: int = 60, seed: int = 0):
    """Two noisy classes (the top rows a little brighter in class 1) that take some steps to
    separate, so validation accuracy climbs over several rounds."""
    rng = np.random.default_rng(seed)
    y = np.arange(n) % 2
    x = rng.uniform(0.0, 1.0, size=(n, 8, 8, 1)).astype(np.float32)
    x[:, :4] += 0.3 * y[:, None, None, None]
    return x.astype(np.float32), y.astype(np.int64)


def test_run_to_rule_stops_at_its_best_round_and_equals_one_longer_run(trainer):
    x, y = _noisy_data(60)
    xv, yv = _noisy_data(40, seed=1)
    rule = engine.Stopping(every=4, max_steps=80, patience=2)
    choice = Choice("source", 0, 1e-2)
    steps_before = trainer.steps
    model, used, val_acc = trainer.run_to_rule(choice, x, y, xv, yv, stopping=rule, seed=3)
    trained = trainer.steps - steps_before
    assert used % rule.every == 0 and 0 < used <= trained <= rule.max_steps
    assert 2 * rule.every <= used < trained  # rounds carried over, and rounds rewound
    stopped = [w.copy() for w in model.get_weights()]
    assert val_acc == np.mean(np.argmax(model(xv, training=False), -1) == yv)
    # Round r of the rule is bit for bit a fixed run of r * every steps.
    fixed = trainer.run(choice, x, y, steps=used, seed=3).get_weights()
    for a, b in zip(stopped, fixed):
        np.testing.assert_array_equal(a, b)


def test_run_to_rule_stops_after_patience_rounds_without_improvement(trainer):
    x, y = _easy_data(60)
    xv, yv = _easy_data(20, seed=1)
    rule = engine.Stopping(every=5, max_steps=200, patience=2)
    steps_before = trainer.steps
    _, used, val_acc = trainer.run_to_rule(Choice("source", 0, 3e-2), x, y, xv, yv,
                                          stopping=rule, seed=0)
    assert val_acc == 1.0  # the easy task is learnt, and nothing can beat that
    assert trainer.steps - steps_before == used + rule.patience * rule.every


def test_run_to_rule_with_everything_frozen_trains_nothing(trainer):
    x, y = _easy_data()
    steps_before = trainer.steps
    model, used, val_acc = trainer.run_to_rule(
        Choice("source", len(trainer.layers), 1e-2), x, y, x, y,
        stopping=engine.Stopping(every=5, max_steps=20), seed=0)
    assert used == 0 and trainer.steps == steps_before
    for a, b in zip(trainer.source.get_weights(), model.get_weights()):
        np.testing.assert_array_equal(a, b)


def test_run_to_rule_rejects_bad_input(trainer):
    x, y = _easy_data()
    rule = engine.Stopping(every=5, max_steps=20)
    with pytest.raises(ValueError, match="stopping"):
        trainer.run_to_rule(Choice(), x, y, x, y, stopping=20)
    with pytest.raises(ValueError, match="y_val"):
        trainer.run_to_rule(Choice(), x, y, x, y + 5, stopping=rule)
    with pytest.raises(ValueError, match="x_val"):
        trainer.run_to_rule(Choice(), x, y, x[:3], y, stopping=rule)
    with pytest.raises(ValueError, match="choice"):
        trainer.run_to_rule("fine_tune", x, y, x, y, stopping=rule)


def test_search_with_stopping_ranks_best_rounds_and_refits_for_their_steps(trainer):
    x, y = _noisy_data(60)
    xt, yt = _noisy_data(30, seed=2)
    rule = engine.Stopping(every=4, max_steps=80, patience=2)
    choices = [Choice("source", 0, 1e-9), Choice("source", 0, 3e-2), Choice("scratch", 0, 1e-2)]
    before = trainer.steps
    result = recipe_search.search(trainer, x, y, choices, stopping=rule, seed=1,
                                  x_test=xt, y_test=yt)
    t = result.table
    assert list(t.columns) == ["choice", "init", "freeze", "lr", "steps", "train_accuracy",
                               "val_accuracy", "val_loss", "test_accuracy"]
    assert (t["steps"] % rule.every == 0).all() and (t["steps"] <= rule.max_steps).all()
    ranked = t.sort_values(["val_accuracy", "val_loss"], ascending=[False, True], kind="stable")
    assert result.best.name == ranked["choice"].iloc[0]
    assert result.steps == ranked["steps"].iloc[0]
    assert result.cost["runs"] == len(choices) + 1
    assert trainer.steps - before == result.cost["steps"] >= t["steps"].sum() + result.steps
    # The refit is a fixed run of the winner's steps on every labelled example.
    again = trainer.run(result.best, x, y, steps=result.steps, seed=1)
    assert result.test_accuracy == np.mean(np.argmax(again(xt, training=False), -1) == yt)


def test_search_with_fixed_steps_is_unchanged(trainer):
    x, y = _easy_data(60)
    result = recipe_search.search(trainer, x, y, [Choice("source", 0, 3e-2)], steps=30)
    assert list(result.table.columns) == ["choice", "init", "freeze", "lr", "train_accuracy",
                                          "val_accuracy", "val_loss"]
    assert result.steps == 30 and result.cost["steps"] == 2 * 30


def test_search_takes_steps_or_stopping(trainer):
    x, y = _easy_data()
    rule = engine.Stopping(every=5, max_steps=20)
    # Neither: the fixed budget of 100 steps it has always had.
    default = recipe_search.search(trainer, x, y, [Choice()], refit=False)
    assert default.cost["steps"] == 100
    with pytest.raises(ValueError, match="steps or stopping"):
        recipe_search.search(trainer, x, y, [Choice()], steps=10, stopping=rule)
    with pytest.raises(ValueError, match="stopping"):
        recipe_search.search(trainer, x, y, [Choice()], stopping=5)
    with pytest.raises(ValueError, match="steps"):
        recipe_search.search(trainer, x, y, [Choice()], steps=-1)
