"""Chapter 5.6 benchmark: few-shot and zero-shot transfer from MiniLM on the topic sentences.

Prints, for the book's six-topic sentence task at 8 labels/class (mean +/- sd over seeds):
  * test accuracy of the from-scratch baseline (TF-IDF + logistic regression), a linear probe on
    frozen MiniLM embeddings, fine-tuning the top Transformer block (low learning rate), and
    zero-shot classification by cosine similarity to label descriptions (no labels);
  * embedding throughput in sentences/s: computed (no cache), a cache miss (compute + atomic
    write) and a cache hit, and the speed-up the cache gives.

The cache is a fresh temporary folder, so "miss" and "hit" are what they say.

Usage: .venv/bin/python benchmarks/bench_text.py [--seeds 0 1 2] [--budget 8] [--steps 30]
"""

from __future__ import annotations

import argparse
import atexit
import os
import shutil
import tempfile
import time

_CACHE = tempfile.mkdtemp(prefix="tlutils-bench-text-")
os.environ["TLUTILS_CACHE_DIR"] = _CACHE
atexit.register(shutil.rmtree, _CACHE, ignore_errors=True)

import numpy as np  # noqa: E402
from sklearn.feature_extraction.text import TfidfVectorizer  # noqa: E402
from sklearn.linear_model import LogisticRegression  # noqa: E402
from sklearn.pipeline import make_pipeline  # noqa: E402

import tlutils  # noqa: E402
from tlutils import text, zoo  # noqa: E402


def timed(fn, *args, **kwargs):
    wall, cpu = time.perf_counter(), time.process_time()
    out = fn(*args, **kwargs)
    return out, time.perf_counter() - wall, time.process_time() - cpu


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--budget", type=int, default=8, help="labelled sentences per class")
    parser.add_argument("--steps", type=int, default=30, help="fine-tuning steps per run")
    args = parser.parse_args()
    tlutils.setup(0)

    encoder, wall, cpu = timed(zoo.text_encoder)
    print(f"{encoder}; loaded in {wall:.1f} s wall / {cpu:.1f} s CPU")
    ds = text.load_topic_sentences()
    texts = list(ds.train_texts) + list(ds.test_texts)
    n_train = len(ds.y_train)

    # Throughput: the fingerprint (a hash of the weights) is computed once per encoder; do it
    # first so it is not charged to either side.
    encoder.fingerprint()
    encoder.embed(texts[:8], cache=False)  # trace the graph once
    rows = []
    for label, kwargs in (("computed, no cache", {"cache": False}),
                          ("cache miss (compute + write)", {}),
                          ("cache hit (read)", {})):
        z, wall, cpu = timed(encoder.embed, texts, **kwargs)
        rows.append((label, wall, cpu))
    print(f"\nembedding throughput, {len(texts)} sentences:")
    for label, wall, cpu in rows:
        print(f"  {label:<30} {len(texts) / wall:>12,.0f} sentences/s  "
              f"({wall * 1000:8.1f} ms wall, {cpu * 1000:8.1f} ms CPU)")
    print(f"  speed-up from the cache: {rows[0][1] / rows[2][1]:,.0f}x")

    z_train, z_test = z[:n_train], z[n_train:]
    feats = encoder.features(texts, block=encoder.num_blocks - 1)
    f_train, f_test = feats[:n_train], feats[n_train:]

    def scratch(idx):
        clf = make_pipeline(TfidfVectorizer(ngram_range=(1, 2), sublinear_tf=True),
                            LogisticRegression(C=10, max_iter=1000))
        clf.fit(ds.train_texts[idx], ds.y_train[idx])
        return float(np.mean(clf.predict(ds.test_texts) == ds.y_test))

    def probe(idx):
        clf = LogisticRegression(C=10, max_iter=1000).fit(z_train[idx], ds.y_train[idx])
        return float(np.mean(clf.predict(z_test) == ds.y_test))

    results: dict[str, list[float]] = {"scratch (TF-IDF + LR)": [], "linear probe (MiniLM)": []}
    seconds: dict[str, float] = {}
    for name, fn in (("scratch (TF-IDF + LR)", scratch), ("linear probe (MiniLM)", probe)):
        start = time.perf_counter()
        for seed in args.seeds:
            results[name].append(fn(text.few_shot_indices(ds.y_train, args.budget, seed=seed)))
        seconds[name] = time.perf_counter() - start
    model = text.top_classifier(encoder, len(ds.classes), blocks=1)
    tuned, wall, _ = timed(text.fine_tune_grid, model, f_train, ds.y_train, f_test, ds.y_test,
                           budgets=[args.budget], seeds=args.seeds, steps=args.steps,
                           batch_size=8, lr=1e-3, lr_multipliers={"transformer_layer_5": 0.1})
    results["fine-tune top block"] = list(tuned.accuracy)
    seconds["fine-tune top block"] = wall
    start = time.perf_counter()
    label_z = encoder.embed([f"This sentence is about {c}." for c in ds.classes], cache=False)
    zero = float(np.mean(text.zero_shot_predict(z_test, label_z) == ds.y_test))
    seconds["zero-shot (no labels)"] = time.perf_counter() - start
    results["zero-shot (no labels)"] = [zero]

    print(f"\ntest accuracy at {args.budget} labels/class, {len(ds.classes)} topics, "
          f"{len(ds.y_test)} test sentences, seeds {args.seeds} (chance {1 / 6:.3f}):")
    for name, accs in results.items():
        spread = f"+/- {np.std(accs):.3f}" if len(accs) > 1 else "(deterministic)"
        print(f"  {name:<24} {np.mean(accs):.3f} {spread:<16} {seconds[name]:6.1f} s wall")


if __name__ == "__main__":
    main()
