"""tools/fit_code_width.py: notebook code formatted to the book's 88-character column."""

from __future__ import annotations

import sys
from pathlib import Path

import nbformat

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tools"))
import fit_code_width  # noqa: E402

LONG_CALL = ("result = some_function(first_argument=1, second_argument=2, "
             "third_argument=3, fourth_argument=4)")
SETUP = "x = 'a setup line that is much longer than eighty-eight characters, left alone by the tool'"


def _notebook(tmp_path: Path, *sources: str, setup: str | None = None) -> Path:
    nb = nbformat.v4.new_notebook()
    if setup is not None:
        cell = nbformat.v4.new_code_cell(setup)
        cell.metadata["tags"] = ["setup"]
        nb.cells.append(cell)
    nb.cells += [nbformat.v4.new_code_cell(s) for s in sources]
    nb.cells.append(nbformat.v4.new_markdown_cell("# " + "long markdown " * 20))
    path = tmp_path / "nb.ipynb"
    nbformat.write(nb, path)
    return path


def test_check_reports_and_format_fixes(tmp_path):
    path = _notebook(tmp_path, LONG_CALL, "%matplotlib inline\ny = 1", setup=SETUP)
    problems = fit_code_width.process(path, check=True)
    assert len(problems) == 1 and "not formatted" in problems[0]
    assert nbformat.read(path, 4).cells[1].source == LONG_CALL  # --check changes nothing
    assert fit_code_width.process(path, check=False) == []
    nb = nbformat.read(path, 4)
    assert nb.cells[0].source == SETUP  # setup cells are the tool's business no more
    assert all(len(line) <= 88 for line in nb.cells[1].source.splitlines())
    assert nb.cells[2].source.startswith("%matplotlib inline")  # magics survive
    assert fit_code_width.process(path, check=True) == []


def test_lines_ruff_cannot_split_are_listed(tmp_path):
    long_string = 'print("' + "word " * 25 + '")'
    path = _notebook(tmp_path, long_string)
    problems = fit_code_width.process(path, check=False)
    assert len(problems) == 1 and "> 88 characters" in problems[0]
    assert fit_code_width.main(["--check", str(path)]) == 1
