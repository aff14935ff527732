"""Comparison-engine benchmark (issue 12): what cached frozen features and one compiled graph
per learning-rate grid save, and proof that they change nothing.

Prints, on chapter 4.3's task (MNIST source CNN -> scikit-learn digits, budgets 1/10/50,
3 seeds, 100 steps per run):

  * feature extraction trained through the frozen network (``cache_features=False``) against
    the head trained on features computed once per budget: wall and CPU seconds, and whether
    the accuracies agree to the printed precision (they must);
  * a 3-rate grid for fine-tuning run with one compiled model per rate (the old way) against
    one compiled model whose rate is set at every rewind: seconds, and whether the accuracies
    are identical (they must be, bit for bit).

Each variant runs ``--reps`` times, interleaved, and the median is reported (the machine may
be shared). Usage: .venv/bin/python benchmarks/bench_engine.py [--reps 3]
"""

from __future__ import annotations

import argparse
import dataclasses
import resource
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from tools import book_env  # noqa: E402

book_env.apply(threads=True)

import numpy as np  # noqa: E402

import tlutils  # noqa: E402
from tlutils import data, engine, transfer, zoo  # noqa: E402

BUDGETS = (1, 10, 50)
SEEDS = (0, 1, 2)
STEPS = 100
GRID = (3e-4, 1e-3, 3e-3)


def cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def timed(fn):
    wall, c = time.perf_counter(), cpu()
    out = fn()
    return out, time.perf_counter() - wall, cpu() - c


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--reps", type=int, default=3)
    args = parser.parse_args()
    tlutils.setup(seed=0)
    source, _ = zoo.source_model()
    digits = data.load_digits_28()
    xp, yp, xt, yt = data.split(digits.x, digits.y, test_fraction=0.4, seed=0)
    tasks = [engine.Task(xp, yp, xt, yt, b, {"budget": b}) for b in BUDGETS]
    fe = transfer.Recipe("feature_extraction", lr=1e-2)
    ft = transfer.Recipe("fine_tune")

    def feature_extraction(cache: bool):
        trainee = engine.Trainee(lambda s: fe.build(source, 10, s), SEEDS, compile=fe.compile,
                                 cache_features=cache)
        return engine.run({"fe": trainee}, tasks, steps=STEPS).accuracy.to_numpy()

    def grid_old():
        out = []
        for lr in GRID:
            trainee = dataclasses.replace(ft, lr=lr).trainee(source, 10, SEEDS)
            out.append(engine.run({"ft": trainee}, tasks[1:2], steps=STEPS).accuracy)
        return np.concatenate(out)

    def grid_new():
        trainee = ft.trainee(source, 10, SEEDS)
        return np.concatenate([engine.run({"ft": trainee}, tasks[1:2], steps=STEPS,
                                          lr=lr).accuracy for lr in GRID])

    variants = {"feature extraction through the frozen network": lambda: feature_extraction(False),
                "feature extraction on cached features": lambda: feature_extraction(True),
                "fine-tune grid, one compiled model per rate": grid_old,
                "fine-tune grid, one compiled model, rate set at rewind": grid_new}
    walls: dict[str, list[float]] = {k: [] for k in variants}
    cpus: dict[str, list[float]] = {k: [] for k in variants}
    outs: dict[str, np.ndarray] = {}
    for _ in range(args.reps):
        for name, fn in variants.items():
            out, wall, c = timed(fn)
            walls[name].append(wall)
            cpus[name].append(c)
            outs[name] = out
    print(f"{'variant':<56} {'wall s':>7} {'cpu s':>7}   (median of {args.reps})")
    for name in variants:
        print(f"{name:<56} {statistics.median(walls[name]):7.2f} "
              f"{statistics.median(cpus[name]):7.2f}")
    names = list(variants)
    same_fe = np.array_equal(outs[names[0]].round(3), outs[names[1]].round(3))
    same_grid = np.array_equal(outs[names[2]], outs[names[3]])
    print(f"feature extraction, cached vs through the network, equal to 3 decimals: {same_fe}")
    print(f"fine-tune grid, rate at rewind vs compiled per rate, identical: {same_grid}")
    for a, b in ((0, 1), (2, 3)):
        print(f"speed-up ({names[b]} over {names[a]}): wall "
              f"{statistics.median(walls[names[a]]) / statistics.median(walls[names[b]]):.2f}x,"
              f" cpu {statistics.median(cpus[names[a]]) / statistics.median(cpus[names[b]]):.2f}x")


if __name__ == "__main__":
    main()
