import numpy as np
import pandas as pd
import pytest

from tlutils import zeroshot


def test_attribute_table_describes_every_digit_distinctly():
    table = zeroshot.attribute_table()
    assert isinstance(table, pd.DataFrame)
    assert table.shape == (10, len(zeroshot.ATTRIBUTES))
    assert list(table.columns) == list(zeroshot.ATTRIBUTES)
    assert set(np.unique(table.to_numpy())) == {0, 1}
    rows = {tuple(r) for r in table.to_numpy()}
    assert len(rows) == 10  # no two digits share a description
    assert table.loc[8, "loop"] == 1 and table.loc[1, "loop"] == 0
    assert table.loc[1, "stem"] == 1 and table.loc[1].sum() == 1


def test_unseen_split_is_seeded_and_complete():
    seen, unseen = zeroshot.unseen_split(3, seed=0)
    assert sorted(seen + unseen) == list(range(10)) and len(unseen) == 3
    assert zeroshot.unseen_split(3, seed=0) == (seen, unseen)
    assert any(zeroshot.unseen_split(3, seed=s)[1] != unseen for s in range(1, 5))


@pytest.mark.parametrize("kwargs, name", [
    ({"n_unseen": 0}, "n_unseen"),
    ({"n_unseen": 10}, "n_unseen"),
    ({"seed": -1}, "seed"),
    ({"n_classes": 1}, "n_classes"),
])
def test_unseen_split_rejects_bad_input(kwargs, name):
    with pytest.raises(ValueError, match=name):
        zeroshot.unseen_split(**kwargs)


def test_learnable_flags_attributes_constant_over_the_seen_classes():
    table = zeroshot.attribute_table()
    ok = dict(zip(table.columns, zeroshot.learnable(table, [0, 1, 3])))
    assert ok["loop"] and ok["stem"]  # 0 has a loop, 1 a stem; the others do not
    assert not ok["diagonal"]  # none of 0, 1, 3 has one
    with pytest.raises(ValueError, match="seen"):
        zeroshot.learnable(table, [0, 0])


def test_dap_picks_the_class_whose_description_matches():
    table = np.array([[1, 0, 0], [0, 1, 0], [0, 0, 1], [1, 1, 0]])
    probs = np.array([[0.9, 0.1, 0.1],   # class 0
                      [0.9, 0.9, 0.1],   # class 3
                      [0.1, 0.2, 0.8]], dtype=np.float32)  # class 2
    scores = zeroshot.dap_scores(probs, table, [0, 1, 2, 3])
    assert scores.shape == (3, 4)
    np.testing.assert_array_equal(scores.argmax(axis=1), [0, 3, 2])
    # restricted to a subset of classes, columns follow the order given
    sub = zeroshot.dap_scores(probs, table, [2, 0])
    np.testing.assert_allclose(sub, scores[:, [2, 0]])


def test_dap_prior_discounts_common_attributes():
    table = np.array([[1, 0], [1, 1]])
    probs = np.array([[0.5, 0.5]], dtype=np.float32)
    plain = zeroshot.dap_scores(probs, table, [0, 1])
    np.testing.assert_allclose(plain[0, 0], plain[0, 1])  # undecided without a prior
    # attribute 1 is rare (10 %): having it is the more surprising, telling, explanation
    with_prior = zeroshot.dap_scores(probs, table, [0, 1], prior=np.array([0.9, 0.1]))
    assert with_prior[0, 1] > with_prior[0, 0]


@pytest.mark.parametrize("kwargs, name", [
    ({"probs": np.zeros((2, 5), np.float32)}, "probs"),
    ({"table": np.full((3, 3), 2)}, "table"),
    ({"classes": [0, 7]}, "classes"),
    ({"classes": []}, "classes"),
    ({"prior": np.ones(2)}, "prior"),
    ({"eps": 0.7}, "eps"),
])
def test_dap_rejects_bad_input(kwargs, name):
    args = {"probs": np.full((2, 3), 0.5, np.float32), "table": np.eye(3, dtype=int),
            "classes": [0, 1, 2]}
    args.update(kwargs)
    with pytest.raises(ValueError, match=name):
        zeroshot.dap_scores(**args)


def test_calibrated_stacking_lowers_only_seen_classes():
    scores = np.array([[2.0, 1.0, 0.0]])
    out = zeroshot.calibrated_stacking(scores, [True, False, False], 1.5)
    np.testing.assert_allclose(out, [[0.5, 1.0, 0.0]])
    assert out.argmax() == 1 and scores.argmax() == 0
    with pytest.raises(ValueError, match="is_seen"):
        zeroshot.calibrated_stacking(scores, [True], 1.0)
    with pytest.raises(ValueError, match="gamma"):
        zeroshot.calibrated_stacking(scores, [True, False, False], float("nan"))


def test_attribute_model_learns_the_table_on_tiny_data():
    # Two "classes" of 28x28 images: bright top half vs bright bottom half.
    rng = np.random.default_rng(0)
    y = np.arange(64) % 2
    x = rng.uniform(0, 0.1, size=(64, 28, 28, 1)).astype(np.float32)
    x[y == 0, :14] += 0.8
    x[y == 1, 14:] += 0.8
    table = np.array([[1, 0, 1], [0, 1, 1]])  # the third attribute is always present
    model = zeroshot.build_attribute_model(3, seed=0)
    hist = zeroshot.fit_attribute_model(model, x, y, table, steps=40, batch_size=16, lr=3e-3)
    assert list(hist.columns) == ["step", "loss"]
    probs = zeroshot.predict_attributes(model, x)
    assert probs.shape == (64, 3) and probs.min() >= 0 and probs.max() <= 1
    np.testing.assert_array_equal((probs > 0.5).astype(int), table[y])


def test_fit_attribute_model_rejects_bad_input():
    model = zeroshot.build_attribute_model(3)
    x = np.zeros((4, 28, 28, 1), np.float32)
    y = np.array([0, 1, 0, 1])
    table = np.array([[1, 0, 1], [0, 1, 1]])
    with pytest.raises(ValueError, match="outputs"):
        zeroshot.fit_attribute_model(model, x, y, np.eye(2, dtype=int))
    with pytest.raises(ValueError, match="class labels"):
        zeroshot.fit_attribute_model(model, x, y + 1, table)
    with pytest.raises(ValueError, match="steps"):
        zeroshot.fit_attribute_model(model, x, y, table, steps=0)
    with pytest.raises(ValueError, match="num_attributes"):
        zeroshot.build_attribute_model(1)
