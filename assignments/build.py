"""Build every assignment: student copies and autograder zips (``make assignments``).

Each folder ``assignments/<name>/`` holds a master notebook ``<name>.ipynb`` in otter-grader's
assign format (questions, solutions, public and hidden tests) and, optionally, a
``prepare.py`` that writes support files next to it (assignment 04's held-out set). For each
one this script

1. copies the folder to ``<out>/.staging/<name>/`` (the repository stays untouched; the copy
   is deleted at the end), runs ``prepare.py`` there, writes ``requirements.txt`` (tlutils
   from the book's repository) and puts the Colab setup cell (:func:`setup_cell`) in the cell
   tagged ``setup``;
2. runs ``otter assign``, which strips the solutions and hidden tests from the student copy
   and, unless ``--no-run-tests``, checks that the solutions pass every test;
3. leaves ``<out>/<name>/student/<name>.ipynb`` (hand this out) and
   ``<out>/<name>/autograder/<name>-autograder.zip`` (grade with it: ``assignments/grade.py``).

Usage: ``python assignments/build.py [--out _build/assignments] [--no-run-tests] [name ...]``
"""

from __future__ import annotations

import argparse
import shutil
import subprocess
import sys
import time
from pathlib import Path

import nbformat

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
sys.path.insert(0, str(ROOT))
from tools.notebook_cells import (  # noqa: E402
    CONSTRAINTS_FILE,
    constraints_code,
    pip_target,
)


def masters() -> dict[str, Path]:
    """``{name: master notebook}`` for every ``assignments/<name>/<name>.ipynb``."""
    return {p.parent.name: p for p in sorted(HERE.glob("*/*.ipynb"))
            if p.stem == p.parent.name}


def setup_cell(name: str) -> str:
    """The first code cell of every student copy: installs what Colab lacks, only in Colab.

    Otter reads public tests from a ``tests/`` folder in Colab, so the cell also writes them out
    of the notebook's own metadata, which it gets from Colab. ``TLUTILS_PIP`` overrides what is
    installed for tlutils (the tests install a locally built wheel).
    """
    return (
        "# Setup: in Google Colab, install tlutils (the book's helper package, at the release\n"
        "# the book was run with) and otter-grader (the autograder), adding only what Colab\n"
        "# lacks, and save this notebook's public tests to tests/. Elsewhere this cell does\n"
        "# nothing.\n"
        "import os\n"
        "import sys\n"
        "\n"
        'if "google.colab" in sys.modules:\n'
        + constraints_code() + "\n"
        "    # TLUTILS_PIP may name another source (the book's tests install a local build).\n"
        '    TLUTILS_PIP = os.environ.get("TLUTILS_PIP") or (\n'
        f'        "{pip_target().split(" @ ")[0]} @ "\n'
        f'        "{pip_target().split(" @ ")[1]}")\n'
        f'    %pip install -q -c {CONSTRAINTS_FILE} "$TLUTILS_PIP" "otter-grader>=7,<8"\n'
        "    import json\n"
        "    from google.colab import _message  # asks Colab for this notebook's contents\n"
        "\n"
        '    notebook = _message.blocking_request("get_ipynb")["ipynb"]\n'
        '    os.makedirs("tests", exist_ok=True)\n'
        '    for question, test in notebook["metadata"]["otter"]["tests"].items():\n'
        '        with open(f"tests/{question}.py", "w") as f:\n'
        "            f.write(test)\n"
        f'    with open("{name}.ipynb", "w") as f:\n'
        "        json.dump(notebook, f)"
    )


def requirements() -> str:
    """What the grading environment needs beyond otter-grader (for ``otter grade``'s Docker
    image or Gradescope; ``otter run`` uses the current environment)."""
    return f"{pip_target()}\n"


def stage(name: str, master: Path, staging: Path) -> Path:
    """Copy the master's folder to ``staging`` and prepare it for ``otter assign``."""
    if staging.exists():
        shutil.rmtree(staging)
    shutil.copytree(master.parent, staging,
                    ignore=shutil.ignore_patterns("__pycache__", ".ipynb_checkpoints"))
    prepare = staging / "prepare.py"
    if prepare.exists():
        subprocess.run([sys.executable, prepare.name], cwd=staging, check=True)
    (staging / "requirements.txt").write_text(requirements())
    path = staging / master.name
    nb = nbformat.read(path, as_version=4)
    cells = [c for c in nb.cells if "setup" in c.metadata.get("tags", [])]
    if len(cells) != 1:
        raise ValueError(f"{master}: needs exactly one cell tagged 'setup', found {len(cells)}")
    cells[0].source = setup_cell(name)
    nbformat.write(nb, path)
    return path


def build(name: str, master: Path, out: Path, *, run_tests: bool = True) -> Path:
    """Stage, assign and tidy one assignment; return its output folder."""
    staged = stage(name, master, out / ".staging" / name)
    result = out / name
    if result.exists():
        shutil.rmtree(result)
    cmd = [sys.executable, "-m", "otter", "assign", staged.name, str(result.resolve())]
    if not run_tests:
        cmd.insert(4, "--no-run-tests")
    proc = subprocess.run(cmd, cwd=staged.parent, capture_output=True, text=True)
    if proc.returncode != 0:
        raise RuntimeError(f"otter assign failed for {name}:\n{proc.stdout[-3000:]}"
                           f"\n{proc.stderr[-3000:]}")
    zips = sorted((result / "autograder").glob(f"{name}-autograder_*.zip"))
    if len(zips) != 1:
        raise RuntimeError(f"expected one autograder zip for {name}, found {zips}")
    zips[0].rename(result / "autograder" / f"{name}-autograder.zip")
    shutil.rmtree(staged.parent)  # it holds the solutions and the held-out files
    return result


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("names", nargs="*", help="assignments to build (default: all)")
    parser.add_argument("--out", type=Path, default=ROOT / "_build" / "assignments")
    parser.add_argument("--no-run-tests", action="store_true",
                        help="skip otter's check that the solutions pass their tests")
    args = parser.parse_args(argv)
    found = masters()
    unknown = [n for n in args.names if n not in found]
    if unknown:
        parser.error(f"unknown assignments {unknown}; known: {sorted(found)}")
    args.out.mkdir(parents=True, exist_ok=True)
    for name in args.names or sorted(found):
        start = time.perf_counter()
        result = build(name, found[name], args.out, run_tests=not args.no_run_tests)
        checked = "solutions checked" if not args.no_run_tests else "solutions not checked"
        shown = result.relative_to(ROOT) if result.is_relative_to(ROOT) else result
        print(f"{name:<22} {time.perf_counter() - start:6.1f} s  {checked}  -> {shown}")
    shutil.rmtree(args.out / ".staging", ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
