"""Grade a batch of submissions so that no submission can forge its grade or touch another's.

Grading has two phases per submission (see ``appendices/instructors.md``, "Collect and grade",
for the threat model):

1. **The student's code runs in a sandbox** (:mod:`sandbox`: bubblewrap, read-only file system,
   no network, its own PID namespace, resource limits, a private scratch folder, ``HOME`` and
   model-zoo copy). It executes the notebook and exports the *answers* the tests name, as data
   (JSON and ``.npy``/``.keras`` blobs, never pickle).
2. **This process runs the tests** (otter's test files, from the autograder zip) on those answers.
   It never executes student code: a student function the tests call runs back in the
   submission's sandbox, and only its result, as data, comes back.

The hidden tests, the held-out data and the autograder zip never enter the sandbox: the zip is
read once, into memory, before grading starts, and its points cap every grade. The notebook
runs beside the files the student copy has (the zip's ``student_files.json``: the public tests
and, for assignment 04, the source model), as it ran on the student's side. Results are
written only by this process: ``<out>/<submission>.json`` and ``<out>/grades.csv`` (rewritten
atomically after each submission). A submission that runs past ``--timeout`` is stopped, with
every process it started, and recorded as ``timeout``; one that breaks the protocol or is not a
notebook of this assignment is recorded as ``error``. Either way the batch goes on.

Without ``bwrap`` (Debian/Ubuntu: ``apt-get install bubblewrap``) grading is refused unless
``--trusted`` is given: then the same two phases run without the sandbox (resource limits and
the process-tree kill still apply), for notebooks you trust, such as your own solutions.

Usage::

    python assignments/grade.py --autograder _build/assignments/ch04_fine_tuning/autograder/\
ch04_fine_tuning-autograder.zip --out grades/ch04 submissions/ch04/
"""

from __future__ import annotations

import argparse
import csv
import io
import json
import os
import re
import shutil
import sys
import tempfile
import time
import zipfile
from dataclasses import dataclass, field
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import sandbox  # noqa: E402
from sandbox import Limits  # noqa: E402,F401  (re-exported: grade(limits=Limits(...)))

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
STATUSES = ("graded", "timeout", "error")
RESERVED = ("submission", "status", "score", "possible", "percent", "seconds", "message")
MAX_AUTOGRADER = 512 << 20
#: In an autograder zip: the support files that the student copy has too (a JSON list).
STUDENT_FILES = "student_files.json"


def _write_atomic(path: Path, text: str) -> None:
    """Temporary file in the same folder, then rename: the file is never half-written."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            fh.write(text)
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)


@dataclass
class Autograder:
    """What grading needs from the instructor's zip, read once, into memory."""

    name: str
    tests: dict[str, str]                     # question -> test file source
    points: dict[str, float]                  # question -> points possible
    names: dict[str, list[str]]               # question -> answers its tests receive
    files: dict[str, bytes] = field(default_factory=dict)  # support files (held-out data)
    # the support files the student copy has too (``student_files.json``, written by
    # build.py): the submission gets them beside it in the sandbox; the others it never sees
    student_files: list[str] = field(default_factory=list)


