import contextlib
import hashlib
import json
import os
import shutil
import subprocess
import sys
import textwrap
import time

import numpy as np
import pytest

from tlutils import io, zoo

TINY = dict(dataset="digits28", n_train=200, epochs=1, batch_size=32)


_SNAPSHOT: dict = {}


@pytest.fixture
def pristine(tmp_path_factory):
    """TINY's entry (trained once per session) and a way to put its files back: tests of what
    the zoo refuses to trust use it as the training, so only real training is timed."""
    if not _SNAPSHOT:
        _, e = zoo.source_model(**TINY)
        keep = tmp_path_factory.mktemp("zoo-snapshot")
        files = [shutil.copy(e.card, keep), shutil.copy(e.path, keep)]
        _SNAPSHOT.update(entry=e, files=files)

    def restore(spec=None, key=None, folder=None):
        for f in _SNAPSHOT["files"]:
            shutil.copy(f, zoo._zoo_dir())

    restore()
    return _SNAPSHOT["entry"], restore


def _after_source_model(**kwargs):
    """Seed, ask the zoo for a model, then draw: what a notebook cell after the call sees."""
    import random

    import keras

    from tlutils import setup

    setup(7)
    model, entry = zoo.source_model(**kwargs)
    layer = keras.layers.Dense(3)  # its initial weights come from Python's generator
    layer.build((None, 2))
    return random.random(), float(np.random.rand()), layer.kernel.numpy(), model, entry


def test_random_state_after_the_call_does_not_depend_on_the_cache():
    # A notebook run with an empty zoo (CI) must print what a run with a full zoo printed.
    zoo.clear()
    trained = _after_source_model(**TINY)
    cached = _after_source_model(**TINY)
    assert trained[0] == cached[0] and trained[1] == cached[1]
    np.testing.assert_array_equal(trained[2], cached[2])
    # ... and it is the same model: trained once, then loaded
    (m1, e1), (m2, e2) = trained[3:], cached[3:]
    assert not e1.from_cache and e2.from_cache
    assert e1.key == e2.key and e1.test_accuracy == e2.test_accuracy
    for a, b in zip(m1.get_weights(), m2.get_weights()):
        np.testing.assert_array_equal(a, b)
    folder = e1.path.parent
    assert not [p for p in folder.iterdir() if p.name.startswith(".")]  # nothing half-written
    card = json.loads(e1.card.read_text())
    assert card["key"] == e1.key and e1.path.name == f"{e1.key}.{card['sha256'][:16]}.weights.h5"
    assert io.sha256_file(e1.path) == card["sha256"]


def test_training_is_reproducible_from_scratch(pristine):
    entry, _ = pristine
    m1, _ = zoo.source_model(**TINY)
    stray = entry.path.parent / f".{entry.key}.abc.tmp.weights.h5"  # a dead writer's leftover
    stray.write_bytes(b"half")
    m2, e2 = zoo.source_model(refresh=True, **TINY)
    assert not e2.from_cache and e2.test_accuracy == entry.test_accuracy
    for a, b in zip(m1.get_weights(), m2.get_weights()):
        np.testing.assert_array_equal(a, b)
    assert len(list(e2.path.parent.glob(f"{e2.key}.*weights.h5"))) == 1  # no older weights
    assert not stray.exists()


def test_corrupt_weights_are_rebuilt_not_trusted(pristine, monkeypatch):
    entry, restore = pristine
    entry.path.write_bytes(b"garbage")
    monkeypatch.setattr(zoo, "_train_in_child", restore)
    with pytest.warns(UserWarning, match="unusable.*checksum"):
        m, e2 = zoo.source_model(**TINY)
    assert not e2.from_cache and e2.test_accuracy == entry.test_accuracy
    assert zoo.source_model(**TINY)[1].from_cache


def test_tampered_card_is_rebuilt(pristine, monkeypatch):
    entry, restore = pristine
    meta = json.loads(entry.card.read_text())
    meta["sha256"] = "0" * 64
    entry.card.write_text(json.dumps(meta))
    monkeypatch.setattr(zoo, "_train_in_child", restore)
    with pytest.warns(UserWarning, match="checksum"):
        _, e2 = zoo.source_model(**TINY)
    assert not e2.from_cache


