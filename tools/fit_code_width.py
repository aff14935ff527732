"""Make notebook code fit the book's text column: ``ruff format`` at 88 characters.

The built book's text column shows about 88 characters of code at a 1280-pixel-wide window;
longer lines scroll sideways (``tests/test_browser.py`` checks every page). This tool
formats the code cells of the given notebooks (or every notebook under the given folders)
with ``ruff format --line-length 88`` and writes them back as nbformat writes them (outputs
and metadata untouched, so no re-execution is needed). ``ruff format`` cannot split a long
string or comment; such lines are listed, to be shortened by hand.

Setup cells (tag ``setup``) are skipped: their text is ``tools/notebook_cells.py::SETUP_CELL``
verbatim, and the book hides them.

    python tools/fit_code_width.py chapters          # reformat in place
    python tools/fit_code_width.py --check chapters  # exit 1 if anything is left to do
                                                     # (what `make lint` runs)
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
from pathlib import Path

import nbformat

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

LINE_LENGTH = 88
SKIP_TAGS = {"setup"}
RUFF = Path(sys.executable).parent / "ruff"


def _notebooks(paths: list[str]) -> list[Path]:
    out: list[Path] = []
    for raw in paths:
        path = Path(raw)
        if path.is_dir():
            out += sorted(p for p in path.rglob("*.ipynb") if ".ipynb_checkpoints" not in p.parts)
        elif path.suffix == ".ipynb" and path.exists():
            out.append(path)
        else:
            raise SystemExit(f"not a notebook or folder: {raw}")
    return out


def _cells(nb) -> list[int]:
    return [i for i, c in enumerate(nb.cells) if c.cell_type == "code"
            and not SKIP_TAGS & set(c.get("metadata", {}).get("tags", []))]


def format_sources(sources: list[str], line_length: int = LINE_LENGTH) -> list[str]:
    """``sources`` (code cells, IPython magics allowed) as ``ruff format`` leaves them."""
    if not sources:
        return []
    scratch = {"cells": [{"cell_type": "code", "execution_count": None, "id": f"c{i}",
                          "metadata": {}, "outputs": [], "source": s}
                         for i, s in enumerate(sources)],
               "metadata": {"kernelspec": {"name": "python3", "display_name": "Python 3",
                                           "language": "python"},
                            "language_info": {"name": "python"}},
               "nbformat": 4, "nbformat_minor": 5}
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "cells.ipynb"
        path.write_text(json.dumps(scratch), encoding="utf-8")
        proc = subprocess.run([str(RUFF if RUFF.exists() else "ruff"), "format", "--isolated",
                               f"--line-length={line_length}", str(path)],
                              capture_output=True, text=True)
        if proc.returncode != 0:
            raise RuntimeError(f"ruff format failed:\n{proc.stderr[-2000:]}")
        formatted = json.loads(path.read_text(encoding="utf-8"))
    out = []
    for cell in formatted["cells"]:
        src = cell["source"]
        out.append("".join(src) if isinstance(src, list) else src)
    return out


def long_lines(source: str, line_length: int = LINE_LENGTH) -> list[str]:
    return [line for line in source.splitlines() if len(line) > line_length]


def process(path: Path, *, check: bool, line_length: int = LINE_LENGTH) -> list[str]:
    """Format (or, with ``check``, only inspect) one notebook; returns the problems left."""
    nb = nbformat.read(path, as_version=4)
    index = _cells(nb)
    before = [nb.cells[i].source for i in index]
    after = format_sources(before, line_length)
    problems = []
    changed = [i for i, a, b in zip(index, after, before) if a != b]
    if check and changed:
        problems.append(f"{path}: {len(changed)} code cells are not formatted "
                        f"(run: python tools/fit_code_width.py {path})")
    if not check and changed:
        for i, src in zip(index, after):
            nb.cells[i].source = src
        # Imported here: tlutils imports TensorFlow (~5 s of CPU), which --check never needs.
        from tlutils.io import atomic_write_text

        atomic_write_text(path, nbformat.writes(nb) + "\n")
    for i, src in zip(index, after):
        for line in long_lines(src, line_length):
            problems.append(f"{path}: cell {i}: {len(line)} > {line_length} characters: "
                            f"{line.strip()[:60]}...")
    return problems


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("paths", nargs="+", help="notebooks or folders of notebooks")
    parser.add_argument("--check", action="store_true",
                        help="change nothing; exit 1 if a cell needs formatting or is too wide")
    parser.add_argument("--line-length", type=int, default=LINE_LENGTH)
    args = parser.parse_args(argv)
    problems = []
    for path in _notebooks(args.paths):
        problems += process(path, check=args.check, line_length=args.line_length)
    for p in problems:
        print(p)
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
