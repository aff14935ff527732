"""The comparison engine: a rewound run is bit for bit a fresh run, and the test notices when
the rewind is disabled (tlutils.engine, used by every chapter's comparisons)."""

import keras
import numpy as np
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
