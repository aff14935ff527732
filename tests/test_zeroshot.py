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


# -- chapter 05, "From words to pictures": class knowledge from text ---------------------------

def test_digit_descriptions_cover_every_digit_without_naming_it():
    assert sorted(zeroshot.DIGIT_DESCRIPTIONS) == list(range(10))
    assert len(zeroshot.DIGIT_NAMES) == 10
    for digit, texts in zeroshot.DIGIT_DESCRIPTIONS.items():
        assert len(texts) >= 3 and all(isinstance(t, str) and t for t in texts)
        words = set(" ".join(texts).lower().replace(".", " ").replace(",", " ").split())
        names = set(zeroshot.DIGIT_NAMES) - {"one", "two"}  # "two loops" counts, names nothing
        assert not names & words and not set("0123456789") & set("".join(texts)), digit


def _fake_embed(calls):
    def embed(texts):
        calls.append(list(texts))
        # a 3-D "embedding" that depends on the text only: its length, vowels and spaces
        return np.array([[len(t), sum(c in "aeiou" for c in t), t.count(" ") + 1.0]
                         for t in texts])
    return embed


def test_text_embeddings_embed_every_text_once_in_class_order():
    calls = []
    descriptions = {1: ["b b", "bbb"], 0: "a single text"}
    z, classes = zeroshot.text_embeddings(descriptions, _fake_embed(calls))
    assert calls == [["a single text", "b b", "bbb"]]  # one call, class order
    np.testing.assert_array_equal(classes, [0, 1, 1])
    assert z.shape == (3, 3) and z.dtype == np.float32
    np.testing.assert_allclose(np.linalg.norm(z, axis=1), 1.0, rtol=1e-6)


@pytest.mark.parametrize("descriptions, embed, name", [
    ({}, None, "descriptions"),
    ({1: ["x"], 2: ["y"]}, None, "descriptions"),          # keys must be 0..n-1
    ({0: ["x"], 1: []}, None, "descriptions"),
    ({0: ["x"], 1: [""]}, None, "descriptions"),
    ({0: ["x"], 1: ["y"]}, "not callable", "embed"),
    ({0: ["x"], 1: ["y"]}, lambda t: np.zeros((1, 3)), "embed"),  # wrong row count
])
def test_text_embeddings_reject_bad_input(descriptions, embed, name):
    embed = _fake_embed([]) if embed is None else embed
    with pytest.raises(ValueError, match=name):
        zeroshot.text_embeddings(descriptions, embed)


def test_class_embeddings_are_unit_means_per_class():
    z = np.array([[1.0, 0.0], [0.0, 1.0], [3.0, 4.0]], np.float32)
    out = zeroshot.class_embeddings(z, [0, 0, 2])
    assert out.shape == (3, 2)
    np.testing.assert_allclose(out[0], [2 ** -0.5, 2 ** -0.5], rtol=1e-6)
    np.testing.assert_allclose(out[1], [0.0, 0.0])      # class 1 has no text
    np.testing.assert_allclose(out[2], [0.6, 0.8], rtol=1e-6)
    with pytest.raises(ValueError, match="classes"):
        zeroshot.class_embeddings(z, [0, 1])


def _world(seed=0, n_classes=12, dim=5, per_class=60, noise=0.05):
    """Classes with random unit text embeddings; an image's features are a fixed linear
    function of its class's embedding plus noise, so a perfect linear map exists."""
    rng = np.random.default_rng(seed)
    text = rng.normal(size=(n_classes, dim))
    text /= np.linalg.norm(text, axis=1, keepdims=True)
    mix = rng.normal(size=(dim, 8))
    y = np.repeat(np.arange(n_classes), per_class)
    feats = text[y] @ mix + noise * rng.normal(size=(len(y), 8))
    return text.astype(np.float32), feats.astype(np.float32), y