def read_autograder(autograder: Path) -> Autograder:
    """Parse an ``otter assign`` autograder zip: its tests, their points and the names each
    test receives, and its support files (``files/...``)."""
    from otter.test_files.exception_test import ExceptionTestFile

    autograder = Path(autograder)
    if not autograder.is_file():
        raise ValueError(f"autograder: no such file {autograder}")
    data = autograder.read_bytes()
    tests, points, names, files = {}, {}, {}, {}
    name = autograder.stem.removesuffix("-autograder")
    try:
        zf = zipfile.ZipFile(io.BytesIO(data))
    except zipfile.BadZipFile:
        raise ValueError(f"autograder: {autograder} is not a zip file") from None
    with zf:
        if sum(i.file_size for i in zf.infolist()) > MAX_AUTOGRADER:
            raise ValueError(f"autograder: {autograder} unpacks to more than {MAX_AUTOGRADER} B")
        listing = zf.namelist()
        if "otter_config.json" in listing:
            name = json.loads(zf.read("otter_config.json")).get("assignment_name") or name
        for entry in sorted(listing):
            match = re.fullmatch(r"tests/(\w+)\.py", entry)
            if match:
                q = match.group(1)
                if q in RESERVED:
                    raise ValueError(f"autograder: question {q!r} clashes with a grades.csv "
                                     f"column; rename it")
                source = zf.read(entry).decode("utf-8")
                test_file = ExceptionTestFile.from_string(source, path=entry)
                params = [p for tc in test_file.test_cases for p in tc.body._get_func_params()]
                if "env" in params:
                    raise ValueError(f"autograder: {entry} takes the whole environment (env); "
                                     "name the answers a test needs as its parameters")
                tests[q], points[q] = source, float(test_file.possible)
                names[q] = sorted(set(params))
            elif entry.startswith("files/") and not entry.endswith("/"):
                rel = Path(entry).relative_to("files")
                if ".." in rel.parts or rel.is_absolute():
                    raise ValueError(f"autograder: unsafe support file name {entry!r}")
                files[str(rel)] = zf.read(entry)
        student_files = []
        if STUDENT_FILES in listing:
            try:
                student_files = json.loads(zf.read(STUDENT_FILES))
            except ValueError:
                student_files = None
            if not isinstance(student_files, list) or not all(
                    isinstance(f, str) and f in files for f in student_files):
                raise ValueError(f"autograder: {STUDENT_FILES} must list support files "
                                 f"(files/...) of the zip, got {student_files!r}")
    if not tests:
        raise ValueError(f"autograder {autograder} holds no tests/*.py")
    return Autograder(name=name, tests=tests, points=points, names=names, files=files,
                      student_files=student_files)


def possible_points(autograder: Path) -> dict[str, float]:
    """``{question: points}`` read from the test files in an autograder zip."""
    return read_autograder(autograder).points


def _zoo_folder() -> Path:
    value = os.environ.get("TLUTILS_CACHE_DIR", "").strip()
    base = Path(value).expanduser() if value else Path.home() / ".cache" / "tlutils"
    return base / "zoo"


def _needed() -> list[Path]:
    """Folders the sandbox needs to see: the Python environment, the runner, tlutils."""
    import importlib.util

    needed = [Path(sys.prefix).resolve(), Path(sys.base_prefix).resolve(), HERE]
    spec = importlib.util.find_spec("tlutils")
    if spec is not None and spec.origin:
        needed.append(Path(spec.origin).resolve().parent)
    return needed


def _masked(autograder: Path, out: Path, submissions: list[Path], private: Path
            ) -> list[Path]:
    """Folders hidden from the sandbox: the zip, the results, the submissions, the grader's own
    scratch, the model zoo (the sandbox gets a copy), the masters and the build folder."""
    wanted: list[tuple[str, Path]] = [("autograder", autograder.resolve().parent),
                                      ("out", out.resolve()), ("grader", private.resolve())]
    wanted += [("submissions", s.resolve().parent) for s in submissions]
    optional = [_zoo_folder(), ROOT / "_build", ROOT / ".git"]
    optional += [p for p in HERE.iterdir() if p.is_dir() and not p.name.startswith("__")]
    needed = _needed()
    masked: list[Path] = []
    for what, path in wanted + [("", p) for p in optional]:
        if path == Path("/") or any(n == path or n.is_relative_to(path) for n in needed):
            if what:
                raise ValueError(f"{what}: {path} holds the Python environment or the book's "
                                 "code; put it in a folder of its own")
            continue
        if path.is_dir() and path not in masked:
            masked.append(path)
    # a folder inside a hidden one is hidden already (and could not be mounted on)
    return [p for p in masked if not any(p != q and p.is_relative_to(q) for q in masked)]


