"""Benchmark: ``jit_compile`` and ``steps_per_execution`` for the book's training runs (issue 12).

The book's comparisons (``tlutils.engine.run``, ``tlutils.transfer.compare``) train the source
CNN of the model zoo for 100 steps of batch 32 on 28x28 digits (scikit-learn's digits, 10
labels per class), each learner compiled once by ``tlutils.train.compile_model`` and rewound
for every run (``tlutils.engine.Trainee``). This script trains three such learners:

* ``scratch``: the source CNN's architecture, freshly initialised, every layer trainable;
* ``fine_tune``: the source CNN's weights, every layer trainable;
* ``feature_extraction``: a head on frozen features (every layer up to ``dense`` frozen);

each compiled in several ways: the book's own ``compile_model`` (Keras's default
``jit_compile="auto"``, ``steps_per_execution=1``) and with ``jit_compile`` in
{False, True} x ``steps_per_execution`` in ``--spe`` (default 1, 10, 50). It prints

* what each compile's ``jit_compile`` resolves to (``model.jit_compile`` after compiling);
* the wall and CPU time of 100 steps (median over ``--reps`` repetitions after one warm-up
  run; the settings run interleaved, in a rotated order each repetition, so a burst of load
  from other processes hits every setting alike), and the median of the per-repetition ratios
  to the book's default;
* whether the trained weights are bit-identical to the default's (every weight of the model
  after training from the same start on the same batches), and whether every repetition of a
  setting gave the same weights (determinism).

The main run uses the book's determinism settings (``tlutils.config.setup()``: TensorFlow's
op determinism and tf.data's debug mode). Keras 3 resolves ``jit_compile="auto"`` to False on a
machine without an accelerator, and turns an explicit ``jit_compile=True`` off (with a warning
that ``setup(quiet=True)`` silences) whenever op determinism is on, so under the book's
settings XLA never runs; the ``XLA`` column shows what each compile resolved to.
``--xla-check`` (default on) also runs a child process without op determinism
(``steps_per_execution=1`` only), where Keras does honour ``jit_compile=True`` on a CPU, to
show what XLA would change if determinism were given up.

Run it like ``make test`` runs TensorFlow (the script sets these if they are unset)::

    TF_NUM_INTRAOP_THREADS=1 TF_NUM_INTEROP_THREADS=2 python benchmarks/bench_steps.py
    python benchmarks/bench_steps.py --reps 9 --spe 1 5 20 100
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

os.environ.setdefault("TF_NUM_INTRAOP_THREADS", "1")
os.environ.setdefault("TF_NUM_INTEROP_THREADS", "2")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
os.environ.setdefault("TF_ENABLE_ONEDNN_OPTS", "0")
ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
os.environ.setdefault("TLUTILS_DATA_DIR", str(ROOT.parent / "shared" / "data" / "mnist"))

import tlutils  # noqa: E402,F401  (first: quiet TensorFlow)

VARIANTS = ("scratch", "fine_tune", "feature_extraction")
DEFAULT = "book default"


def _settings(spe: list[int]) -> list[tuple[str, object, int]]:
    """(label, jit_compile, steps_per_execution); ``None`` means the book's compile_model."""
    out: list[tuple[str, object, int]] = [(DEFAULT, None, 1)]
    for jit in (False, True):
        for n in spe:
            out.append((f"jit={jit} spe={n}", jit, n))
    return out


def _digest(arrays) -> str:
    h = hashlib.sha256()
    for a in arrays:
        h.update(a.tobytes())
    return h.hexdigest()[:16]


