"""Grade a batch of submissions with ``otter run``, one at a time, each with a time limit.

``otter run`` grades one notebook, locally, without Docker. This script calls it once per
submission, in a separate process with its own working and temporary folders, and writes one
row per submission to ``<out>/grades.csv`` (rewritten after every submission, atomically) plus
otter's full results as ``<out>/<submission>.json``. A submission that raises is graded like any
other (its failing questions score 0); one that runs past ``--timeout`` is stopped, with every
process it started, and recorded as ``timeout``; one that breaks the grading itself (say, by
deleting otter's files) is recorded as ``error``. Either way the other submissions' results are
kept.

This is a convenience, not a sandbox: a submission runs with your user's permissions. For
untrusted code at scale, use ``otter grade`` (Docker) or Gradescope with the same zip.

Usage::

    python assignments/grade.py --autograder _build/assignments/ch04_fine_tuning/autograder/\
ch04_fine_tuning-autograder.zip --out grades/ch04 submissions/*.ipynb
"""

from __future__ import annotations

import argparse
import csv
import io
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
import zipfile
from pathlib import Path

STATUSES = ("graded", "timeout", "error")


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


def possible_points(autograder: Path) -> dict[str, float]:
    """``{question: points}`` read from the test files in an autograder zip."""
    points: dict[str, float] = {}
    with zipfile.ZipFile(autograder) as zf:
        for name in sorted(zf.namelist()):
            match = re.fullmatch(r"tests/(\w+)\.py", name)
            if match:
                text = zf.read(name).decode("utf-8")
                points[match.group(1)] = sum(
                    float(p) for p in re.findall(r"@test_case\(points=([\d.]+)", text))
    if not points:
        raise ValueError(f"autograder {autograder} holds no tests/*.py")
    return points


def _kill_tree(pid: int) -> None:
    """Stop a process and all its descendants (Jupyter starts kernels in their own session,
    so killing the process group would leave a looping kernel behind)."""
    import psutil

    try:
        parent = psutil.Process(pid)
    except psutil.NoSuchProcess:
        return
    procs = parent.children(recursive=True) + [parent]
    for p in procs:
        try:
            p.kill()
        except psutil.NoSuchProcess:
            pass
    psutil.wait_procs(procs, timeout=10)


def grade_one(submission: Path, autograder: Path, *, timeout: float) -> dict:
    """Run ``otter run`` on one submission in a scratch folder; return its result row and
    otter's results JSON (``None`` unless graded)."""
    row: dict = {"submission": submission.name, "status": "error", "score": 0.0, "message": ""}
    work = Path(tempfile.mkdtemp(prefix="otter-grade-"))
    try:
        (work / "tmp").mkdir()
        (work / "results").mkdir()
        sub = work / submission.name
        shutil.copy(submission, sub)
        ag = work / autograder.name
        shutil.copy(autograder, ag)
        env = dict(os.environ, TMPDIR=str(work / "tmp"))
        cmd = [sys.executable, "-m", "otter", "run", "--no-logo", "-a", str(ag),
               "-o", str(work / "results"), str(sub)]
        start = time.perf_counter()
        with open(work / "log.txt", "w") as log:
            proc = subprocess.Popen(cmd, cwd=work, env=env, stdout=log, stderr=subprocess.STDOUT,
                                    start_new_session=True)
            try:
                code = proc.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                _kill_tree(proc.pid)
                proc.wait()
                row.update(status="timeout", message=f"stopped after {timeout:g} s")
                return {"row": row, "results": None}
            finally:
                row["seconds"] = round(time.perf_counter() - start, 1)
        results_file = work / "results" / "results.json"
        if code == 0 and results_file.is_file():
            results = json.loads(results_file.read_text())
            scores = {t["name"]: float(t.get("score") or 0.0) for t in results.get("tests", [])
                      if "max_score" in t and t.get("max_score") is not None}
            row.update(status="graded", score=sum(scores.values()), **scores)
            return {"row": row, "results": results}
        tail = (work / "log.txt").read_text(errors="replace").strip().splitlines()[-3:]
        row["message"] = f"otter run exited with {code}: " + " | ".join(tail)[-500:]
        return {"row": row, "results": None}
    finally:
        shutil.rmtree(work, ignore_errors=True)


def grade(submissions: list[Path], autograder: Path, out: Path, *, timeout: float = 600.0
          ) -> list[dict]:
    """Grade every submission; return the rows also written to ``out/grades.csv``."""
    if not autograder.is_file():
        raise ValueError(f"autograder: no such file {autograder}")
    if not isinstance(timeout, (int, float)) or timeout <= 0:
        raise ValueError(f"timeout must be a positive number of seconds, got {timeout!r}")
    stems = [s.stem for s in submissions]
    if len(set(stems)) != len(stems):
        raise ValueError("submissions: two submissions share a file name")
    points = possible_points(autograder)
    total = sum(points.values())
    columns = ["submission", "status", "score", "possible", "percent", *points, "seconds",
               "message"]
    rows: list[dict] = []
    for submission in submissions:
        if not submission.is_file():
            result = {"row": {"submission": submission.name, "status": "error", "score": 0.0,
                              "message": "file not found"}, "results": None}
        else:
            result = grade_one(submission, autograder, timeout=timeout)
        row = result["row"]
        row.update(possible=total, percent=round(100.0 * row["score"] / total, 1))
        rows.append(row)
        # Written from memory after each submission: a submission that deletes files cannot
        # take earlier results with it.
        out.mkdir(parents=True, exist_ok=True)
        if result["results"] is not None:
            _write_atomic(out / f"{submission.stem}.json", json.dumps(result["results"], indent=2))
        buffer = io.StringIO()
        writer = csv.DictWriter(buffer, fieldnames=columns, extrasaction="ignore")
        writer.writeheader()
        writer.writerows(rows)
        _write_atomic(out / "grades.csv", buffer.getvalue())
        print(f"{row['submission']:<40} {row['status']:<8} {row['score']:g}/{total:g}", flush=True)
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
    args = parser.parse_args(argv)
    paths: list[Path] = []
    for p in args.submissions:
        paths.extend(sorted(p.glob("*.ipynb")) if p.is_dir() else [p])
    rows = grade(paths, args.autograder, args.out, timeout=args.timeout)
    print(f"{len(rows)} submission(s); results in {args.out / 'grades.csv'}")
    return 0 if all(r["status"] == "graded" for r in rows) else 1


if __name__ == "__main__":
    sys.exit(main())