def _check_notebook(path: Path, ag: Autograder) -> str | None:
    """Why ``path`` is not a gradable notebook of this assignment (``None`` if it is)."""
    import nbformat

    try:
        if path.stat().st_size > 256 << 20:
            return "the notebook is larger than 256 MiB"
        nb = nbformat.read(path, as_version=4)
    except Exception as exc:
        return f"not a readable notebook: {type(exc).__name__}: {str(exc)[:200]}"
    if not any(c.cell_type == "code" and c.source.strip() for c in nb.cells):
        return "the notebook has no code"
    otter = nb.metadata.get("otter")
    if not isinstance(otter, dict) or "assignment_name" not in otter:
        return "not a submission of this assignment (no otter metadata)"
    if otter["assignment_name"] != ag.name:
        return (f"a notebook of assignment {str(otter['assignment_name'])[:60]!r}, "
                f"not {ag.name!r}")
    return None


def _run_tests(ag: Autograder, answers: dict, support: Path) -> list[dict]:
    """Run every question's tests on the answers; scores capped by the zip's points."""
    from otter.test_files.exception_test import ExceptionTestFile

    results = []
    cwd = os.getcwd()
    os.chdir(support)  # tests open their support files by relative name
    try:
        for q, source in ag.tests.items():
            test_file = ExceptionTestFile.from_string(source, path=f"tests/{q}.py")
            test_file.run(dict(answers))
            score = min(max(float(test_file.score), 0.0), ag.points[q])
            # "output" is what a student may see (public tests only); "hidden_output" is
            # for the instructor
            results.append({"name": q, "score": score, "max_score": ag.points[q],
                            "output": test_file.summary(public_only=True),
                            "hidden_output": test_file.summary()})
    finally:
        os.chdir(cwd)
    return results


def grade_one(submission: Path, ag: Autograder, *, private: Path, support: Path,
              masked: list[Path], timeout: float, limits: sandbox.Limits, trusted: bool
              ) -> dict:
    """Both phases for one submission; its result row and results (``None`` unless graded)."""
    row: dict = {"submission": submission.name, "status": "error", "score": 0.0, "message": ""}
    start = time.monotonic()
    deadline = start + timeout
    root = Path(tempfile.mkdtemp(prefix="sub-", dir=private))
    box = None
    try:
        problem = _check_notebook(submission, ag) if submission.is_file() else "file not found"
        if problem:
            row["message"] = problem
            return {"row": row, "results": None}
        names = sorted({n for ns in ag.names.values() for n in ns})
        box = sandbox.Sandbox(submission, names, root=root, zoo_source=_zoo_folder(),
                              masked=masked, limits=limits, deadline=deadline, trusted=trusted,
                              filename=f"{ag.name}.ipynb",
                              files={rel: ag.files[rel] for rel in ag.student_files})
        answers, report = box.start()
        answers = {k: v for k, v in answers.items() if k in names}
        tests = _run_tests(ag, answers, support)
        if time.monotonic() > deadline:
            raise sandbox.SandboxTimeout
        scores = {t["name"]: t["score"] for t in tests}
        row.update(status="graded", score=sum(scores.values()), **scores)
        results = {"tests": tests, "score": row["score"], "possible": sum(ag.points.values()),
                   "cell_errors": report["cell_errors"], "not_exported": report["missing"]}
        return {"row": row, "results": results}
    except sandbox.SandboxTimeout:
        row.update(status="timeout", score=0.0, message=f"stopped after {timeout:g} s")
        return {"row": row, "results": None}
    except sandbox.SandboxError as exc:
        row.update(status="error", score=0.0, message=str(exc)[:500])
        return {"row": row, "results": None}
    except Exception as exc:  # noqa: BLE001 - one submission never stops the batch
        row.update(status="error", score=0.0,
                   message=f"grading failed: {type(exc).__name__}: {str(exc)[:400]}")
        return {"row": row, "results": None}
    finally:
        if box is not None:
            box.close()
        row["seconds"] = round(time.monotonic() - start, 1)
        shutil.rmtree(root, ignore_errors=True)


