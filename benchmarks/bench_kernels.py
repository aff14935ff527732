"""Benchmark: TensorFlow's CPU kernel libraries for the book's training runs (issue 12).

The book's comparisons spend most of their time in gradient steps of the zoo's small CNN
(batch 32, 28x28 digits): a profile of a 4.3-style comparison puts about 80 % of its wall time
inside TensorFlow's step function. ``import tlutils`` sets ``TF_ENABLE_ONEDNN_OPTS=0``, so those
steps run on Eigen's kernels. This script measures what oneDNN's kernels would change:

* the wall and CPU time per training step of the book's CNN (``tlutils.models.build_cnn``,
  Adam, the book's determinism settings ``tlutils.config.setup()``), one TensorFlow thread per
  op as ``make test`` runs it, median over ``--reps`` timed runs of ``--steps`` steps;
* whether a setting is deterministic (the same weights and predictions from two runs in one
  process, and in a second process), by a hash of every weight and of the predictions;
* whether oneDNN's result depends on the instruction set it dispatches to
  (``ONEDNN_MAX_CPU_ISA``: AVX2 versus the machine's best), i.e. whether outputs committed on
  one CPU would reproduce on another.

Each setting runs in a child process (the variables must be set before TensorFlow loads).

Usage: .venv/bin/python benchmarks/bench_kernels.py [--reps N] [--steps N]
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

ROOT = Path(__file__).resolve().parents[1]
SETTINGS = {  # name -> environment for the child
    "Eigen (the book's setting)": {"TF_ENABLE_ONEDNN_OPTS": "0"},
    "oneDNN, best ISA here": {"TF_ENABLE_ONEDNN_OPTS": "1"},
    "oneDNN, ISA capped at AVX2": {"TF_ENABLE_ONEDNN_OPTS": "1", "ONEDNN_MAX_CPU_ISA": "AVX2"},
}


def child(steps: int, reps: int) -> dict:
    """Time ``reps`` runs of ``steps`` steps; hash weights and predictions of each run."""
    sys.path.insert(0, str(ROOT))
    import numpy as np

    import tlutils  # noqa: F401  (before TensorFlow: quiets it)
    from tlutils import config, models, train

    rng = np.random.default_rng(0)
    x = rng.random((640, 28, 28, 1), dtype=np.float32)
    y = rng.integers(0, 10, 640)

    def one_run() -> tuple[float, float, str]:
        config.setup(0)
        model = models.build_cnn()
        train.compile_model(model, lr=1e-3)
        data = train.batches(x, y, batch_size=32, seed=0)
        model.fit(data, epochs=1, steps_per_epoch=10, verbose=0)  # warm-up: tracing
        wall, cpu = time.perf_counter(), time.process_time()
        model.fit(data, epochs=1, steps_per_epoch=steps, verbose=0)
        wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
        digest = hashlib.sha256()
        for w in model.get_weights():
            digest.update(w.tobytes())
        digest.update(np.asarray(model(x[:256], training=False)).tobytes())
        return wall / steps * 1e3, cpu / steps * 1e3, digest.hexdigest()[:12]

    runs = [one_run() for _ in range(reps)]
    return {"ms_wall": statistics.median(r[0] for r in runs),
            "ms_cpu": statistics.median(r[1] for r in runs),
            "hashes": sorted({r[2] for r in runs})}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--reps", type=int, default=3, help="timed runs per setting")
    parser.add_argument("--steps", type=int, default=200, help="training steps per run")
    parser.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.child:
        print(json.dumps(child(args.steps, args.reps)))
        return 0
    base = {"TF_NUM_INTRAOP_THREADS": "1", "TF_NUM_INTEROP_THREADS": "2",
            "TF_CPP_MIN_LOG_LEVEL": "2", "PYTHONHASHSEED": "0"}
    results = {}
    for name, extra in SETTINGS.items():
        env = {k: v for k, v in os.environ.items() if k != "ONEDNN_MAX_CPU_ISA"}
        env.update(base)
        env.update(extra)
        outs = []
        for _ in range(2):  # two processes: is the result the same across processes too?
            proc = subprocess.run([sys.executable, __file__, "--child", "--reps", str(args.reps),
                                   "--steps", str(args.steps)], env=env, capture_output=True,
                                  text=True, check=True)
            outs.append(json.loads(proc.stdout.strip().splitlines()[-1]))
        results[name] = {"ms_wall": min(o["ms_wall"] for o in outs),
                         "ms_cpu": min(o["ms_cpu"] for o in outs),
                         "hashes": sorted({h for o in outs for h in o["hashes"]})}
    eigen = results["Eigen (the book's setting)"]
    print(f"book CNN, batch 32, {args.steps} steps x {args.reps} runs x 2 processes, "
          "1 TensorFlow thread per op\n")
    print(f"{'setting':<30} {'ms/step wall':>13} {'ms/step CPU':>12} {'speed-up':>9} "
          f"{'deterministic':>14}  result hash")
    for name, r in results.items():
        same = "yes" if len(r["hashes"]) == 1 else f"NO ({len(r['hashes'])})"
        print(f"{name:<30} {r['ms_wall']:>13.2f} {r['ms_cpu']:>12.2f} "
              f"{eigen['ms_wall'] / r['ms_wall']:>8.2f}x {same:>14}  {', '.join(r['hashes'])}")
    best, avx2 = results["oneDNN, best ISA here"], results["oneDNN, ISA capped at AVX2"]
    print("\noneDNN's result depends on the instruction set it dispatches to:",
          "yes" if best["hashes"] != avx2["hashes"] else "no (same weights)")
    print("Eigen and oneDNN give the same weights:",
          "yes" if eigen["hashes"] == best["hashes"] else "no")
    return 0


if __name__ == "__main__":
    sys.exit(main())
