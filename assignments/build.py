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
3. packs the student copy's files (the public tests, ``tests/<question>.py``, and the files of
   the assignment config's ``files``) into ``<name>-files.zip`` beside it, for Colab;
4. leaves ``<out>/<name>/student/`` (hand this out: ``<name>.ipynb`` with ``<name>-files.zip``,
   or the whole folder) and ``<out>/<name>/autograder/<name>-autograder.zip`` (grade with it:
   ``assignments/grade.py``).

Colab follows otter-grader's documented route: every master's assignment config says
``runs_on: colab`` with ``tests: files: true`` (the public tests are files in ``tests/``, not
notebook metadata, which Colab cannot give the kernel, since it keeps no copy of the notebook
beside it). The student copy's setup cell puts those files beside the kernel: it unpacks them
from ``<name>-files.zip``, which the student uploads when asked (``google.colab.files.upload``).

Usage: ``python assignments/build.py [--out _build/assignments] [--no-run-tests] [name ...]``
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
import zipfile
from pathlib import Path

import nbformat
import yaml

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
sys.path.insert(0, str(ROOT))
from tools.notebook_cells import (  # noqa: E402
    CONSTRAINTS_FILE,
    constraints_code,
    pip_target,
)

#: In the autograder zip: the support files that the student copy has too (``grade.py``).
STUDENT_FILES = "student_files.json"


def masters() -> dict[str, Path]:
    """``{name: master notebook}`` for every ``assignments/<name>/<name>.ipynb``."""
    return {p.parent.name: p for p in sorted(HERE.glob("*/*.ipynb"))
            if p.stem == p.parent.name}


def files_zip(name: str) -> str:
    """The name of the zip that carries an assignment's files to Colab."""
    return f"{name}-files.zip"


def _config(nb) -> dict:
    """A master's assignment config (its ``# ASSIGNMENT CONFIG`` raw cell)."""
    for cell in nb.cells:
        if cell.cell_type == "raw" and cell.source.lstrip().upper().startswith(
                "# ASSIGNMENT CONFIG"):
            return yaml.safe_load(cell.source) or {}
    raise ValueError("no ASSIGNMENT CONFIG cell")


def student_files(master: Path) -> list[str]:
    """What the student copy needs beside the notebook: the public tests
    (``tests/<question>.py``, one per question) and the config's ``files``."""
    nb = nbformat.read(master, as_version=4)
    config = _config(nb)
    if config.get("runs_on") != "colab" or not (config.get("tests") or {}).get("files"):
        raise ValueError(f"{master}: the assignment config needs runs_on: colab and "
                         "tests: files: true (otter's route for Colab)")
    questions = []
    for cell in nb.cells:
        text = cell.source.strip()
        if cell.cell_type == "raw" and text.upper().startswith("# BEGIN QUESTION"):
            questions.append(str(yaml.safe_load(text)["name"]))
    extra = [str(f) for f in config.get("files") or []]
    return [f"tests/{q}.py" for q in questions] + extra


