"""tlutils.multitask: the two-head model, joint training, and the joint-vs-sequential runner."""

import numpy as np
import pytest

from tlutils import engine, models, multitask, train


def _tiny(n: int = 40, seed: int = 0):
    rng = np.random.default_rng(seed)
    x = rng.random((n, 28, 28, 1), dtype=np.float32)
    y = (np.arange(n) % 10).astype(np.int64)
    return x, y


# ---------------------------------------------------------------- build_two_head / task_model
def test_two_head_shares_one_trunk_and_has_a_head_per_task():
    model = multitask.build_two_head(num_classes=(10, 3), tasks=("mnist", "digits"))
    x, _ = _tiny(4)
    out = model({"mnist": x, "digits": x})
    assert sorted(out) == ["digits", "mnist"]
    assert out["mnist"].shape == (4, 10) and out["digits"].shape == (4, 3)
    trunk = model.get_layer("trunk")
    assert model.count_params() == trunk.count_params() + (64 * 10 + 10) + (64 * 3 + 3)
    # the trunk keeps the CNN's layer names, so source weights can be copied into it
    assert {"conv1", "conv2", "dense"} <= {layer.name for layer in trunk.layers}


def test_same_seed_same_weights_other_seed_other_weights():
    a = multitask.build_two_head(seed=3).get_weights()
    b = multitask.build_two_head(seed=3).get_weights()
    c = multitask.build_two_head(seed=4).get_weights()
    assert all(np.array_equal(u, v) for u, v in zip(a, b))
    assert not all(np.array_equal(u, v) for u, v in zip(a, c))


def test_task_model_shares_weights_with_the_two_head_model():
    model = multitask.build_two_head(tasks=("a", "b"))
    view = multitask.task_model(model, "b")
    x, _ = _tiny(3)
    np.testing.assert_allclose(np.asarray(view(x)), np.asarray(model({"a": x, "b": x})["b"]),
                               atol=1e-6)
    head = model.get_layer("head_b")
    head.set_weights([w + 1.0 for w in head.get_weights()])
    np.testing.assert_allclose(np.asarray(view(x)), np.asarray(model({"a": x, "b": x})["b"]),
                               atol=1e-6)


@pytest.mark.parametrize("kwargs, name", [
    ({"num_classes": (10,)}, "num_classes"),
    ({"num_classes": (10, 1)}, "num_classes"),
    ({"tasks": ("a", "a")}, "tasks"),
    ({"tasks": ("a", "not an identifier")}, "tasks"),
    ({"seed": -1}, "seed"),
])
def test_build_two_head_rejects_bad_input(kwargs, name):
    with pytest.raises(ValueError, match=name):
        multitask.build_two_head(**kwargs)


def test_task_model_rejects_unknown_task_and_plain_models():
    model = multitask.build_two_head(tasks=("a", "b"))
    with pytest.raises(ValueError, match="task"):
        multitask.task_model(model, "c")
    with pytest.raises(ValueError, match="trunk"):
        multitask.task_model(models.build_mlp(), "a")
    with pytest.raises(ValueError, match="model"):
        multitask.task_model("not a model", "a")


# ---------------------------------------------------------------- fit_joint
def test_a_task_with_zero_loss_weight_leaves_its_head_untouched():
    model = multitask.build_two_head(tasks=("a", "b"))
    x, y = _tiny(16)
    head_a = [w.copy() for w in model.get_layer("head_a").get_weights()]
    head_b = [w.copy() for w in model.get_layer("head_b").get_weights()]
    hist = multitask.fit_joint(model, {"a": (x, y), "b": (x, y)}, steps=3,
                               batch_sizes={"a": 8, "b": 8}, loss_weights={"a": 1.0, "b": 0.0})
    assert list(hist["steps"]) == [3]
    assert all(np.array_equal(u, v) for u, v in zip(head_b, model.get_layer("head_b").get_weights()))
    assert not all(np.array_equal(u, v)
                   for u, v in zip(head_a, model.get_layer("head_a").get_weights()))


@pytest.mark.parametrize("kwargs, name", [
    ({"steps": 0}, "steps"),
    ({"steps": 1, "batch_sizes": {"a": 8}}, "batch_sizes"),
    ({"steps": 1, "batch_sizes": {"a": 8, "b": 0}}, "batch_sizes"),
    ({"steps": 1, "loss_weights": {"a": 1.0, "b": -1.0}}, "loss_weights"),
    ({"steps": 1, "lr": 0}, "lr"),
])
def test_fit_joint_rejects_bad_settings(kwargs, name):
    model = multitask.build_two_head(tasks=("a", "b"))
    x, y = _tiny(8)
    with pytest.raises(ValueError, match=name):
        multitask.fit_joint(model, {"a": (x, y), "b": (x, y)}, **kwargs)


def test_fit_joint_needs_data_for_every_task():
    model = multitask.build_two_head(tasks=("a", "b"))
    x, y = _tiny(8)
    with pytest.raises(ValueError, match="task_data"):
        multitask.fit_joint(model, {"a": (x, y)}, steps=1)
    with pytest.raises(ValueError, match="equal length"):
        multitask.fit_joint(model, {"a": (x, y), "b": (x, y[:4])}, steps=1)


