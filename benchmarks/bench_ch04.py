"""Chapter 04 benchmark: the headline transfer numbers and the chapter's notebook times.

Prints, for MNIST (source) -> scikit-learn digits (target), over seeds:
  * accuracy at 10 labels/class of scratch, feature extraction, fine-tuning (and its L2-SP and
    per-layer-learning-rate variants), the full-label oracle, and transfer efficiency
    (best transfer - scratch) / (oracle - scratch)            target: >= 0.75
  * the gain of the best transfer recipe over scratch at 1 label/class   target: >= +0.20
  * the wall time of every chapter-04 notebook, executed from a copy      target: <= 60 s each

Usage: .venv/bin/python benchmarks/bench_ch04.py [--seeds 0 1 2] [--no-notebooks]
"""

from __future__ import annotations

import argparse
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tools"))

import numpy as np  # noqa: E402

import tlutils  # noqa: E402
from tlutils import data, transfer, zoo  # noqa: E402

R = transfer.Recipe
RECIPES = {
    "scratch": R("scratch"),
    "feature extraction": R("feature_extraction", lr=1e-2),
    "fine-tune": R("fine_tune"),
    "fine-tune + L2-SP": R("fine_tune", l2sp=1e-2),
    "fine-tune, per-layer lr": R("fine_tune", lr_multipliers={"conv1": 0.1, "conv2": 0.3}),
}


def accuracy_table(seeds: list[int], steps: int) -> None:
    tlutils.setup(0)
    source, card = zoo.source_model()
    digits = data.load_digits_28()
    x_pool, y_pool, x_test, y_test = data.split(digits.x, digits.y, test_fraction=0.4, seed=0)
    print(f"source model: {card.data_source}, {card.n_train} images, "
          f"source test accuracy {card.test_accuracy:.3f}")

    start = time.perf_counter()
    ten = transfer.compare(source, x_pool, y_pool, x_test, y_test, recipes=RECIPES,
                           budgets=[10], seeds=seeds, steps=steps)
    one = transfer.compare(source, x_pool, y_pool, x_test, y_test, recipes=RECIPES,
                           budgets=[1], seeds=seeds, steps=steps)
    n_all = int(min(np.bincount(y_pool)))
    oracle = transfer.compare(source, x_pool, y_pool, x_test, y_test,
                              recipes={"oracle (scratch, all labels)": R("scratch")},
                              budgets=[n_all], seeds=seeds, steps=3 * steps)
    seconds = time.perf_counter() - start

    acc10 = ten.groupby("method").accuracy.agg(["mean", "std"])
    acc1 = one.groupby("method").accuracy.agg(["mean", "std"])
    orc = oracle.accuracy.mean()
    transfer_names = [n for n in RECIPES if n != "scratch"]
    best10 = max(transfer_names, key=lambda n: acc10.loc[n, "mean"])
    best1 = max(transfer_names, key=lambda n: acc1.loc[n, "mean"])
    eff = transfer.transfer_efficiency(acc10.loc["scratch", "mean"], acc10.loc[best10, "mean"], orc)
    gain1 = acc1.loc[best1, "mean"] - acc1.loc["scratch", "mean"]

    print(f"\nMNIST -> scikit-learn digits, mean +/- sd over seeds {seeds}, {steps} steps per run")
    print(f"{'recipe':<28}{'1 label/class':>18}{'10 labels/class':>18}")
    for name in RECIPES:
        print(f"{name:<28}{acc1.loc[name, 'mean']:>11.3f} +/- {acc1.loc[name, 'std']:.3f}"
              f"{acc10.loc[name, 'mean']:>11.3f} +/- {acc10.loc[name, 'std']:.3f}")
    print(f"{'oracle (scratch, all ' + str(n_all) + '/class)':<28}{'':>18}{orc:>11.3f}")
    print(f"\ntransfer efficiency at 10/class ({best10}): {eff:.2f}   (target >= 0.75)")
    print(f"gain over scratch at 1/class ({best1}): {gain1:+.3f}   (target >= +0.20)")
    print(f"accuracy runs took {seconds:.0f} s")


def notebook_times() -> None:
    from execute_notebooks import execute

    print("\nchapter-04 notebooks, executed from a copy (wall time, target <= 60 s each)")
    nbs = sorted((ROOT / "chapters" / "04_code_walkthrough").glob("*.ipynb"))
    with tempfile.TemporaryDirectory() as tmp:
        for nb in nbs:
            copy = Path(tmp) / nb.name
            shutil.copy(nb, copy)
            print(f"{execute(copy):7.1f} s  {nb.relative_to(ROOT)}", flush=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--steps", type=int, default=100)
    parser.add_argument("--no-notebooks", action="store_true")
    args = parser.parse_args()
    os.environ.setdefault("TLUTILS_DATA_DIR", str(ROOT.parent / "shared" / "data" / "mnist"))
    accuracy_table(args.seeds, args.steps)
    if not args.no_notebooks:
        notebook_times()


if __name__ == "__main__":
    main()