def test_a_perfect_image_to_text_map_recovers_the_labels():
    text, _, y = _world()
    # features that *are* the text embeddings, and the identity map
    identity = zeroshot.TextMap(weights=np.vstack([np.eye(5), np.zeros((1, 5))]),
                                mean=np.zeros(5), scale=np.ones(5), objective="devise")
    scores = zeroshot.text_map_scores(identity, text[y], text, list(range(12)))
    np.testing.assert_array_equal(scores.argmax(axis=1), y)
    np.testing.assert_allclose(scores.max(axis=1), 1.0, rtol=1e-5)


@pytest.mark.parametrize("objective", ["devise", "contrastive"])
def test_a_map_learned_on_seen_classes_names_unseen_ones(objective):
    text, feats, y = _world()
    unseen = [9, 10, 11]
    seen = ~np.isin(y, unseen)
    tm = zeroshot.fit_text_map(feats[seen], y[seen], text, np.arange(12),
                               objective=objective, steps=300, seed=0)
    assert isinstance(tm, zeroshot.TextMap) and tm.objective == objective
    pred = np.array(unseen)[zeroshot.text_map_scores(tm, feats[~seen], text, unseen).argmax(1)]
    assert np.mean(pred == y[~seen]) > 0.9
    # the same seed gives the same map
    again = zeroshot.fit_text_map(feats[seen], y[seen], text, np.arange(12),
                                  objective=objective, steps=300, seed=0)
    np.testing.assert_array_equal(tm.weights, again.weights)


def test_a_shuffled_description_table_drops_to_chance():
    text, feats, y = _world()
    unseen = [9, 10, 11]
    seen = ~np.isin(y, unseen)
    accs = []
    for s in range(6):
        rng = np.random.default_rng(s)
        perm = rng.permutation(12)
        while np.any(perm == np.arange(12)):  # every class gets another class's text
            perm = rng.permutation(12)
        shuffled = text[perm]
        tm = zeroshot.fit_text_map(feats[seen], y[seen], shuffled, np.arange(12),
                                   steps=300, seed=s)
        scores = zeroshot.text_map_scores(tm, feats[~seen], shuffled, unseen)
        accs.append(np.mean(np.array(unseen)[scores.argmax(1)] == y[~seen]))
    assert abs(np.mean(accs) - 1 / 3) < 0.2, accs


@pytest.mark.parametrize("kwargs, name", [
    ({"objective": "ridge"}, "objective"),
    ({"steps": 0}, "steps"),
    ({"lr": 0.0}, "lr"),
    ({"l2": -1.0}, "l2"),
    ({"temperature": 0}, "temperature"),
    ({"seed": -1}, "seed"),
    ({"classes": np.array([0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 10])}, "no text"),
    ({"classes": np.arange(11)}, "classes"),
    ({"y": np.zeros(720, np.int64)}, "two classes"),
    ({"features": np.zeros((3, 8), np.float32)}, "features"),
])
def test_fit_text_map_rejects_bad_input(kwargs, name):
    text, feats, y = _world()
    args = {"features": feats, "y": y, "embeddings": text, "classes": np.arange(12)}
    args.update(kwargs)
    with pytest.raises(ValueError, match=name):
        zeroshot.fit_text_map(**args)


def test_text_map_scores_reject_bad_input():
    text, feats, y = _world()
    tm = zeroshot.fit_text_map(feats, y, text, np.arange(12), steps=5)
    with pytest.raises(ValueError, match="text_map"):
        zeroshot.text_map_scores("map", feats, text, [0, 1])
    with pytest.raises(ValueError, match="class_emb"):
        zeroshot.text_map_scores(tm, feats, text[:, :3], [0, 1])
    with pytest.raises(ValueError, match="classes"):
        zeroshot.text_map_scores(tm, feats, text, [0, 12])
    with pytest.raises(ValueError, match="features"):
        zeroshot.text_map_scores(tm, feats[:, :3], text, [0, 1])


# --- the stopping rule and the class-split choice of steps (issue 13) -----------------------

def _rule(every=10, max_steps=400, patience=3):
    from tlutils import engine

    return engine.Stopping(every=every, max_steps=max_steps, patience=patience)


