import json
import os
import subprocess
import sys
import textwrap

import numpy as np
import pytest

from tlutils import distribute, train


def _labels(ds, n):
    it = iter(ds)
    return [next(it)[1].numpy().tolist() for _ in range(n)]


def _tiny():
    rng = np.random.default_rng(0)
    x = rng.normal(size=(48, 6)).astype(np.float32)
    y = (x[:, 0] > 0).astype(np.int64)
    return x, y


def _dense(seed=0):
    import keras

    keras.utils.set_random_seed(seed)
    return keras.Sequential([keras.Input((6,)), keras.layers.Dense(8, activation="relu"),
                             keras.layers.Dense(2)])


def test_the_training_pipeline_gives_every_iterator_the_same_batches():
    x = np.arange(16, dtype=np.float32)[:, None]
    y = np.arange(16)
    stable = distribute.stable_pipeline(x, y, batch_size=4, seed=0)
    first = _labels(stable, 8)  # two passes: the reshuffle between passes is kept
    assert _labels(stable, 8) == first  # a second iterator: same batches
    assert _labels(train.batches(x, y, batch_size=4, seed=0), 8) == first
    assert first[:4] != first[4:8]
    assert sorted(sum(first[:4], [])) == list(range(16))
    with pytest.raises(ValueError, match="batch_size"):
        distribute.stable_pipeline(x, y, batch_size=0, seed=0)
    with pytest.raises(ValueError, match="seed"):
        distribute.stable_pipeline(x, y, batch_size=4, seed=-1)


def test_fit_without_a_strategy_is_train_fit():
    x, y = _tiny()
    a, b = _dense(), _dense()
    ha = train.fit(a, x, y, epochs=2, batch_size=8, seed=0)
    hb = distribute.fit(b, x, y, epochs=2, batch_size=8, seed=0)
    for wa, wb in zip(a.get_weights(), b.get_weights()):
        np.testing.assert_array_equal(wa, wb)
    assert ha.equals(hb)


def test_run_enters_the_scope_and_compare_accepts_a_strategy():
    import tensorflow as tf

    default = tf.distribute.get_strategy()
    assert distribute.run(tf.distribute.get_strategy, strategy=default) is default
    with pytest.raises(ValueError, match="fn"):
        distribute.run(42)
    with pytest.raises(ValueError, match="strategy"):
        distribute.run(print, strategy="mirrored")


def test_strategy_helpers():
    info = distribute.describe()
    assert info["replicas"] == 1
    assert distribute.make_strategy("default") is not None
    assert distribute.global_batch_size(16) == 16
    with pytest.raises(ValueError, match="kind"):
        distribute.make_strategy("gpu_cluster")
    with pytest.raises(ValueError, match="devices"):
        distribute.make_strategy("mirrored", devices="/cpu:0")
    with pytest.raises(ValueError, match="per_replica"):
        distribute.global_batch_size(0)
    with pytest.raises(ValueError, match="strategy"):
        distribute.describe("mirrored")


def test_logical_cpus_after_start_up_explains_itself():
    import tensorflow as tf

    tf.config.list_logical_devices()  # TensorFlow is now initialised
    with pytest.raises(ValueError, match="n must"):
        distribute.logical_cpus(0)
    with pytest.raises(RuntimeError, match="right after `import tlutils`"):
        distribute.logical_cpus(len(tf.config.list_logical_devices("CPU")) + 2)


SCRIPT = textwrap.dedent("""
    import json
    import tlutils
    from tlutils import distribute, train
    names = distribute.logical_cpus(2)       # before TensorFlow initialises its devices
    assert distribute.logical_cpus(2) == names  # idempotent
    import keras, numpy as np
    tlutils.setup(0)
    rng = np.random.default_rng(0)
    x = rng.normal(size=(96, 6)).astype(np.float32)
    y = (x[:, 0] + x[:, 1] > 0).astype(np.int64)

    def build():
        keras.utils.set_random_seed(0)
        return keras.Sequential([keras.Input((6,)), keras.layers.Dense(16, activation="relu"),
                                 keras.layers.Dense(2)])

    single = build()
    h1 = distribute.fit(single, x, y, epochs=3, batch_size=16, seed=0, optimizer="sgd", lr=0.1)
    strategy = distribute.make_strategy("auto")
    with strategy.scope():
        mirrored = build()
    h2 = distribute.fit(mirrored, x, y, epochs=3, batch_size=16, seed=0, optimizer="sgd",
                        lr=0.1, strategy=strategy)
    diff = max(float(np.abs(a - b).max())
               for a, b in zip(single.get_weights(), mirrored.get_weights()))
    moved = max(float(np.abs(a - b).max())
                for a, b in zip(build().get_weights(), mirrored.get_weights()))
    print(json.dumps({"names": names, "info": distribute.describe(strategy), "diff": diff,
                      "moved": moved, "loss": [float(h1["loss"].iloc[-1]),
                                               float(h2["loss"].iloc[-1])]}))
""")


def test_two_logical_cpus_mirrored_matches_single_device(tmp_path):
    """Logical devices must be configured before TensorFlow initialises: a fresh process."""
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2", TF_ENABLE_ONEDNN_OPTS="0")
    proc = subprocess.run([sys.executable, "-c", SCRIPT], capture_output=True, text=True,
                          env=env, timeout=600, cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr[-3000:]
    out = json.loads(proc.stdout.strip().splitlines()[-1])
    assert len(out["names"]) == 2
    assert out["info"]["strategy"] == "MirroredStrategy" and out["info"]["replicas"] == 2
    assert out["moved"] > 1e-2  # training did something ...
    assert out["diff"] < 1e-5  # ... and the same thing on one device and on two replicas
    assert out["loss"][0] == pytest.approx(out["loss"][1], abs=1e-5)