def grade(submissions: list[Path], autograder: Path, out: Path, *, timeout: float = 600.0,
          trusted: bool = False, limits: sandbox.Limits | None = None) -> list[dict]:
    """Grade every submission; return the rows also written to ``out/grades.csv``.

    ``trusted=False`` (the default) needs bubblewrap and raises ``RuntimeError`` without it;
    ``limits`` bounds each sandbox (:class:`sandbox.Limits`).
    """
    autograder, out = Path(autograder), Path(out)
    submissions = [Path(s) for s in submissions]
    if not autograder.is_file():
        raise ValueError(f"autograder: no such file {autograder}")
    if isinstance(timeout, bool) or not isinstance(timeout, (int, float)) or not timeout > 0:
        raise ValueError(f"timeout must be a positive number of seconds, got {timeout!r}")
    limits = sandbox.Limits() if limits is None else limits
    if not isinstance(limits, sandbox.Limits):
        raise ValueError(f"limits must be a Limits, got {type(limits).__name__}")
    stems = [s.stem for s in submissions]
    if len(set(stems)) != len(stems):
        raise ValueError("submissions: two submissions share a file name")
    ag = read_autograder(autograder)  # once, before any student code runs
    if not trusted and submissions and not sandbox.bwrap_available():
        raise RuntimeError("bubblewrap (bwrap) is not available, so student code cannot be "
                           "sandboxed: install it (apt-get install bubblewrap) or, for "
                           "notebooks you trust, pass trusted=True (--trusted)")
    total = sum(ag.points.values())
    columns = ["submission", "status", "score", "possible", "percent", *ag.points, "seconds",
               "message"]
    out.mkdir(parents=True, exist_ok=True)
    private = Path(tempfile.mkdtemp(prefix="grader-"))
    os.chmod(private, 0o700)
    rows: list[dict] = []
    try:
        support = private / "files"
        for rel, data in ag.files.items():
            (support / rel).parent.mkdir(parents=True, exist_ok=True)
            (support / rel).write_bytes(data)
        support.mkdir(exist_ok=True)
        masked = _masked(autograder, out, submissions, private)
        for submission in submissions:
            result = grade_one(submission, ag, private=private, support=support, masked=masked,
                               timeout=timeout, limits=limits, trusted=trusted)
            row = result["row"]
            row["score"] = min(float(row["score"]), total)
            row.update(possible=total, percent=round(100.0 * row["score"] / total, 1))
            rows.append(row)
            # Written from memory, by this process only, after each submission.
            if result["results"] is not None:
                _write_atomic(out / f"{submission.stem}.json",
                              json.dumps(result["results"], indent=2))
            buffer = io.StringIO()
            writer = csv.DictWriter(buffer, fieldnames=columns, extrasaction="ignore")
            writer.writeheader()
            writer.writerows(rows)
            _write_atomic(out / "grades.csv", buffer.getvalue())
            print(f"{row['submission']:<40} {row['status']:<8} {row['score']:g}/{total:g}"
                  f"  {row['seconds']:6.1f} s", flush=True)
    finally:
        shutil.rmtree(private, ignore_errors=True)
    return rows


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("submissions", nargs="+", type=Path,
                        help="submitted notebooks (.ipynb), or folders of them")
    parser.add_argument("--autograder", "-a", type=Path, required=True,
                        help="the <name>-autograder.zip written by `make assignments`")
    parser.add_argument("--out", "-o", type=Path, required=True, help="folder for the results")
    parser.add_argument("--timeout", type=float, default=600.0,
                        help="seconds allowed per submission (default 600)")
    parser.add_argument("--memory-gib", type=float, default=4.0,
                        help="address space per sandboxed process, GiB (default 4)")
    parser.add_argument("--trusted", action="store_true",
                        help="run without the sandbox (only for notebooks you trust)")
    args = parser.parse_args(argv)
    paths: list[Path] = []
    for p in args.submissions:
        paths.extend(sorted(p.glob("*.ipynb")) if p.is_dir() else [p])
    limits = sandbox.Limits(memory=int(args.memory_gib * (1 << 30)))
    try:
        rows = grade(paths, args.autograder, args.out, timeout=args.timeout,
                     trusted=args.trusted, limits=limits)
    except (ValueError, RuntimeError) as exc:
        parser.error(str(exc))
    print(f"{len(rows)} submission(s); results in {args.out / 'grades.csv'}")
    return 0 if all(r["status"] == "graded" for r in rows) else 1


if __name__ == "__main__":
    sys.exit(main())