def setup_cell(name: str, files: list[str] | tuple[str, ...] = ()) -> str:
    """The first code cell of every student copy: installs what Colab lacks, only in Colab.

    Otter reads the public tests from a ``tests/`` folder beside the kernel (otter's Colab
    route: ``runs_on: colab``), and Colab keeps no copy of the notebook there, so in Colab the
    cell also unpacks ``files`` (:func:`student_files`: the tests and the assignment's other
    files) from :func:`files_zip`, asking the student to upload it (``google.colab.files``)
    unless it is already there. ``TLUTILS_PIP`` overrides what is installed for tlutils (the
    tests install a locally built wheel).
    """
    archive = files_zip(name)
    needed = "".join(f"        {json.dumps(f)},\n" for f in files)
    return (
        "# Setup: in Google Colab, install tlutils (the book's helper package, at the release\n"
        "# the book was run with) and otter-grader (the autograder), adding only what Colab\n"
        "# lacks, and unpack this assignment's files (its public tests, in tests/) from\n"
        f"# {archive}, which came with this notebook. Elsewhere this cell does\n"
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
        '    OTTER = "otter-grader>=7,<8"\n'
        f'    %pip install -q -c {CONSTRAINTS_FILE} "$TLUTILS_PIP" "$OTTER"\n'
        "    # otter reads the public tests from tests/ beside the kernel, and Colab keeps no\n"
        "    # copy of this notebook there: unpack them (and the assignment's other files)\n"
        "    # from the zip that came with the notebook.\n"
        "    import zipfile\n"
        "    from io import BytesIO\n"
        "\n"
        "    from google.colab import files\n"
        "\n"
        f'    ARCHIVE = "{archive}"\n'
        "    NEEDED = [\n"
        + needed +
        "    ]\n"
        "    if not all(os.path.isfile(path) for path in NEEDED):\n"
        "        if os.path.isfile(ARCHIVE):\n"
        '            with open(ARCHIVE, "rb") as f:\n'
        "                uploads = {ARCHIVE: f.read()}\n"
        "        else:\n"
        '            print(f"Upload {ARCHIVE}, which came with this notebook:")\n'
        "            uploads = files.upload()\n"
        "        for content in uploads.values():\n"
        "            if zipfile.is_zipfile(BytesIO(content)):\n"
        "                with zipfile.ZipFile(BytesIO(content)) as archive:\n"
        "                    for path in NEEDED:\n"
        "                        if path in archive.namelist():\n"
        "                            archive.extract(path)\n"
        "    missing = [path for path in NEEDED if not os.path.isfile(path)]\n"
        "    if missing:\n"
        "        raise FileNotFoundError(\n"
        '            f"{missing} not found: upload {ARCHIVE} (it came with this notebook) "\n'
        '            "when this cell asks for it, or put its files beside the notebook, then "\n'
        '            "run this cell again")'
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
    cells[0].source = setup_cell(name, student_files(master))
    nbformat.write(nb, path)
    return path


def pack_student_files(name: str, student: Path, files: list[str]) -> Path:
    """Write ``student/<name>-files.zip`` holding ``files`` (paths in ``student``), the same
    bytes for the same files (fixed timestamps, sorted), atomically (temp file + rename)."""
    found = sorted(p.relative_to(student).as_posix() for p in student.rglob("*")
                   if p.is_file() and p.suffix != ".ipynb")
    if found != sorted(files):
        raise RuntimeError(f"{name}: the student copy holds {found}, not the expected {files}")
    target = student / files_zip(name)
    fd, tmp = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".tmp", dir=student)
    os.close(fd)
    try:
        with zipfile.ZipFile(tmp, "w", zipfile.ZIP_DEFLATED) as zf:
            for rel in sorted(files):
                info = zipfile.ZipInfo(rel, date_time=(1980, 1, 1, 0, 0, 0))
                info.compress_type = zipfile.ZIP_DEFLATED
                info.external_attr = 0o644 << 16
                zf.writestr(info, (student / rel).read_bytes())
        os.replace(tmp, target)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)
    return target


def add_student_files(autograder: Path, student: Path, files: list[str]) -> None:
    """Put the student copy's ``files`` into the autograder zip too, as support files
    (``files/<path>``), with ``student_files.json`` listing them: ``grade.py`` runs each
    submission beside exactly these (public tests included), as the student ran it. A file
    the zip has already (the config's ``files``) must be byte-identical. Atomic rewrite."""
    with zipfile.ZipFile(autograder) as src:
        entries = [(info, src.read(info)) for info in src.infolist()]
    present = {info.filename: data for info, data in entries}
    added = []
    for rel in sorted(files):
        data = (student / rel).read_bytes()
        key = f"files/{rel}"
        if key in present:
            if present[key] != data:
                raise RuntimeError(f"{autograder.name}: {key} differs from the student copy's")
        else:
            added.append((key, data))
    fd, tmp = tempfile.mkstemp(prefix=f".{autograder.name}.", suffix=".tmp",
                               dir=autograder.parent)
    os.close(fd)
    try:
        with zipfile.ZipFile(tmp, "w", zipfile.ZIP_DEFLATED) as dst:
            for info, data in entries:
                dst.writestr(info, data)
            for key, data in added:
                dst.writestr(zipfile.ZipInfo(key, date_time=(1980, 1, 1, 0, 0, 0)), data,
                             compress_type=zipfile.ZIP_DEFLATED)
            dst.writestr(zipfile.ZipInfo(STUDENT_FILES, date_time=(1980, 1, 1, 0, 0, 0)),
                         json.dumps(sorted(files), indent=1) + "\n")
        os.replace(tmp, autograder)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)


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
    autograder = result / "autograder" / f"{name}-autograder.zip"
    zips[0].rename(autograder)
    files = student_files(master)
    pack_student_files(name, result / "student", files)
    add_student_files(autograder, result / "student", files)
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