def test_another_entrys_files_under_this_key_are_not_trusted(pristine, monkeypatch):
    a, _ = pristine
    other = dict(TINY, seed=1)
    b_key = zoo._key(zoo.SourceSpec(**other), zoo.data.fingerprint(*zoo.source_data(
        zoo.SourceSpec(**other))[:2]))
    folder = a.path.parent
    shutil.copy(a.card, folder / f"{b_key}.json")
    shutil.copy(a.path, folder / a.path.name.replace(a.key, b_key))
    trained = []
    monkeypatch.setattr(zoo, "_train_in_child", lambda spec, key, folder: trained.append(key))
    with pytest.warns(UserWarning, match=f"card is for entry '{a.key}', not '{b_key}'"):
        with pytest.raises(RuntimeError, match="was trained but does not load"):
            zoo.source_model(**other)
    assert trained == [b_key]
    # the same with the key edited in: the recipe still gives it away
    meta = json.loads(a.card.read_text())
    meta["key"] = b_key
    (folder / f"{b_key}.json").write_text(json.dumps(meta))
    with pytest.warns(UserWarning, match="another recipe"):
        with pytest.raises(RuntimeError):
            zoo.source_model(**other)
    assert trained == [b_key, b_key]


@pytest.mark.parametrize("field,value,message", [
    ("n_train", None, "card field 'n_train' is missing"),
    ("key", None, "card field 'key' is missing"),
    ("test_accuracy", "high", "card field 'test_accuracy' must be int or float, got str"),
    ("test_accuracy", 7.0, "'test_accuracy' is not in"),
    ("spec", [1, 2], "card field 'spec' must be dict, got list"),
    ("n_test", True, "card field 'n_test' must be int, got bool"),
    ("n_train", 3, "its card counts 3/"),
    ("sha256", "abc", "card field 'sha256' is not a SHA-256"),
    ("zoo_version", 0, "zoo version 0"),
])
def test_card_with_a_missing_or_wrong_field_is_rebuilt(pristine, monkeypatch, field, value,
                                                       message):
    entry, restore = pristine
    meta = json.loads(entry.card.read_text())
    if value is None:
        del meta[field]
    else:
        meta[field] = value
    entry.card.write_text(json.dumps(meta))
    monkeypatch.setattr(zoo, "_train_in_child", restore)
    with pytest.warns(UserWarning, match=message):
        _, e2 = zoo.source_model(**TINY)
    assert not e2.from_cache and e2.test_accuracy == entry.test_accuracy


@pytest.mark.parametrize("text,message", [("[1, 2, 3]", "not a JSON object"),
                                          ("{", "card cannot be read")])
def test_card_that_is_not_an_object_is_rebuilt(pristine, monkeypatch, text, message):
    entry, restore = pristine
    entry.card.write_text(text)
    monkeypatch.setattr(zoo, "_train_in_child", restore)
    with pytest.warns(UserWarning, match=message):
        assert not zoo.source_model(**TINY)[1].from_cache


def test_a_failing_training_process_is_a_clear_error(monkeypatch):
    zoo.clear()
    spec = zoo.SourceSpec(**TINY)
    with monkeypatch.context() as m:
        m.setattr(zoo.sys, "executable", shutil.which("false"))
        with pytest.raises(RuntimeError, match="failed in its training process .exit status 1"):
            zoo.source_model(spec)
    # a training process that sees other data (here: a wrong key) refuses to write anything
    with pytest.raises(RuntimeError, match="computed zoo key .* sees other data"):
        zoo._train_in_child(spec, "0" * 16, zoo._zoo_dir())
    assert zoo.entries() == []


def test_the_key_follows_the_recipe():
    def key(**kwargs):
        spec = zoo.SourceSpec(**{**TINY, **kwargs})
        return zoo._key(spec, zoo.data.fingerprint(*zoo.source_data(spec)[:2]))

    assert key() == key()
    assert len({key(), key(classes=(0, 1, 2, 3, 4)), key(seed=1), key(arch="mlp")}) == 4


RACE = dict(dataset="digits28", arch="mlp", n_train=100, epochs=1)
_RACER = textwrap.dedent(f"""
    import hashlib, json, sys
    import numpy as np
    from tlutils import zoo
    model, entry = zoo.source_model(**{RACE!r})
    digest = hashlib.sha256(b"".join(w.tobytes() for w in model.get_weights())).hexdigest()
    print(json.dumps({{"from_cache": entry.from_cache, "weights": digest}}))
""")


def _held_exclusively(lock) -> bool:
    """True while some process holds the zoo's lock file ``lock`` to train (exclusively)."""
    import fcntl

    try:
        fd = os.open(lock, os.O_RDONLY)
    except FileNotFoundError:
        return False
    try:
        fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
    except BlockingIOError:
        return True
    finally:
        os.close(fd)  # releases the shared lock at once, if it was taken
    return False


