"""The project's execute command: run notebooks top to bottom, in place (``make execute``).

Each notebook runs in a fresh kernel from its own folder with the book's environment
(quiet TensorFlow, deterministic ops, the data directory), so the committed outputs are
exactly what strict nbval and the book show. Execution counts come out as 1..n. A cell
error stops that notebook, leaves the file on disk untouched and makes the command fail.
Prints the wall time of each notebook. ``--jobs N`` runs N notebooks at a time (one kernel
each; ``make execute`` uses both cores and one TensorFlow thread per kernel, see the Makefile).
"""

from __future__ import annotations

import argparse
import sys
import time
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import nbformat
from nbclient import NotebookClient
from nbclient.exceptions import CellExecutionError

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from tlutils.io import atomic_write_text  # noqa: E402
from tools import book_env  # noqa: E402

book_env.apply()


def execute(path: Path, timeout: int = 900) -> float:
    nb = nbformat.read(path, as_version=4)
    client = NotebookClient(nb, timeout=timeout, kernel_name="python3",
                            resources={"metadata": {"path": str(path.parent)}})
    start = time.perf_counter()
    client.execute()
    seconds = time.perf_counter() - start
    nb.metadata.pop("widgets", None) if not _has_widgets(nb) else None
    atomic_write_text(path, nbformat.writes(nb) + "\n")
    return seconds


def _has_widgets(nb) -> bool:
    return any("application/vnd.jupyter.widget-view+json" in out.get("data", {})
               for cell in nb.cells if cell.cell_type == "code" for out in cell.get("outputs", []))


def _run(path: Path) -> tuple[Path, float | None, str]:
    try:
        return path, execute(path), ""
    except CellExecutionError as exc:
        return path, None, str(exc)[-3000:]


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--jobs", type=int, default=1, help="notebooks run at a time")
    parser.add_argument("paths", nargs="*", type=Path)
    args = parser.parse_args(argv)
    if args.jobs < 1:
        parser.error("--jobs must be a positive int")
    paths = args.paths or sorted(Path("chapters").rglob("*.ipynb"))
    paths = [p for p in paths if ".ipynb_checkpoints" not in p.parts]
    failed = []
    total = 0.0
    start = time.perf_counter()
    with ProcessPoolExecutor(max_workers=min(args.jobs, len(paths))) as pool:
        for path, seconds, error in pool.map(_run, paths):
            if seconds is None:
                print(f"FAILED  {path}\n{error}", file=sys.stderr)
                failed.append(path)
                continue
            total += seconds
            print(f"{seconds:7.1f} s  {path}", flush=True)
    print(f"{total:7.1f} s  total for {len(paths) - len(failed)} notebook(s); "
          f"{time.perf_counter() - start:.1f} s wall with {args.jobs} job(s)")
    if failed:
        print(f"{len(failed)} notebook(s) failed: {', '.join(map(str, failed))}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
