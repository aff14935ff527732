"""Book benchmark (issues 8 and 12): how long the book takes to execute, test and build here.

Prints one table with
  * the wall (and CPU) time of every notebook under chapters/, executed top to bottom from a
    temporary copy of the book with tools/execute_notebooks.py     target: <= 90 s each, <= 15 min all
  * the total strict-nbval time (pytest --nbval over chapters/, with --jobs workers and the
    Makefile's thread settings)                                     target: <= 12 min
  * with --cells N: the N slowest cells across the book, read from the cells' execution
    timestamps (of the fresh copy when the notebooks part ran, else of the committed notebooks)
  * the book build time from the committed outputs                  target: <= 2 min
  * with --fresh: the build time with fresh execution (execute every copied notebook, then
    build the copy)                                                 target: <= 20 min
The committed notebooks and the book's _build are never touched.

Usage: .venv/bin/python benchmarks/bench_book.py [--only PART ...] [--skip PART ...] [--fresh]
       [--notebooks PATH ...] [--jobs N] [--cells N]      PART: notebooks, nbval, build, fresh
e.g.   .venv/bin/python benchmarks/bench_book.py --only build --cells 20
e.g.   .venv/bin/python benchmarks/bench_book.py --only build     (quick: about a minute or two)
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PARTS = ("notebooks", "nbval", "build", "fresh")
NOTEBOOK_TARGET_S = 90.0
NBVAL_TARGET_S = 12 * 60.0
ALL_NOTEBOOKS_TARGET_S = 15 * 60.0
BUILD_TARGET_S = 2 * 60.0
FRESH_TARGET_S = 20 * 60.0
# Not part of the book's sources: environments, build outputs, npm's node_modules (vendor/static,
# which the build serves, is kept).
COPY_IGNORE = shutil.ignore_patterns(".git", ".venv", "_build", "node_modules", "__pycache__",
                                     ".ipynb_checkpoints", ".jupyter_cache", "jupyter_execute",
                                     "*.egg-info", ".pytest_cache", ".ruff_cache")

sys.path.insert(0, str(ROOT))
from tools import book_env  # noqa: E402

book_env.apply(data=True)


def _child_cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def timed(fn: Callable[[], bool]) -> tuple[float, float, bool]:
    """Run ``fn`` (which returns success) -> (wall s, CPU s of finished child processes, ok)."""
    cpu0, t0 = _child_cpu(), time.perf_counter()
    ok = fn()
    return time.perf_counter() - t0, _child_cpu() - cpu0, ok


def run(cmd: list[str], log: Path, env: dict[str, str] | None = None) -> bool:
    """Run ``cmd`` from the repository root, output to ``log``; True if it exited 0."""
    with open(log, "w") as fh:
        return subprocess.run(cmd, cwd=ROOT, stdout=fh, stderr=subprocess.STDOUT,
                              env={**os.environ, **(env or {})}).returncode == 0


def slowest_cells(notebooks: list[Path], root: Path, n: int) -> list[tuple[float, str, str]]:
    """The ``n`` slowest code cells: (seconds, "notebook#cell", first code line)."""
    sys.path.insert(0, str(ROOT / "tools"))
    from notebook_cells import cell_seconds  # tools/ is not a package
    found = []
    for nb in notebooks:
        cells = [c for c in json.loads(nb.read_text())["cells"] if c["cell_type"] == "code"]
        for i, cell in enumerate(cells, start=1):
            seconds = cell_seconds(cell)
            if seconds is None:
                continue
            lines = [ln for ln in "".join(cell["source"]).splitlines()
                     if ln.strip() and not ln.lstrip().startswith("#")]
            found.append((seconds, f"{nb.relative_to(root).stem}#{i}",
                          (lines[0] if lines else "")[:70]))
    return sorted(found, reverse=True)[:n]


def executable(name: str) -> str:
    return shutil.which(name, path=str(Path(sys.executable).parent)) or name


def build(source: Path, out: Path, log: Path) -> bool:
    """``jupyter-book build`` with the project's flags (-W -n --keep-going)."""
    return run([executable("jupyter-book"), "build", str(source), "--path-output", str(out),
                "-W", "-n", "--keep-going"], log)