def test_two_processes_asking_for_the_same_missing_entry_train_it_once(tmp_path, monkeypatch):
    """Two processes find the same entry missing: one trains it, the other waits for the lock
    and loads what the first one wrote. The second asker is this test's own process (one
    TensorFlow start-up fewer than two racing subprocesses), and it is held back from the
    lock until the other process has taken it to train, so the overlap does not depend on
    start-up timing: it always ends up waiting with the entry missing, and must look again."""
    monkeypatch.setenv("TLUTILS_CACHE_DIR", str(tmp_path))
    spec = zoo.SourceSpec(**RACE)
    key = zoo._key(spec, zoo.data.fingerprint(*zoo.source_data(spec)[:2]))
    lock = tmp_path / "zoo" / f"{key}.lock"
    errors = tmp_path / "racer.err"
    real_locked, waited = zoo._locked, []

    @contextlib.contextmanager
    def locked(folder, key_, *, exclusive):
        if exclusive:  # found it missing: let the other process take the lock to train first
            deadline = time.monotonic() + 300
            while not _held_exclusively(lock):
                if racer.poll() is not None:
                    pytest.fail("the other process ended before it was seen training: "
                                + errors.read_text()[-3000:])
                assert time.monotonic() < deadline, "the other process never started training"
                time.sleep(0.02)
            waited.append(key_)
        with real_locked(folder, key_, exclusive=exclusive):
            yield

    monkeypatch.setattr(zoo, "_locked", locked)
    with open(errors, "w") as err:
        racer = subprocess.Popen([sys.executable, "-c", _RACER], env=dict(os.environ),
                                 stdout=subprocess.PIPE, stderr=err, text=True)
        try:
            model, entry = zoo.source_model(spec)
        finally:
            out, _ = racer.communicate(timeout=300)
    assert racer.returncode == 0, errors.read_text()[-3000:]
    assert waited == [key]  # this process found the entry missing and waited to train it
    theirs = json.loads(out.strip().splitlines()[-1])
    assert theirs["from_cache"] is False and entry.from_cache is True  # trained exactly once
    ours = hashlib.sha256(b"".join(w.tobytes() for w in model.get_weights())).hexdigest()
    assert ours == theirs["weights"]
    folder = tmp_path / "zoo"
    cards = list(folder.glob("*.json"))
    weights = list(folder.glob("*.weights.h5"))
    assert len(cards) == 1 and len(weights) == 1
    assert json.loads(cards[0].read_text())["sha256"] == io.sha256_file(weights[0])
    assert not [p for p in folder.iterdir() if p.name.startswith(".")]


@pytest.mark.parametrize("kwargs,name", [({"dataset": "cifar"}, "dataset"), ({"arch": "vit"}, "arch"),
                                         ({"classes": (1,)}, "classes"), ({"epochs": 0}, "epochs"),
                                         ({"lr": -1.0}, "lr"), ({"lr": float("nan")}, "lr"),
                                         ({"classes": (0, 10)}, "classes"),
                                         ({"n_train": 2.0}, "n_train"), ({"seed": -1}, "seed")])
def test_spec_validation(kwargs, name):
    with pytest.raises(ValueError, match=name):
        zoo.SourceSpec(**kwargs)


def test_source_model_bad_input_names_the_argument():
    with pytest.raises(ValueError, match=r"unknown SourceSpec field\(s\) \['epoch'\]"):
        zoo.source_model(epoch=3)
    with pytest.raises(ValueError, match="refresh"):
        zoo.source_model(refresh="yes", **TINY)
    with pytest.raises(ValueError, match="spec must be a SourceSpec"):
        zoo.source_model({"dataset": "digits28"})
    with pytest.raises(ValueError, match="spec must be a SourceSpec"):
        zoo.source_data("mnist")
    assert zoo.SourceSpec(classes=np.arange(3)).classes == (0, 1, 2)


def test_no_private_keras_or_tensorflow_internals():
    source = open(zoo.__file__).read()
    assert "keras.src" not in source and "tensorflow.python" not in source


def test_entries_written_before_cards_named_their_weights_still_load(pristine):
    entry, _ = pristine
    legacy = entry.path.with_name(f"{entry.key}.weights.h5")
    entry.path.rename(legacy)
    model, again = zoo.source_model(**TINY)
    assert again.from_cache and again.path == legacy


def test_a_read_only_zoo_loads_without_a_lock_file(pristine, monkeypatch):
    import errno

    entry, _ = pristine
    (entry.path.parent / f"{entry.key}.lock").unlink(missing_ok=True)
    real_open = os.open

    def read_only(path, flags, *args):
        if flags & os.O_CREAT:
            raise OSError(errno.EROFS, "Read-only file system", str(path))
        return real_open(path, flags, *args)

    monkeypatch.setattr(zoo.os, "open", read_only)
    assert zoo.source_model(**TINY)[1].from_cache