@pytest.mark.parametrize("objective", ["devise", "contrastive"])
def test_training_continued_in_rounds_is_one_longer_run(objective):
    text, feats, y = _world()
    seen = y < 9
    args = (feats[seen], y[seen], text, np.arange(12))
    trainer = zeroshot._MapTrainer(feats[seen], y[seen], text.astype(np.float64),
                                   np.arange(12), objective=objective, batch_size=128,
                                   lr=0.01, l2=1e-4, margin=0.1, temperature=0.1, seed=4)
    for n in (7, 1, 13):
        trainer.advance(n)
    once = zeroshot.fit_text_map(*args, objective=objective, steps=21, seed=4)
    np.testing.assert_array_equal(trainer.text_map().weights, once.weights)
    assert trainer.text_map().steps == once.steps == 21


def test_fixed_steps_is_the_default_and_records_its_steps():
    text, feats, y = _world()
    default = zeroshot.fit_text_map(feats, y, text, np.arange(12))
    explicit = zeroshot.fit_text_map(feats, y, text, np.arange(12), steps=300)
    np.testing.assert_array_equal(default.weights, explicit.weights)
    assert default.steps == 300 and default.curve == ()


@pytest.mark.parametrize("objective", ["devise", "contrastive"])
def test_a_stopping_rule_keeps_the_best_round_which_equals_one_run(objective):
    text, feats, y = _world(noise=0.3)
    train, val = y < 7, (y >= 7) & (y < 10)  # seen 0-6, pseudo-unseen 7-9; 10, 11 untouched
    rule = _rule(every=5, max_steps=400, patience=3)
    tm = zeroshot.fit_text_map(feats[train], y[train], text, np.arange(12), objective=objective,
                               stopping=rule, validation=(feats[val], y[val]), seed=1)
    steps = [s for s, _ in tm.curve]
    accs = [a for _, a in tm.curve]
    assert steps == list(range(5, 5 * len(steps) + 1, 5))
    best = int(np.argmax(accs))  # the earliest best round
    assert tm.steps == steps[best]
    # the rule stopped `patience` rounds after the best one (the cap is not reached)
    assert len(steps) == best + 1 + rule.patience and steps[-1] < rule.max_steps
    assert all(a <= accs[best] for a in accs[best + 1:])
    # the best round's map is exactly the map of one run of that many steps
    again = zeroshot.fit_text_map(feats[train], y[train], text, np.arange(12),
                                  objective=objective, steps=tm.steps, seed=1)
    np.testing.assert_array_equal(tm.weights, again.weights)
    val_classes = [7, 8, 9]
    pred = np.array(val_classes)[zeroshot.text_map_scores(tm, feats[val], text,
                                                          val_classes).argmax(1)]
    assert np.mean(pred == y[val]) == pytest.approx(accs[best])


def test_the_stopping_rule_stops_at_the_cap():
    text, feats, y = _world(noise=0.3)
    train, val = y < 7, (y >= 7) & (y < 10)
    tm = zeroshot.fit_text_map(feats[train], y[train], text, np.arange(12),
                               stopping=_rule(every=5, max_steps=10, patience=50),
                               validation=(feats[val], y[val]))
    assert [s for s, _ in tm.curve] == [5, 10]


