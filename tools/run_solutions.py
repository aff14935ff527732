"""Run every exercise solution the way a reader would: the notebook top to bottom, then each
code block of its ``:::{solution}`` dropdowns, in the same kernel, in order.

Solutions written as code in a dropdown are markdown, so neither strict nbval nor ``make
execute`` runs them; ``tests/test_notebook_format.py`` only checks that they parse and call
functions that exist. This script runs them (slow: each notebook once more, plus its
solutions' training). Nothing is written back; a block that raises is reported with its
error, and the command fails. ``--out DIR`` keeps each executed copy (the notebook with its
solutions appended as cells) in DIR, to read what the solutions print.

    .venv/bin/python tools/run_solutions.py [--jobs 2] [--out DIR] [notebook ...]  # default: all

Run it with the Makefile's thread settings (``TF_NUM_INTRAOP_THREADS=1
TF_NUM_INTEROP_THREADS=2``) to use both cores. Claims are reported, not raised, while it runs
(``TLUTILS_CLAIMS_REPORT_ONLY=1``): a solution explores other settings on purpose.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import nbformat
from nbclient import NotebookClient

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
from tools import book_env  # noqa: E402

book_env.apply()
os.environ["TLUTILS_CLAIMS_REPORT_ONLY"] = "1"
from tlutils.io import atomic_write_text  # noqa: E402
from tools.notebook_cells import solution_blocks  # noqa: E402


def run(path: Path, out: Path | None = None, timeout: int = 1200) -> dict:
    """Execute ``path``, then its solution blocks; return a report (and, with ``out``, write
    the executed copy there)."""
    nb = nbformat.read(path, as_version=4)
    blocks = solution_blocks(nb)
    first = len(nb.cells)
    nb.cells += [nbformat.v4.new_code_cell(code) for _, code in blocks]
    client = NotebookClient(nb, timeout=timeout, kernel_name="python3", allow_errors=True,
                            resources={"metadata": {"path": str(path.parent)}})
    start = time.perf_counter()
    client.execute()
    report = {"notebook": str(path.relative_to(ROOT)), "blocks": len(blocks),
              "seconds": round(time.perf_counter() - start, 1), "errors": []}
    if out is not None:
        atomic_write_text(out / path.name, nbformat.writes(nb) + "\n")
    for i, cell in enumerate(nb.cells):
        for output in cell.get("outputs", []):
            if output.get("output_type") == "error":
                where = (f"solution {blocks[i - first][0]}" if i >= first
                         else f"notebook cell {i}")
                report["errors"].append({"where": where,
                                         "error": f"{output.ename}: {output.evalue}"})
    return report


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--jobs", type=int, default=1, help="notebooks run at a time")
    parser.add_argument("--out", type=Path, help="folder for the executed copies")
    parser.add_argument("paths", nargs="*", type=Path)
    args = parser.parse_args(argv)
    if args.jobs < 1:
        raise ValueError(f"--jobs must be at least 1, got {args.jobs}")
    if args.out is not None:
        args.out.mkdir(parents=True, exist_ok=True)
    paths = [p.resolve() for p in args.paths] or sorted((ROOT / "chapters").rglob("*.ipynb"))
    failed = 0
    with ProcessPoolExecutor(args.jobs) as pool:
        for report in pool.map(run, paths, [args.out] * len(paths)):
            failed += bool(report["errors"])
            status = "FAIL" if report["errors"] else "ok"
            print(f"{status:4} {report['seconds']:7.1f} s  {report['blocks']:2} blocks  "
                  f"{report['notebook']}", flush=True)
            for error in report["errors"]:
                print(f"       {error['where']}: {error['error'][:300]}", flush=True)
    print(json.dumps({"notebooks": len(paths), "failed": failed}))
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