def measure(args: argparse.Namespace, deterministic: bool) -> dict:
    import keras
    import numpy as np
    import tensorflow as tf

    from tlutils import config, data, engine, train, transfer, zoo

    config.setup(0, deterministic=deterministic)
    if not deterministic:
        tf.data.experimental.enable_debug_mode()  # the same input pipeline as the book's
    source, entry = zoo.source_model()
    digits = data.load_digits_28()
    xs, ys = data.few_shot(digits.x, digits.y, args.budget, seed=0)

    def compiler(jit, spe):
        def compile_(model):
            if jit is None:  # exactly what the book does
                train.compile_model(model)
                return
            model.compile(optimizer=train.make_optimizer("adam", 1e-3),
                          loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
                          metrics=["accuracy"], jit_compile=jit, steps_per_execution=spe)
        return compile_

    settings = _settings(args.spe)
    runs = []  # (variant, label, trainee)
    resolved, first_s = {}, {}
    for variant in args.variants:
        for label, jit, spe in settings:
            trainee = engine.Trainee(
                lambda seed, v=variant: transfer.make_target(source, v, num_classes=10,
                                                             keep_head=True, seed=seed),
                (0,), compile=compiler(jit, spe))
            resolved[variant, label] = bool(trainee.model.jit_compile)
            runs.append((variant, label, trainee))

    def one(trainee) -> tuple[float, float, list]:
        model = trainee.rewind(0)
        w0, c0 = time.perf_counter(), time.process_time()
        engine.train_steps(model, xs, ys, steps=args.steps, batch_size=args.batch_size, seed=0)
        wall, cpu = time.perf_counter() - w0, time.process_time() - c0
        return wall, cpu, [w.numpy() for w in model.weights]

    # Warm-up (traces every train function) and the reference weights.
    weights, digests = {}, {}
    for variant, label, trainee in runs:
        wall, _, w = one(trainee)
        first_s[variant, label] = wall
        weights[variant, label] = w
        digests[variant, label] = {_digest(w)}
    walls = {(v, lab): [] for v, lab, _ in runs}
    cpus = {(v, lab): [] for v, lab, _ in runs}
    ratios = {(v, lab): [] for v, lab, _ in runs}
    cpu_ratios = {(v, lab): [] for v, lab, _ in runs}
    for rep in range(args.reps):
        for variant in args.variants:
            group = [(lab, t) for v, lab, t in runs if v == variant]
            k = rep % len(group)
            order = group[k:] + group[:k]
            if rep % 2:
                order = order[::-1]
            this = {}
            for label, trainee in order:
                wall, cpu, w = one(trainee)
                walls[variant, label].append(wall)
                cpus[variant, label].append(cpu)
                digests[variant, label].add(_digest(w))
                this[label] = wall, cpu
            for label, (wall, cpu) in this.items():
                ratios[variant, label].append(wall / this[DEFAULT][0])
                cpu_ratios[variant, label].append(cpu / this[DEFAULT][1])
    rows = []
    for variant, label, _ in runs:
        ref = weights[variant, DEFAULT]
        same = all(np.array_equal(a, b) for a, b in zip(weights[variant, label], ref))
        rows.append({
            "variant": variant, "setting": label,
            "jit_resolved": resolved[variant, label],
            "first_s": first_s[variant, label],
            "wall_s": statistics.median(walls[variant, label]),
            "cpu_s": statistics.median(cpus[variant, label]),
            "ratio": statistics.median(ratios[variant, label]),
            "cpu_ratio": statistics.median(cpu_ratios[variant, label]),
            "identical": same,
            "repeatable": len(digests[variant, label]) == 1,
            "digest": sorted(digests[variant, label])[0],
        })
    return {"deterministic": deterministic, "source": entry.key, "rows": rows,
            "keras": keras.__version__, "tf": tf.__version__,
            "devices": [d.device_type for d in tf.config.list_physical_devices()]}


def steps_taken(spe: list[int], steps: int) -> dict[int, int]:
    """How many gradient steps one ``fit(steps_per_epoch=steps)`` takes at each
    ``steps_per_execution``: Keras rounds the epoch up to whole executions, so a value that does
    not divide the step count silently trains longer (a tiny model on the book's pipeline)."""
    import keras
    import numpy as np

    from tlutils import train

    x = np.random.default_rng(0).normal(size=(64, 4)).astype(np.float32)
    y = (x[:, 0] > 0).astype(np.int64)
    out = {}
    for n in spe:
        keras.utils.set_random_seed(0)
        model = keras.Sequential([keras.Input((4,)), keras.layers.Dense(2)])
        model.compile(optimizer="adam", steps_per_execution=n,
                      loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True))
        model.fit(train.batches(x, y, batch_size=8, seed=0), epochs=1, steps_per_epoch=steps,
                  verbose=0)
        out[n] = int(model.optimizer.iterations.numpy())
    return out