def status(ok: bool, seconds: float, target: float | None) -> str:
    if not ok:
        return "FAILED"
    if target is None:
        return ""
    return "ok" if seconds <= target else "OVER"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description="Time notebook execution, strict nbval and the book build (issue 8).",
        epilog="Logs of failed steps are kept in the printed work folder. Set TLUTILS_DATA_DIR "
               "for the data (default ../shared/data/mnist).")
    parser.add_argument("--only", nargs="+", choices=PARTS, metavar="PART",
                        help=f"run only these parts, from {', '.join(PARTS)}")
    parser.add_argument("--skip", nargs="+", choices=PARTS, default=[], metavar="PART",
                        help="leave these parts out")
    parser.add_argument("--fresh", action="store_true",
                        help="also time a build with fresh execution (implies the notebook timing)")
    parser.add_argument("--notebooks", nargs="+", type=Path, metavar="PATH",
                        help="time only these notebooks (default: every one under chapters/)")
    parser.add_argument("--keep", action="store_true", help="keep the temporary work folder")
    parser.add_argument("--jobs", type=int, default=2,
                        help="pytest-xdist workers for the nbval part (default 2, as make test)")
    parser.add_argument("--cells", type=int, default=0, metavar="N",
                        help="print the N slowest cells across the book")
    args = parser.parse_args(argv)

    parts = set(args.only) if args.only else {"notebooks", "nbval", "build"}
    if args.fresh:
        parts.add("fresh")
    parts -= set(args.skip)
    if "fresh" in parts:
        parts.add("notebooks")  # a fresh build executes every notebook first

    notebooks = sorted(p.resolve() for p in (args.notebooks or ROOT.glob("chapters/**/*.ipynb"))
                       if ".ipynb_checkpoints" not in p.parts)
    if not notebooks and parts & {"notebooks", "nbval"}:
        parser.error("no notebooks found")
    if "fresh" in parts and args.notebooks:
        parser.error("--fresh executes every notebook; do not combine it with --notebooks")

    work = Path(tempfile.mkdtemp(prefix="bench-book-"))
    print(f"work folder: {work}   TLUTILS_DATA_DIR={os.environ['TLUTILS_DATA_DIR']}", flush=True)
    rows: list[tuple[str, float, float, str, str]] = []  # name, wall, cpu, target, status
    failed = False

    def add(name: str, wall: float, cpu: float, ok: bool, target: float | None) -> None:
        nonlocal failed
        failed |= not ok
        shown = f"<= {target:.0f} s" if target is not None else ""
        rows.append((name, wall, cpu, shown, status(ok, wall, target)))
        print(f"{wall:8.1f} s  {name}  {rows[-1][4]}", flush=True)

    copy = work / "book"
    if "notebooks" in parts:
        sys.path.insert(0, str(ROOT / "tools"))
        from execute_notebooks import execute  # tools/ is not a package

        shutil.copytree(ROOT, copy, ignore=COPY_IGNORE)
        total_wall = total_cpu = 0.0
        all_ok = True
        for nb in notebooks:
            rel = nb.relative_to(ROOT)

            def one(target: Path = copy / rel) -> bool:
                try:
                    execute(target)
                except Exception as exc:  # a failing notebook is a row, not the end of the run
                    (work / f"{target.stem}.log").write_text(f"{type(exc).__name__}: {exc}")
                    return False
                return True

            wall, cpu, ok = timed(one)
            all_ok &= ok
            total_wall += wall
            total_cpu += cpu
            add(f"execute {rel}", wall, cpu, ok, NOTEBOOK_TARGET_S)
        add(f"execute all {len(notebooks)} notebooks", total_wall, total_cpu, all_ok,
            ALL_NOTEBOOKS_TARGET_S)

    if "nbval" in parts:
        cmd = [sys.executable, "-m", "pytest", "-q", "-n", str(args.jobs), "--dist", "loadfile",
               "--nbval", "--nbval-sanitize-with", "tests/nbval_sanitize.cfg",
               "--nbval-cell-timeout", "900", *[str(nb.relative_to(ROOT)) for nb in notebooks]]
        wall, cpu, ok = timed(lambda: run(cmd, work / "nbval.log", book_env.THREADS))
        add(f"strict nbval ({len(notebooks)} notebooks, {args.jobs} workers)", wall, cpu, ok,
            NBVAL_TARGET_S)

    if "build" in parts:
        wall, cpu, ok = timed(lambda: build(ROOT, work / "build-committed", work / "build.log"))
        add("book build, committed outputs", wall, cpu, ok, BUILD_TARGET_S)

    if "fresh" in parts:
        execute_row = next(r for r in rows if r[0].startswith("execute all"))
        wall, cpu, ok = timed(lambda: build(copy, work / "build-fresh", work / "build-fresh.log"))
        add("book build of the freshly executed copy", wall, cpu, ok, None)
        add("book build with fresh execution (execute all + build)", execute_row[1] + wall,
            execute_row[2] + cpu, ok and execute_row[4] != "FAILED", FRESH_TARGET_S)

    width = max(len(r[0]) for r in rows) if rows else 10
    print(f"\n{'step':<{width}}  {'wall s':>8}  {'CPU s':>8}  {'target':>9}  status")
    for name, wall, cpu, target, state in rows:
        print(f"{name:<{width}}  {wall:8.1f}  {cpu:8.1f}  {target:>9}  {state}")
    print("(CPU s: user+sys of the child processes: notebook kernels, pytest, jupyter-book.)")

    if args.cells:
        executed = ([copy / nb.relative_to(ROOT) for nb in notebooks] if "notebooks" in parts
                    else notebooks)
        base = copy if "notebooks" in parts else ROOT
        print(f"\nThe {args.cells} slowest cells "
              f"({'this run' if 'notebooks' in parts else 'committed outputs'}):")
        for seconds, where, line in slowest_cells(executed, base, args.cells):
            print(f"{seconds:7.1f} s  {where:<45} {line}")

    if failed or args.keep:
        print(f"logs kept in {work}")
    else:
        shutil.rmtree(work, ignore_errors=True)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
