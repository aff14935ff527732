"""The assignments' grading is real: solutions score 100%, untouched student copies score below
50%, and a batch survives submissions that raise, hang or delete files.

One session-scoped ``otter assign`` run (without otter's own solution check, which the
100% test repeats) feeds every test. Grading runs through ``assignments/grade.py`` (student code
in a bubblewrap sandbox, tests in the grader; skipped without bwrap); the whole file takes a few
minutes. ``tests/test_grading_attacks.py`` attacks the grader.
"""

from __future__ import annotations

import csv
import json
import os
import re
import sys
import zipfile
from pathlib import Path

import nbformat
import pytest
import yaml

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "assignments"))
sys.path.insert(0, str(ROOT))

import build  # noqa: E402
import grade  # noqa: E402
import sandbox  # noqa: E402

from tools.notebook_cells import release_tag, repository_url  # noqa: E402

MASTERS = build.masters()
#: Colab's private API (``google.colab._message`` and any other underscored name).
PRIVATE_COLAB = re.compile(
    r"\b_message\b|google\.colab\._|from\s+google\.colab\s+import\s+[^\n]*\b_\w")
CHAPTERS = {"ch01_02_foundations", "ch03_algorithms", "ch04_fine_tuning", "ch05_coral",
            "ch06_practice"}


@pytest.fixture(scope="session", autouse=True)
def _data_dir():
    """Real MNIST when the shared copy is there (the Makefile sets this too)."""
    shared = ROOT.parent / "shared" / "data" / "mnist"
    if "TLUTILS_DATA_DIR" not in os.environ and shared.is_dir():
        os.environ["TLUTILS_DATA_DIR"] = str(shared)
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    os.environ.setdefault("TF_ENABLE_ONEDNN_OPTS", "0")


