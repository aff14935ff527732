"""A reader's own ``model.fit(x, y)`` on NumPy arrays after ``tlutils.setup`` leaves stderr clean.

Under TensorFlow's deterministic ops, tf.data rewrites Keras's NumPy pipeline: when ``len(x)``
is not a multiple of the batch size, the flat_map that cuts the last partial batch holds a
``TensorDataset`` (marked stateful), so the rewrite serialises every asynchronous node and turns
the ``ParallelMapDatasetV2`` into a ``MapDataset`` while keeping its
``use_unbounded_threadpool`` attribute. C++ then logs, once per process,
``E0000 ... NodeDef mentions attribute use_unbounded_threadpool ...``. ``tlutils.setup`` turns
on tf.data's debug mode, so there is no parallel map left to rewrite.

Each check runs in a fresh interpreter: the line is logged once per process, and debug mode
cannot be turned off again.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
import textwrap

BAD_LINE = "use_unbounded_threadpool"
# A C++ log line at ERROR or FATAL level: "E0000 00:00:1796... node_def_util.cc:682] ...".
CPP_ERROR = re.compile(r"^[EF]\d{4} ", re.MULTILINE)

SCRIPT = textwrap.dedent(
    """
    import hashlib
    import sys

    import numpy as np

    import tlutils

    MODE = sys.argv[1]
    if MODE == "setup":
        tlutils.setup(0)
    else:  # the control: deterministic ops alone, as before the fix
        tlutils.setup(0, deterministic=False)
        import tensorflow as tf
        tf.config.experimental.enable_op_determinism()

    import keras
    import tensorflow as tf


    def train() -> str:
        keras.utils.set_random_seed(0)
        rng = np.random.default_rng(0)
        x = rng.normal(size=(50, 6)).astype(np.float32)  # 50 = 3 * 16 + 2: a partial batch
        y = (x[:, 0] + x[:, 1] > 0).astype(np.int64)
        model = keras.Sequential([keras.Input((6,)), keras.layers.Dense(8, activation="relu"),
                                  keras.layers.Dense(2)])
        model.compile(optimizer=keras.optimizers.Adam(0.01),
                      loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
                      metrics=["accuracy"])
        model.fit(x, y, epochs=2, batch_size=16, verbose=0)  # shuffled, as a reader's would be
        model.predict(x, verbose=0)
        model.evaluate(x, y, verbose=0)
        return hashlib.sha256(b"".join(w.tobytes() for w in model.get_weights())).hexdigest()


    first = train()
    if MODE == "setup":
        tlutils.setup(0)
    second = train()
    print("weights", first, second)
    # C++ still reaches stderr: the fix hides nothing.
    @tf.function
    def say():
        tf.print("C++ still writes to stderr", output_stream=sys.stderr)


    say()
    """
)


def _run(mode: str) -> subprocess.CompletedProcess:
    env = dict(os.environ)
    env["TF_CPP_MIN_LOG_LEVEL"] = "2"  # what tlutils sets: C++ errors are shown
    env.pop("TLUTILS_NO_QUIET_IMPORT", None)
    return subprocess.run([sys.executable, "-c", SCRIPT, mode], capture_output=True, text=True,
                          timeout=300, env=env)


def test_fit_predict_evaluate_on_numpy_leave_stderr_clean_and_are_deterministic():
    proc = _run("setup")
    assert proc.returncode == 0, proc.stderr[-4000:]
    assert BAD_LINE not in proc.stderr, proc.stderr[-4000:]
    assert not CPP_ERROR.search(proc.stderr), proc.stderr[-4000:]
    assert "Traceback" not in proc.stderr, proc.stderr[-4000:]
    assert "C++ still writes to stderr" in proc.stderr  # stderr is not redirected
    (line,) = [ln for ln in proc.stdout.splitlines() if ln.startswith("weights ")]
    _, first, second = line.split()
    assert first == second, "two runs from tlutils.setup(0) gave different weights"


def test_the_control_shows_the_error_line_that_setup_prevents():
    """Deterministic ops without tf.data's debug mode still print the line: the check above
    can fail, and C++ errors are visible at the log level tlutils uses. If a TensorFlow upgrade
    makes this test fail, the debug-mode workaround in ``tlutils.setup`` may be unnecessary."""
    proc = _run("control")
    assert proc.returncode == 0, proc.stderr[-4000:]
    assert BAD_LINE in proc.stderr, proc.stderr[-4000:]
    assert CPP_ERROR.search(proc.stderr)