def _print(result: dict, steps: int, reference: dict | None = None) -> None:
    mode = ("the book's determinism settings (op determinism + tf.data debug mode)"
            if result["deterministic"] else "WITHOUT op determinism (tf.data debug mode kept)")
    print(f"\n{mode}; TF {result['tf']}, Keras {result['keras']}, devices "
          f"{result['devices']}, threads intra {os.environ['TF_NUM_INTRAOP_THREADS']} / inter "
          f"{os.environ['TF_NUM_INTEROP_THREADS']}, source model {result['source']}")
    head = (f"{'variant':<19} {'setting':<17} {'XLA':<5} {'first s':>8} "
            f"{'wall s/' + str(steps):>11} {'ratio':>6} {'cpu s':>7} {'ratio':>6}  identical  "
            "repeatable")
    if reference is not None:
        head += "  = deterministic default"
    print(head)
    print("-" * len(head))
    for r in result["rows"]:
        line = (f"{r['variant']:<19} {r['setting']:<17} {str(r['jit_resolved']):<5} "
                f"{r['first_s']:>8.2f} {r['wall_s']:>11.3f} {r['ratio']:>6.2f} "
                f"{r['cpu_s']:>7.3f} {r['cpu_ratio']:>6.2f}  "
                f"{'yes' if r['identical'] else 'NO':<9}  "
                f"{'yes' if r['repeatable'] else 'NO'}")
        if reference is not None:
            ref = next(x for x in reference["rows"]
                       if x["variant"] == r["variant"] and x["setting"] == DEFAULT)
            line += f"  {'yes' if r['digest'] == ref['digest'] else 'NO'}"
        print(line)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--reps", type=int, default=5, help="timed repetitions per setting")
    parser.add_argument("--steps", type=int, default=100)
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--budget", type=int, default=10, help="labels per class")
    parser.add_argument("--spe", type=int, nargs="+", default=[1, 10, 50],
                        help="steps_per_execution values to try")
    parser.add_argument("--variants", nargs="+", default=list(VARIANTS), choices=VARIANTS)
    parser.add_argument("--xla-check", action=argparse.BooleanOptionalAction, default=True,
                        help="also run without op determinism, where XLA is honoured")
    parser.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()

    if args.child:  # the run without op determinism, in a fresh process
        print("RESULT " + json.dumps(measure(args, deterministic=False)))
        return 0
    result = measure(args, deterministic=True)
    _print(result, args.steps)
    odd = args.steps + 5
    taken = steps_taken(sorted(set([1, *args.spe])), odd)
    print(f"\nfit(steps_per_epoch={odd}) takes " + ", ".join(
        f"{n} steps at steps_per_execution={k}" for k, n in taken.items())
        + ": use only values that divide the step count.")
    if args.xla_check:
        cmd = [sys.executable, __file__, "--child", "--reps", str(args.reps), "--steps",
               str(args.steps), "--batch-size", str(args.batch_size), "--budget",
               str(args.budget), "--spe", "1", "--variants", *args.variants]
        proc = subprocess.run(cmd, capture_output=True, text=True)
        lines = [x for x in proc.stdout.splitlines() if x.startswith("RESULT ")]
        if proc.returncode or not lines:
            print(proc.stdout[-3000:], proc.stderr[-3000:], sep="\n")
            return 1
        _print(json.loads(lines[-1][len("RESULT "):]), args.steps, reference=result)
    print("\nXLA: what model.jit_compile resolved to after compiling. first s: the first run "
          "(tracing included). ratio: median over the repetitions of (this setting's time / the "
          "book default's in the same repetition), for wall and process CPU time. identical: "
          "every trained weight bit-equal to the book default's in the same mode. repeatable: "
          "every repetition gave the same weights. 'book default' and 'jit=False spe=1' are the "
          "same computation, so their difference shows the noise of the measurement.")
    return 0


if __name__ == "__main__":
    sys.exit(main())