@pytest.fixture(scope="session")
def built(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("assignments")
    for name, master in MASTERS.items():
        build.build(name, master, out, run_tests=False)
    return out


def _zip(built: Path, name: str) -> Path:
    return built / name / "autograder" / f"{name}-autograder.zip"


def _needs_bwrap() -> None:
    if not sandbox.bwrap_available():
        pytest.skip("bubblewrap (bwrap) is not installed or cannot create namespaces here; "
                    "sandboxed grading cannot run (apt-get install bubblewrap)")


@pytest.fixture(scope="session")
def graded(built, tmp_path_factory) -> dict[str, dict[str, dict]]:
    """``{name: {"solution": row, "student": row}}`` from sandboxed grading of every master's
    solution notebook and of every untouched student copy."""
    _needs_bwrap()
    out = tmp_path_factory.mktemp("grades")
    rows = {}
    for name in MASTERS:
        rows[name] = {}
        for kind, nb in (("solution", built / name / "autograder" / f"{name}.ipynb"),
                         ("student", built / name / "student" / f"{name}.ipynb")):
            (row,) = grade.grade([nb], _zip(built, name), out / name / kind, timeout=600)
            rows[name][kind] = row
    return rows


# ---------------------------------------------------------------------------------------------
# The masters themselves (no otter run needed)
# ---------------------------------------------------------------------------------------------

def _config(nb) -> dict:
    for cell in nb.cells:
        if cell.cell_type == "raw" and cell.source.lstrip().lower().startswith("# assignment config"):
            return yaml.safe_load(cell.source)
    raise AssertionError("no ASSIGNMENT CONFIG cell")


def _questions(nb) -> dict[str, list[dict]]:
    """``{question: [test config, ...]}`` parsed from a master's raw block cells."""
    questions: dict[str, list[dict]] = {}
    current = None
    for cell in nb.cells:
        text = cell.source.strip()
        if cell.cell_type == "raw" and text.upper().startswith("# BEGIN QUESTION"):
            current = yaml.safe_load(text)["name"]
            questions[current] = []
        elif cell.cell_type == "raw" and text.upper().startswith("# END QUESTION"):
            current = None
        elif current and cell.cell_type == "code" and "# BEGIN TEST CONFIG" in text:
            block = text.split('"""')[1].split("# BEGIN TEST CONFIG", 1)[1]
            questions[current].append(yaml.safe_load(block) or {})
    return questions


def test_one_master_per_chapter():
    assert set(MASTERS) == CHAPTERS


@pytest.mark.parametrize("name", sorted(MASTERS))
def test_master_layout(name):
    nb = nbformat.read(MASTERS[name], as_version=4)
    assert nb.metadata["kernelspec"]["name"] == "python3"
    assert _config(nb)["name"] == name
    code = [c for c in nb.cells if c.cell_type == "code"]
    assert "setup" in code[0].metadata.get("tags", []), "the first code cell is the setup cell"
    imports = next(c for c in code if "import tlutils" in c.source)
    assert imports.source.lstrip().startswith("import tlutils"), "import tlutils comes first"
    questions = _questions(nb)
    assert 3 <= len(questions) <= 6, questions
    for q, tests in questions.items():
        assert any(t.get("hidden") for t in tests), f"{name} {q}: no hidden test"
        assert any(not t.get("hidden") for t in tests), f"{name} {q}: no public test"
        assert all(t.get("points", 0) > 0 for t in tests), f"{name} {q}: a test has no points"


def test_setup_cell_installs_only_in_colab():
    cell = build.setup_cell("demo", ["tests/q1.py", "data.npz"])
    assert cell.count('if "google.colab" in sys.modules:') == 1
    body = cell.split('if "google.colab" in sys.modules:')[1]
    assert all(line.startswith("    ") for line in body.splitlines() if line.strip()), \
        "everything after the Colab test must be inside it"
    assert f"git+{repository_url()}@{release_tag()}" in cell
    assert "otter-grader" in cell
    # otter's Colab route: the files come from the zip handed out with the notebook, through
    # Colab's public upload API, never from Colab's private messaging
    assert "from google.colab import files" in cell and "files.upload()" in cell
    assert "demo-files.zip" in cell and '"tests/q1.py"' in cell and '"data.npz"' in cell
    assert not PRIVATE_COLAB.search(cell)


@pytest.mark.parametrize("name", sorted(MASTERS))
def test_masters_take_otters_colab_route(name):
    """``runs_on: colab`` with tests as files (otter refuses metadata tests on Colab)."""
    nb = nbformat.read(MASTERS[name], as_version=4)
    config = _config(nb)
    assert config["runs_on"] == "colab"
    assert config["tests"]["files"] is True
    questions = list(_questions(nb))
    assert build.student_files(MASTERS[name]) == [f"tests/{q}.py" for q in questions] + [
        str(f) for f in config.get("files") or []]


# ---------------------------------------------------------------------------------------------
# What otter assign produced
# ---------------------------------------------------------------------------------------------

@pytest.mark.parametrize("name", sorted(CHAPTERS))
def test_student_copy_hides_solutions_and_hidden_tests(built, name):
    folder = built / name / "student"
    student = nbformat.read(folder / f"{name}.ipynb", as_version=4)
    code = [c for c in student.cells if c.cell_type == "code"]
    assert code[0].source == build.setup_cell(name, build.student_files(MASTERS[name]))
    assert "tests" not in student.metadata.get("otter", {}), "tests are files (Colab route)"
    tests = {p.stem: p.read_text() for p in sorted((folder / "tests").glob("*.py"))}
    assert tests and all("hidden=False" in t and "hidden=True" not in t for t in tests.values())
    text = "\n".join(c.source for c in student.cells)
    assert "# BEGIN SOLUTION" not in text and "# SOLUTION" not in text
    answers = [c for c in code if "otter_answer_cell" in c.metadata.get("tags", [])]
    assert len(answers) == len(tests) and all("..." in c.source for c in answers)
    with zipfile.ZipFile(_zip(built, name)) as zf:
        hidden = [n for n in zf.namelist() if n.startswith("tests/")
                  and "hidden=True" in zf.read(n).decode()]
    assert len(hidden) == len(tests), "every question has hidden tests in the autograder"


@pytest.mark.parametrize("name", sorted(CHAPTERS))
def test_files_zip_and_autograder_carry_the_student_files(built, name):
    """The zip a Colab student uploads holds exactly the student copy's files (public tests
    and the config's ``files``), byte for byte, and so does the autograder zip (as support
    files, listed in ``student_files.json``), so grading runs the notebook beside them."""
    folder = built / name / "student"
    expected = build.student_files(MASTERS[name])
    with zipfile.ZipFile(folder / build.files_zip(name)) as zf:
        assert sorted(zf.namelist()) == sorted(expected)
        packed = {n: zf.read(n) for n in zf.namelist()}
    assert all(packed[n] == (folder / n).read_bytes() for n in expected)
    with zipfile.ZipFile(_zip(built, name)) as zf:
        assert json.loads(zf.read(build.STUDENT_FILES)) == sorted(expected)
        assert all(zf.read(f"files/{n}") == packed[n] for n in expected)
    ag = grade.read_autograder(_zip(built, name))
    assert grade.STUDENT_FILES == build.STUDENT_FILES
    assert ag.student_files == sorted(expected)
    assert not any("heldout" in n for n in ag.student_files)


def test_build_writes_no_private_colab_api(built):
    """Nothing ``make assignments`` writes (notebooks, tests, zips and what they hold) uses
    Colab's private API (``google.colab._message``, or any underscored name)."""
    seen = 0
    for path in sorted(built.rglob("*")):
        if not path.is_file():
            continue
        blobs = {str(path): path.read_bytes()}
        if path.suffix == ".zip":
            with zipfile.ZipFile(path) as zf:
                blobs.update({f"{path}:{n}": zf.read(n) for n in zf.namelist()})
        for where, blob in blobs.items():
            seen += 1
            match = PRIVATE_COLAB.search(blob.decode("utf-8", "replace"))
            assert not match, f"{where} uses Colab's private API: {match.group(0)!r}"
    assert seen > 5 * len(CHAPTERS)


def test_ch04_student_and_grader_share_one_source_model(built):
    """Assignment 04's source model is one file, byte-identical in the student copy, the
    Colab zip and the autograder, equal to the model zoo's, and the notebook loads it."""
    name = "ch04_fine_tuning"
    weights = "source_model.weights.h5"
    student = built / name / "student"
    shipped = (student / weights).read_bytes()
    with zipfile.ZipFile(student / build.files_zip(name)) as zf:
        assert zf.read(weights) == shipped
    with zipfile.ZipFile(_zip(built, name)) as zf:
        assert zf.read(f"files/{weights}") == shipped
    assert weights in grade.read_autograder(_zip(built, name)).student_files
    from tlutils import zoo

    _, entry = zoo.source_model()
    assert Path(entry.path).read_bytes() == shipped, "not the zoo's source model"
    for copy in (student / f"{name}.ipynb", built / name / "autograder" / f"{name}.ipynb"):
        code = "\n".join(c.source for c in nbformat.read(copy, as_version=4).cells
                         if c.cell_type == "code")
        assert f'load_weights("{weights}")' in code
        assert "zoo.source_model(" not in code, "the notebook must not train its own source"


def test_heldout_set_only_in_autograder(built):
    name = "ch04_fine_tuning"
    with zipfile.ZipFile(_zip(built, name)) as zf:
        assert "files/heldout_digits.npz" in zf.namelist()
    assert not list((built / name / "student").rglob("*.npz"))
    assert not (ROOT / "assignments" / name / "heldout_digits.npz").exists(), \
        "the held-out set is written only in the build folder"


# ---------------------------------------------------------------------------------------------
# Grading (assignments/grade.py)
# ---------------------------------------------------------------------------------------------

@pytest.mark.parametrize("name", sorted(CHAPTERS))
def test_solutions_score_full_marks(graded, name):
    row = graded[name]["solution"]
    assert row["status"] == "graded", row
    assert row["percent"] == 100.0, row


@pytest.mark.parametrize("name", sorted(CHAPTERS))
def test_untouched_student_copy_scores_below_half(graded, name):
    row = graded[name]["student"]
    assert row["status"] == "graded", row
    assert row["percent"] < 50.0, row


def _variant(student: Path, dest: Path, source: str) -> Path:
    """The student copy (its otter metadata intact) with ``source`` as its only code."""
    nb = nbformat.read(student, as_version=4)
    nb.cells = [nbformat.v4.new_code_cell(source)]
    nbformat.write(nb, dest)
    return dest


def test_bad_submissions_do_not_sink_the_batch(built, tmp_path):
    _needs_bwrap()
    name = "ch03_algorithms"
    student = built / name / "student" / f"{name}.ipynb"
    subs = tmp_path / "submissions"
    subs.mkdir()
    good = subs / "a_good.ipynb"
    good.write_bytes((built / name / "autograder" / f"{name}.ipynb").read_bytes())
    deletes = _variant(student, subs / "b_deletes.ipynb", (
        "import shutil\nfrom pathlib import Path\n"
        "# delete the grading folder around this notebook (everything it can write), but only\n"
        "# inside the sandbox's scratch folder (its /tmp), whatever happens\n"
        "here = Path.cwd().resolve().parent\n"
        "assert str(here) == '/tmp', here\n"
        "shutil.rmtree(here)"))
    hangs = _variant(student, subs / "c_hangs.ipynb",
                     "import time\nwhile True:  # never finishes (sleeping, to spare the CPU)\n"
                     "    time.sleep(0.5)")
    raises = _variant(student, subs / "d_raises.ipynb", "raise RuntimeError('student bug')")
    out = tmp_path / "grades"
    # The timeout is per submission: the hanging one costs exactly this long. The good one
    # needs about 10 s here (25 s under a loaded CI), so 60 s leaves a wide margin.
    rows = grade.grade([good, deletes, hangs, raises], _zip(built, name), out, timeout=60)
    by_name = {r["submission"]: r for r in rows}
    assert by_name["a_good.ipynb"]["percent"] == 100.0
    assert by_name["b_deletes.ipynb"]["score"] == 0.0
    assert by_name["b_deletes.ipynb"]["status"] in ("error", "graded")
    assert by_name["c_hangs.ipynb"]["status"] == "timeout"
    assert by_name["c_hangs.ipynb"]["score"] == 0.0
    assert by_name["d_raises.ipynb"]["status"] == "graded"
    assert by_name["d_raises.ipynb"]["score"] == 0.0
    # what is on disk at the end still has every submission, the first one with full marks
    with open(out / "grades.csv") as fh:
        on_disk = {r["submission"]: r for r in csv.DictReader(fh)}
    assert set(on_disk) == {p.name for p in (good, deletes, hangs, raises)}
    assert float(on_disk["a_good.ipynb"]["percent"]) == 100.0
    assert json.loads((out / "a_good.json").read_text())["tests"]
    # and the hanging kernel was stopped with the run
    import psutil

    leftovers = [p for p in psutil.Process().children(recursive=True) if p.is_running()]
    assert not leftovers, leftovers


def test_grade_rejects_bad_input(built, tmp_path):
    name = "ch03_algorithms"
    with pytest.raises(ValueError, match="autograder"):
        grade.grade([], tmp_path / "missing.zip", tmp_path)
    with pytest.raises(ValueError, match="timeout"):
        grade.grade([], _zip(built, name), tmp_path, timeout=0)
    points = grade.possible_points(_zip(built, name))
    assert set(points) == {"q1", "q2", "q3", "q4", "q5"} and all(p > 0 for p in points.values())
    # student_files.json may only name the zip's own support files
    for listed in (["missing.npz"], "tests/q1.py", [1]):
        bad = tmp_path / f"{name}-autograder.zip"
        with zipfile.ZipFile(_zip(built, name)) as src, zipfile.ZipFile(bad, "w") as dst:
            for item in src.namelist():
                if item != build.STUDENT_FILES:
                    dst.writestr(item, src.read(item))
            dst.writestr(build.STUDENT_FILES, json.dumps(listed))
        with pytest.raises(ValueError, match="student_files.json"):
            grade.read_autograder(bad)