def test_choose_text_map_steps_uses_only_the_seen_classes():
    text, feats, y = _world(noise=0.3)
    unseen = [9, 10, 11]
    seen = ~np.isin(y, unseen)
    folds = [[0, 1, 2], [3, 4], [5, 6, 7, 8]]
    rule = _rule(every=10, max_steps=1000, patience=3)
    choice = zeroshot.choose_text_map_steps(feats[seen], y[seen], text, np.arange(12),
                                            held_out=folds, stopping=rule,
                                            lrs=(0.003, 0.01, 0.03), seed=2)
    assert isinstance(choice, zeroshot.TextMapChoice)
    assert len(choice.grid) == 3 and choice.lr in (0.003, 0.01, 0.03)
    assert choice.val_accuracy == max(row[2] for row in choice.grid)
    assert choice.steps % 10 == 0 and 0 < choice.steps <= choice.stopped < rule.max_steps
    assert not choice.capped and choice.val_accuracy > 0.6
    # the unseen classes' texts and images play no part in the choice
    other = text.copy()
    other[unseen] = np.random.default_rng(9).normal(size=(3, text.shape[1]))
    same = zeroshot.choose_text_map_steps(feats[seen], y[seen], other, np.arange(12),
                                          held_out=folds, stopping=rule,
                                          lrs=(0.003, 0.01, 0.03), seed=2)
    assert same == choice
    # one fold may be given as a flat list; one rate is the default lr
    one = zeroshot.choose_text_map_steps(feats[seen], y[seen], text, np.arange(12),
                                         held_out=[3, 4], stopping=rule, lr=0.02)
    assert one.lr == 0.02 and len(one.grid) == 1
    tm = zeroshot.fit_text_map(feats[seen], y[seen], text, np.arange(12), steps=choice.steps,
                               lr=choice.lr, seed=2)
    pred = np.array(unseen)[zeroshot.text_map_scores(tm, feats[~seen], text, unseen).argmax(1)]
    assert np.mean(pred == y[~seen]) > 0.6


def test_a_capped_choice_says_so():
    text, feats, y = _world(noise=0.3)
    seen = y < 9
    choice = zeroshot.choose_text_map_steps(feats[seen], y[seen], text, np.arange(12),
                                            held_out=[[0, 1], [2, 3]],
                                            stopping=_rule(every=5, max_steps=10, patience=5))
    assert choice.capped and choice.stopped == 10


@pytest.mark.parametrize("kwargs, name", [
    ({"stopping": "early"}, "stopping"),
    ({"stopping": "RULE"}, "steps"),
    ({"stopping": "RULE", "validation": None, "steps": None}, "validation"),
    ({"validation": "VAL", "steps": None}, "stopping"),
    ({"stopping": "RULE", "steps": None, "validation": "OVERLAP"}, "validation"),
    ({"stopping": "RULE", "steps": None, "validation": "ONE_CLASS"}, "validation"),
    ({"stopping": "RULE", "steps": None, "validation": "NARROW"}, "validation"),
])
def test_fit_text_map_rejects_a_bad_stopping_setup(kwargs, name):
    text, feats, y = _world()
    train, val = y < 7, y >= 7
    values = {"RULE": _rule(), "VAL": (feats[val], y[val]),
              "OVERLAP": (feats[y >= 5], y[y >= 5]), "ONE_CLASS": (feats[y == 8], y[y == 8]),
              "NARROW": (feats[val][:, :3], y[val])}
    args = {"features": feats[train], "y": y[train], "embeddings": text,
            "classes": np.arange(12), "steps": 50}
    args.update({k: values.get(v, v) if isinstance(v, str) else v for k, v in kwargs.items()})
    with pytest.raises(ValueError, match=name):
        zeroshot.fit_text_map(**args)


@pytest.mark.parametrize("kwargs, name", [
    ({"held_out": []}, "held_out"),
    ({"held_out": "01"}, "held_out"),
    ({"held_out": [[0]]}, "held_out"),
    ({"held_out": [[0, 0]]}, "held_out"),
    ({"held_out": [[0, 10]]}, "held_out"),  # 10 is not a seen class
    ({"held_out": [list(range(8))]}, "held_out"),  # leaves one class to train on
    ({"stopping": 100}, "stopping"),
    ({"lrs": []}, "lrs"),
    ({"lrs": [0.01, -1.0]}, "lrs"),
    ({"objective": "ridge"}, "objective"),
    ({"seed": -1}, "seed"),
])
def test_choose_text_map_steps_rejects_bad_input(kwargs, name):
    text, feats, y = _world()
    seen = y < 9
    args = {"features": feats[seen], "y": y[seen], "embeddings": text,
            "classes": np.arange(12), "held_out": [[0, 1], [2, 3]], "stopping": _rule()}
    args.update(kwargs)
    with pytest.raises(ValueError, match=name):
        zeroshot.choose_text_map_steps(**args)
