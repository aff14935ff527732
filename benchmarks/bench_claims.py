"""Claims benchmark (issue 13): does every conclusion the book checks in code still hold when
the experiment is re-run with other reasonable settings?

Each notebook's claim cells call ``tlutils.claims.check``, which prints one line per claim,
``HOLDS: <claim> [...]`` or ``FAILS: <claim> [...]``. This script executes temporary copies of
the notebooks under perturbed settings, with ``TLUTILS_CLAIMS_REPORT_ONLY=1`` (a failing claim
prints ``FAILS`` instead of stopping the notebook), collects every verdict and prints a table
claim x setting -> holds / FLIPS / - (not reached: the notebook failed before the claim).

Settings are edits of the notebook's ``parameters`` cell:

  default    the committed settings
  steps3     every parameter that sets a training length (STEPS, *_STEPS, EPOCHS,
             *_EPOCHS) x 3
  steps10    the same x 10
  seeds5     every seed list (SEEDS, *_SEEDS, SPLITS) -> five seeds (0..4)
  lr_down    every learning rate set to a number (LR, *_LR) / 3  (the neighbouring grid
             rate; a grid or a dict of rates is left alone)
  lr_up      the same x 3
  full       FULL = True (the notebook's own bigger run)

A setting that does not apply to a notebook (no such parameter) is skipped for it. The
committed notebooks are never touched. Long: 'steps10' and 'full' take many times the default.

Usage: .venv/bin/python benchmarks/bench_claims.py [--settings S ...] [--notebooks PATH ...]
       [--jobs N]
e.g.   .venv/bin/python benchmarks/bench_claims.py --settings default steps3 seeds5 \\
           --notebooks chapters/04_code_walkthrough/04_3_target_fine_tuning.ipynb
"""

from __future__ import annotations

import argparse
import os
import re
import sys
import tempfile
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
SETTINGS = ("default", "steps3", "steps10", "seeds5", "lr_down", "lr_up", "full")
VERDICT = re.compile(r"^(HOLDS|FAILS): (.+?)  \[")

sys.path.insert(0, str(ROOT))
from tools import book_env, notebook_cells  # noqa: E402

#: parameter names each setting changes (a parameters cell's ``NAME = ...`` lines)
STEP_NAMES = r"[A-Z_]*STEPS|[A-Z_]*EPOCHS"
SEED_NAMES = r"[A-Z_]*SEEDS|SPLITS"
LR_NAMES = r"LR|[A-Z_]+_LR"
#: a number literal: only a single fixed rate moves to its neighbours (not a dict of them)
NUMBER = r"[0-9][0-9._eE+-]*\s*(?:#|$)"


def _names(source: str, pattern: str, value: str = "") -> list[str]:
    """Names matching ``pattern`` assigned at the start of a line (to a ``value``-matching
    right-hand side, if given)."""
    return sorted({m.group(1) for m in re.finditer(rf"^({pattern})\s*=\s*{value}", source, re.M)})


def perturb(source: str, setting: str) -> str | None:
    """The parameters cell under ``setting``, or None if the setting does not apply."""
    if setting == "default":
        return source
    if setting == "full":
        return source.replace("FULL = False", "FULL = True") if "FULL = False" in source else None
    if setting in ("steps3", "steps10"):
        names = _names(source, STEP_NAMES)
        factor = 3 if setting == "steps3" else 10
        lines = [f"{n} = int({n} * {factor})" for n in names]
    elif setting == "seeds5":
        names = _names(source, SEED_NAMES)
        lines = [f"{n} = type({n})(range(5))" for n in names]
    else:  # lr_down / lr_up
        names = _names(source, LR_NAMES, value=NUMBER)
        factor = "/ 3" if setting == "lr_down" else "* 3"
        lines = [f"{n} = {n} {factor}" for n in names]
    if not names:
        return None
    return source + "\n# bench_claims: " + setting + "\n" + "\n".join(lines) + "\n"


def run_one(job: tuple[Path, str, Path]) -> tuple[str, str, dict[str, bool], str]:
    """Execute one notebook under one setting; return its verdicts (claim -> holds)."""
    import nbformat
    from nbclient import NotebookClient

    path, setting, work = job
    nb = nbformat.read(path, as_version=4)
    cell = notebook_cells.parameters_cell(nb)
    if cell is None:
        return path.stem, setting, {}, "no parameters cell"
    source = perturb(cell.source, setting)
    if source is None:
        return path.stem, setting, {}, "n/a"
    cell.source = source
    error = ""
    try:
        NotebookClient(nb, timeout=3600, kernel_name="python3",
                       resources={"metadata": {"path": str(path.parent)}}).execute()
    except Exception as exc:  # a failing notebook still reports the claims it reached
        error = f"{type(exc).__name__}: {str(exc).strip().splitlines()[-1][:120]}"
    verdicts: dict[str, bool] = {}
    for c in nb.cells:
        for out in c.get("outputs", []):
            for line in str(out.get("text", "")).splitlines():
                match = VERDICT.match(line)
                if match:
                    verdicts[match.group(2)] = match.group(1) == "HOLDS"
    nbformat.write(nb, work / f"{path.stem}.{setting}.ipynb")
    return path.stem, setting, verdicts, error


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--settings", nargs="+", choices=SETTINGS, default=list(SETTINGS))
    parser.add_argument("--notebooks", nargs="+", type=Path)
    parser.add_argument("--jobs", type=int, default=2)
    args = parser.parse_args(argv)
    book_env.apply(threads=True, data=True)  # inherited by the worker processes
    os.environ["TLUTILS_CLAIMS_REPORT_ONLY"] = "1"
    notebooks = sorted(p.resolve() for p in (args.notebooks or ROOT.glob("chapters/**/*.ipynb")))
    work = Path(tempfile.mkdtemp(prefix="bench-claims-"))
    jobs = [(nb, s, work) for nb in notebooks for s in args.settings]
    results: dict[tuple[str, str], dict[str, bool]] = {}
    with ProcessPoolExecutor(max_workers=args.jobs) as pool:
        for stem, setting, verdicts, error in pool.map(run_one, jobs):
            results[(stem, setting)] = verdicts
            note = f"  ({error})" if error else ""
            print(f"{stem:<45} {setting:<8} {sum(verdicts.values())}/{len(verdicts)} hold{note}",
                  flush=True)
    claims = sorted({(stem, claim) for (stem, _), v in results.items() for claim in v})
    flips = 0
    print(f"\n{'notebook':<32} {'claim':<60} " + " ".join(f"{s:>8}" for s in args.settings))
    for stem, claim in claims:
        cells = []
        for s in args.settings:
            v = results.get((stem, s), {})
            cells.append("holds" if v.get(claim) else ("FLIPS" if claim in v else "-"))
        flips += cells.count("FLIPS")
        print(f"{stem[:32]:<32} {claim[:60]:<60} " + " ".join(f"{c:>8}" for c in cells))
    print(f"\n{len(claims)} claims, {flips} flips; executed copies in {work}")
    return 1 if flips else 0


if __name__ == "__main__":
    sys.exit(main())