# ---------------------------------------------------------------- compare_joint_sequential
def test_joint_vs_sequential_table_and_the_forgetting_view():
    source = models.build_cnn(filters=(4, 4), dense=16)
    x, y = _tiny(40)
    xt, yt = _tiny(20, seed=1)
    # A learning rate so small that nothing moves: the source's head on the "fine-tuned" trunk
    # must then score exactly what the source scores on task A.
    df = multitask.compare_joint_sequential(source, (x, y), (x, y), (xt, yt), (xt, yt),
                                            budget=2, seeds=(0, 1), target_steps=2,
                                            joint_steps=2, joint_batch_sizes=(8, 8), lr=1e-12)
    assert list(df.columns) == ["approach", "seed", "task_a_accuracy", "task_b_accuracy",
                                "seconds"]
    assert list(df["approach"]) == ["sequential transfer"] * 2 + ["multi-task (joint)"] * 2
    assert df[["task_a_accuracy", "task_b_accuracy"]].stack().between(0, 1).all()
    sequential = df[df.approach == "sequential transfer"]
    assert (sequential["task_a_accuracy"] == train.accuracy(source, xt, yt)).all()


def test_the_fair_protocol_chooses_rates_on_validation_and_stops_by_the_rule():
    """FAQ Q2 on the fair protocol: both approaches run every rate of the grid, stop by the
    rule on task B's validation set, and the rates are chosen there, never on the test sets
    (swapping the tests for noise changes no choice and no stopping point). A run stopped at
    its best round is exactly a fixed run of that many steps."""
    source = models.build_cnn(filters=(4, 4), dense=16)
    x, y = _tiny(60)
    xv, yv = _tiny(30, seed=2)
    xt, yt = _tiny(20, seed=1)
    rule = engine.Stopping(every=2, max_steps=6, patience=1)
    kwargs = dict(budget=3, seeds=(0, 1), target_steps=None, joint_steps=None,
                  joint_batch_sizes=(8, 8), validation=(xv, yv), lrs=(1e-3, 1e-2),
                  stopping=rule, all_rates=True)
    df = multitask.compare_joint_sequential(source, (x, y), (x, y), (xt, yt), (xt, yt),
                                            **kwargs)
    assert list(df.columns) == ["approach", "lr", "seed", "task_a_accuracy",
                                "task_b_accuracy", "steps", "val_accuracy", "seconds",
                                "chosen"]
    assert len(df) == 2 * 2 * 2
    assert set(df.steps) <= {2, 4, 6}
    for _, rows in df.groupby("approach"):
        assert rows[rows.chosen].lr.nunique() == 1 and len(rows[rows.chosen]) == 2
        means = rows.groupby("lr").val_accuracy.mean()
        assert rows[rows.chosen].lr.iloc[0] == means.idxmax()
    rng = np.random.default_rng(5)
    noise = (rng.random(xt.shape, dtype=np.float32), rng.integers(0, 10, len(yt)))
    other = multitask.compare_joint_sequential(source, (x, y), (x, y), noise, noise, **kwargs)
    for column in ("chosen", "steps", "val_accuracy", "lr"):
        assert other[column].tolist() == df[column].tolist()

    chosen = df[df.chosen & (df.seed == 0)].set_index("approach")
    fixed = multitask.compare_joint_sequential(
        source, (x, y), (x, y), (xt, yt), (xt, yt), budget=3, seeds=(0,),
        target_steps=int(chosen.steps["sequential transfer"]),
        joint_steps=int(chosen.steps["multi-task (joint)"]), joint_batch_sizes=(8, 8),
        validation=(xv, yv), lrs={a: [chosen.lr[a]] for a in multitask.APPROACHES})
    for approach in multitask.APPROACHES:
        row = fixed[fixed.approach == approach].iloc[0]
        for column in ("task_a_accuracy", "task_b_accuracy", "val_accuracy"):
            assert row[column] == chosen.loc[approach, column], (approach, column)


@pytest.mark.parametrize("kwargs, name", [
    ({"budget": 0}, "budget"),
    ({"budget": 1, "seeds": ()}, "seeds"),
    ({"budget": 1, "joint_steps": 0}, "joint_steps"),
    ({"budget": 1, "joint_batch_sizes": (8,)}, "joint_batch_sizes"),
    ({"budget": 1, "lrs": (1e-3,)}, "needs a validation set"),
    ({"budget": 1, "stopping": engine.Stopping(2, 4)}, "target_steps and joint_steps"),
    ({"budget": 1, "validation": "val"}, "validation"),
    ({"budget": 1, "all_rates": True}, "all_rates"),
    ({"budget": 1, "lrs": {"multi-task (joint)": [1e-3]}}, "lrs must give a grid"),
])
def test_joint_vs_sequential_rejects_bad_settings(kwargs, name):
    source = models.build_cnn(filters=(2, 2), dense=4)
    x, y = _tiny(20)
    with pytest.raises(ValueError, match=name):
        multitask.compare_joint_sequential(source, (x, y), (x, y), (x, y), (x, y), **kwargs)


def test_joint_vs_sequential_rejects_bad_data():
    source = models.build_cnn(filters=(2, 2), dense=4, num_classes=3)
    x, y = _tiny(20)
    with pytest.raises(ValueError, match="task_a"):
        multitask.compare_joint_sequential(source, [x, y], (x, y), (x, y), (x, y), budget=1)
    with pytest.raises(ValueError, match="task_a labels"):  # labels 0-9, source has 3 outputs
        multitask.compare_joint_sequential(source, (x, y), (x, y), (x, y), (x, y), budget=1)
    with pytest.raises(ValueError, match="source"):
        multitask.compare_joint_sequential("model", (x, y), (x, y), (x, y), (x, y), budget=1)
