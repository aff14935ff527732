"""Check the notebooks' setup cells against Colab-like runtimes (issue 15).

Two levels, sharing the code below:

* **dry run** (``tests/test_colab.py`` uses it in CI): a Python 3.12 virtual environment whose
  "preinstalled" packages are a Colab-like stack (a TensorFlow and Keras other than the lock's)
  with their real metadata, resolved from the package index, but no code: each is a
  ``.dist-info`` folder only, so pip sees them installed at no download cost. Each distinct
  setup cell is then run there with ``pip install --dry-run --report`` against the real index
  (tlutils itself from a wheel of this checkout), and the report says what pip would install:
  no preinstalled package may be among it.
* **real run** (this script, by hand; heavy): the stack really installed in a fresh venv, a
  stand-in ``google.colab`` module, each notebook's setup cell run against the real index, then
  the notebook itself with ``FULL = False``. Prints, per notebook, pass/fail, time and which
  preinstalled packages the setup cell changed::

      .venv/bin/python tools/colab_check.py [--stack colab-tf2.19] [notebook ...]

  A notebook whose setup cell the stack cannot fit, as :data:`EXPECTED` says (the ``[text]``
  install on the 2025 runtime), shows ``REFUSED``: the cell stopped with its clear message and
  changed nothing. Run those notebooks again with ``--stack tf2.20``.

Neither runs in ``make test`` by default: the dry run needs the package index (CI reaches it),
the real run downloads a TensorFlow (hundreds of MB) and executes notebooks.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]

#: Colab-like stacks: what a runtime brings before the setup cell runs. The first is Colab's
#: runtime of 2025 (Python 3.12, TensorFlow 2.19, Keras 3.10, keras-hub 0.21 preinstalled);
#: the second a newer TensorFlow (2.20, Keras 3.15.0) and no keras-hub. Both differ from the
#: lock (TensorFlow 2.21, Keras 3.15.1).
#: What each distinct setup cell must do there: "installs" (adding packages, changing none) or
#: "refuses" (stops with the cell's clear message, changing nothing): the ``[text]`` extra needs
#: keras-hub >= 0.30, hence Keras >= 3.15, which the 2025 runtime does not have.
STACKS: dict[str, list[str]] = {
    "colab-tf2.19": ["pip==24.1.2", "tensorflow==2.19.0", "keras==3.10.0", "numpy==2.0.2",
                     "pandas==2.2.2", "scipy==1.16.1", "matplotlib==3.10.0",
                     "scikit-learn==1.6.1", "pillow==11.3.0", "keras-hub==0.21.1",
                     "safetensors==0.6.2", "ipykernel==6.17.1", "ipython==7.34.0",
                     "ipywidgets==7.7.1"],
    "tf2.20": ["pip==25.2", "tensorflow==2.20.0", "keras==3.15.0", "numpy==2.2.6",
               "pandas==2.3.2", "scipy==1.16.1", "matplotlib==3.10.6", "scikit-learn==1.7.2",
               "pillow==11.3.0", "ipykernel==6.30.1"],
}
EXPECTED: dict[str, dict[str, str]] = {
    "colab-tf2.19": {"plain": "installs", "text": "refuses"},
    "tf2.20": {"plain": "installs", "text": "installs"},
}
PYTHON_VERSION = "3.12"
#: What the setup cell's error says when pip cannot fit tlutils to the runtime.
REFUSAL = "does not fit this runtime"


def normalize(name: str) -> str:
    """PEP 503 name: ``Pillow`` and ``pillow``, ``ml_dtypes`` and ``ml-dtypes`` are one."""
    return re.sub(r"[-_.]+", "-", name).lower()


def find_python(version: str = PYTHON_VERSION) -> str | None:
    """A ``python<version>`` executable (pyenv's, the system's), or ``None``."""
    candidates = [shutil.which(f"python{version}")]
    pyenv = Path(os.environ.get("PYENV_ROOT", Path.home() / ".pyenv")) / "versions"
    if pyenv.is_dir():
        candidates += [str(p / "bin" / "python") for p in sorted(pyenv.glob(f"{version}.*"))]
    for candidate in candidates:
        if not candidate:
            continue
        probe = subprocess.run([candidate, "-c", "import sys, venv; print(sys.version_info[:2])"],
                               capture_output=True, text=True)
        if probe.returncode == 0 and probe.stdout.strip() == str(
                tuple(int(x) for x in version.split("."))):
            return candidate
    return None


def pip_env(**extra: str) -> dict[str, str]:
    """The environment for pip runs: quiet, and no pip config file from this machine beyond
    its certificate (a machine-wide constraints file must not leak into the check)."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("PIP_")}
    env.update(PIP_DISABLE_PIP_VERSION_CHECK="1", PIP_CONFIG_FILE=os.devnull,
               PIP_NO_INPUT="1", PIP_DEFAULT_TIMEOUT="60")
    if os.environ.get("PIP_CERT"):
        env["PIP_CERT"] = os.environ["PIP_CERT"]
    env.update(extra)
    return env


def make_venv(path: Path, python: str, pip_version: str | None = None) -> Path:
    """A fresh venv at ``path`` (with pip, at ``pip_version`` if given); its python."""
    subprocess.run([python, "-m", "venv", str(path)], check=True)
    py = path / "bin" / "python"
    if pip_version:
        subprocess.run([str(py), "-m", "pip", "install", "-q", f"pip=={pip_version}"],
                       check=True, env=pip_env())
    return py


def _stack_pip(stack: list[str]) -> str | None:
    return next((p.split("==")[1] for p in stack if normalize(p.split("==")[0]) == "pip"), None)


def resolve_stack(py: Path, stack: list[str]) -> list[dict]:
    """The core metadata of every distribution ``stack`` installs, resolved by pip (dry run,
    nothing downloaded but metadata) for the interpreter ``py``."""
    pins = [p for p in stack if normalize(p.split("==")[0]) != "pip"]
    with tempfile.TemporaryDirectory() as tmp:
        report = Path(tmp) / "stack.json"
        done = subprocess.run(
            [str(py), "-m", "pip", "install", "-q", "--dry-run", "--ignore-installed",
             "--report", str(report), *pins], capture_output=True, text=True, env=pip_env())
        if done.returncode != 0:
            raise RuntimeError(f"could not resolve the stack {pins}:\n{done.stderr[-3000:]}")
        return [item["metadata"] for item in json.loads(report.read_text())["install"]]


def _metadata_text(meta: dict) -> str:
    lines = []
    for key, value in meta.items():
        if key in ("description", "description_content_type", "license_file", "license_files"):
            continue
        field = "-".join(part.capitalize() for part in key.split("_"))
        field = {"Requires-Python": "Requires-Python", "Metadata-Version": "Metadata-Version"}.get(
            field, field)
        for item in value if isinstance(value, list) else [value]:
            if isinstance(item, str) and "\n" not in item:
                lines.append(f"{field}: {item}")
    return "\n".join(lines) + "\n"


def site_packages(py: Path) -> Path:
    out = subprocess.run([str(py), "-c", "import sysconfig; print(sysconfig.get_path('purelib'))"],
                         check=True, capture_output=True, text=True).stdout.strip()
    return Path(out)


def installed(py: Path) -> dict[str, str]:
    """``{normalized name: version}`` of every distribution the interpreter ``py`` sees."""
    code = ("import json, importlib.metadata as m\n"
            "seen = {}\n"
            "for d in m.distributions():\n"
            "    seen.setdefault(d.metadata['Name'], d.version)\n"
            "print(json.dumps(seen))")
    # -I: not the current folder (a checkout's tlutils.egg-info would count as installed)
    out = subprocess.run([str(py), "-I", "-c", code], check=True, capture_output=True,
                         text=True).stdout
    return {normalize(k): v for k, v in json.loads(out).items() if k}


def metadata_venv(path: Path, python: str, stack: list[str]) -> Path:
    """A venv where ``stack`` is "installed" as metadata only (see the module docstring)."""
    py = make_venv(path, python, _stack_pip(stack))
    site = site_packages(py)
    real = installed(py)
    for meta in resolve_stack(py, stack):
        name, version = meta["name"], meta["version"]
        if normalize(name) in real:
            continue
        info = site / f"{re.sub(r'[-.]+', '_', name)}-{version}.dist-info"
        info.mkdir()
        (info / "METADATA").write_text(_metadata_text(meta))
        (info / "INSTALLER").write_text("colab-check\n")
        (info / "RECORD").write_text("")
    return py


def real_venv(path: Path, python: str, stack: list[str]) -> Path:
    """A venv where ``stack`` is really installed (a real download of TensorFlow)."""
    py = make_venv(path, python, _stack_pip(stack))
    pins = [p for p in stack if normalize(p.split("==")[0]) != "pip"]
    subprocess.run([str(py), "-m", "pip", "install", "-q", *pins], check=True, env=pip_env())
    return py


# The driver that runs a setup cell's Python in the Colab-like interpreter: a stand-in
# google.colab module, and (dry run) every pip install turned into --dry-run --report.
_DRIVER = '''\
import json, os, re, subprocess, sys, types
sys.modules["google.colab"] = types.ModuleType("google.colab")
out = os.environ["COLAB_CHECK_OUT"]
dry = bool(os.environ.get("COLAB_CHECK_DRY"))
real_run = subprocess.run
calls = []

def run(cmd, *args, **kwargs):
    cmd = list(cmd)
    if cmd[1:4] == ["-m", "pip", "install"]:
        n = len(calls) + 1
        if dry:
            cmd += ["--dry-run", "--report", os.path.join(out, f"report{n}.json")]
        calls.append(cmd)
        kwargs.setdefault("capture_output", True)
        kwargs.setdefault("text", True)
        done = real_run(cmd, *args, **kwargs)
        with open(os.path.join(out, f"pip{n}.log"), "w") as f:
            f.write(" ".join(cmd) + "\\n" + (done.stdout or "") + (done.stderr or ""))
        if kwargs.get("check") and done.returncode:
            raise subprocess.CalledProcessError(done.returncode, cmd, done.stdout, done.stderr)
        return done
    return real_run(cmd, *args, **kwargs)

subprocess.run = run

class Shell:  # the %pip magic of an older setup cell, as IPython would run it
    def run_line_magic(self, name, line, *rest):
        assert name == "pip", name
        frame = sys._getframe(1).f_globals
        line = re.sub(r"\\$(\\w+)", lambda m: str(frame.get(m.group(1), m.group(0))), line)
        import shlex
        run([sys.executable, "-m", "pip", *shlex.split(line)])

def get_ipython():
    return Shell()

code = open(os.path.join(out, "cell.py")).read()
exec(compile(code, "setup-cell", "exec"), {"get_ipython": get_ipython, "__name__": "__main__"})
'''


def python_of_cell(source: str) -> str:
    """The cell as plain Python (IPython's transformer turns ``%pip`` lines into calls)."""
    if "%" not in source and "!" not in source:
        return source
    from IPython.core.inputtransformer2 import TransformerManager

    return TransformerManager().transform_cell(source)


def private_constraints(source: str, path: Path) -> str:
    """The setup cell ``source`` with its constraints file at ``path`` instead of the fixed
    ``/tmp`` one (:data:`notebook_cells.CONSTRAINTS_FILE`; one runtime per machine in Colab).
    Here several runs share one machine (this check, the test suite's simulated Colab, another
    session's check): with one file, one run's pins could constrain, or unpin, another's pip."""
    sys.path.insert(0, str(ROOT / "tools"))
    import notebook_cells

    return source.replace(notebook_cells.CONSTRAINTS_FILE, str(path))


def run_setup_cell(py: Path, source: str, tlutils_spec: str, out: Path, *,
                   dry_run: bool) -> tuple[int, str, list[dict]]:
    """Run the setup cell ``source`` under ``py`` as Colab would; returns the exit status,
    the pip logs and (dry run) the items pip's reports would install."""
    out.mkdir(parents=True, exist_ok=True)
    source = private_constraints(source, out / "constraints.txt")
    (out / "cell.py").write_text(python_of_cell(source))
    (out / "driver.py").write_text(_DRIVER)
    env = pip_env(COLAB_CHECK_OUT=str(out), TLUTILS_PIP=tlutils_spec)
    if dry_run:
        env["COLAB_CHECK_DRY"] = "1"
    done = subprocess.run([str(py), str(out / "driver.py")], capture_output=True, text=True,
                          env=env, cwd=out)
    logs = "".join(p.read_text() for p in sorted(out.glob("pip*.log")))
    items = []
    for report in sorted(out.glob("report*.json")):
        items += json.loads(report.read_text())["install"]
    return done.returncode, logs + done.stdout + done.stderr, items


def changes(preinstalled: dict[str, str], items: list[dict]) -> list[str]:
    """``name old -> new`` for every preinstalled package a pip report would replace."""
    found = []
    for item in items:
        name, version = normalize(item["metadata"]["name"]), item["metadata"]["version"]
        if name in preinstalled:
            found.append(f"{name} {preinstalled[name]} -> {version}")
    return sorted(found)


def build_wheel(dest: Path) -> Path:
    """A wheel of this checkout (built from a copy, so the repository gets no build files)."""
    src = dest / "src"
    if src.exists():
        shutil.rmtree(src)
    src.mkdir(parents=True)
    for name in ("README.md", "pyproject.toml"):
        shutil.copy(ROOT / name, src / name)
    shutil.copytree(ROOT / "tlutils", src / "tlutils", ignore=shutil.ignore_patterns("__pycache__"))
    done = subprocess.run([sys.executable, "-m", "pip", "wheel", "-q", "--no-deps", "-w",
                           str(dest / "dist"), str(src)], capture_output=True, text=True,
                          env=pip_env())
    if done.returncode != 0:
        raise RuntimeError(f"could not build the tlutils wheel:\n{done.stderr[-3000:]}")
    (wheel,) = (dest / "dist").glob("tlutils-*.whl")
    return wheel


def dry_run_check(stack: str, work: Path, wheel: Path,
                  python: str) -> dict[str, list[str] | str]:
    """Dry-run every distinct setup cell on ``stack``: ``{variant: changes}`` (an empty list:
    pip would only add packages), or ``"refused"`` where the cell stopped with its clear
    message. Raises on any other failure."""
    sys.path.insert(0, str(ROOT / "tools"))
    import notebook_cells

    py = metadata_venv(work / "venv", python, STACKS[stack])
    before = installed(py)
    result = {}
    for variant, source in notebook_cells.distinct_setup_cells().items():
        extra = "[text]" if variant == "text" else ""
        rc, log, items = run_setup_cell(py, source, f"tlutils{extra} @ {wheel.as_uri()}",
                                        work / variant, dry_run=True)
        if rc != 0 and REFUSAL in log and not items:
            result[variant] = "refused"
        elif rc != 0:
            raise RuntimeError(f"{stack}, {variant} setup cell failed:\n{log[-4000:]}")
        else:
            result[variant] = changes(before, items)
    return result


# ---------------------------------------------------------------------------------------------
# The real run (by hand)
# ---------------------------------------------------------------------------------------------

_FAKE_COLAB = '''\
import os, sys, types
if os.environ.get("FAKE_COLAB"):
    sys.modules["google.colab"] = types.ModuleType("google.colab")
'''


def restore_stack(py: Path, stack: dict[str, str]) -> None:
    """Put the venv of ``py`` back to ``stack`` (``{name: version}``, as :func:`installed`
    gave it right after the stack was installed): uninstall what earlier setup cells added,
    reinstall any version they changed. So each notebook starts from the bare runtime, as in
    Colab, where every notebook gets a fresh one."""
    now = installed(py)
    added = sorted(k for k in now if k not in stack)
    if added:
        subprocess.run([str(py), "-m", "pip", "uninstall", "-q", "-y", *added], check=True,
                       env=pip_env(), capture_output=True)
    changed = [f"{k}=={v}" for k, v in stack.items() if now.get(k) != v]
    if changed:
        subprocess.run([str(py), "-m", "pip", "install", "-q", "--no-deps", *changed],
                       check=True, env=pip_env(), capture_output=True)


def run_notebook(nb_path: Path, py: Path, wheel: Path, work: Path,
                 stack: str | None = None, nb=None) -> tuple[bool | str, float, list[str], str]:
    """Run one notebook in the real Colab-like venv ``py``: its setup cell, then the whole
    notebook (FULL = False, as committed). Returns (passed, seconds, changed packages, note);
    ``passed`` is ``"refused"`` where the setup cell stopped with its clear message, changing
    nothing, on a ``stack`` where :data:`EXPECTED` says that cell refuses. ``nb`` is the
    notebook as read when the run started (default: read ``nb_path`` now)."""
    import nbformat
    from nbclient import NotebookClient

    sys.path.insert(0, str(ROOT / "tools"))
    import notebook_cells

    nb = nbformat.read(nb_path, as_version=4) if nb is None else nb
    text = notebook_cells.needs_text(nb)
    spec = f"tlutils{'[text]' if text else ''} @ {wheel.as_uri()}"
    before = installed(py)
    start = time.perf_counter()
    setup_dir = work / "setup" / nb_path.stem
    rc, log, _ = run_setup_cell(py, notebook_cells.setup_cell_for(nb), spec, setup_dir,
                                dry_run=False)
    after = installed(py)
    changed = sorted(f"{k} {v} -> {after.get(k, 'removed')}" for k, v in before.items()
                     if after.get(k) != v)
    if rc != 0:
        expected = EXPECTED.get(stack or "", {}).get("text" if text else "plain")
        if expected == "refuses" and REFUSAL in log and not changed:
            return "refused", time.perf_counter() - start, changed, (
                "the setup cell refused with its clear message, as expected on this stack "
                f"(the {'[text]' if text else 'plain'} install needs a newer runtime)")
        return False, time.perf_counter() - start, changed, "setup cell failed: " + log[-600:]
    # the notebook alone in an empty folder, as in Colab; the setup cell has run already, and
    # runs again inside the notebook (then it only confirms that nothing is missing)
    folder = work / "content" / nb_path.stem
    folder.mkdir(parents=True, exist_ok=True)
    spec_dir = work / "jupyter" / "kernels" / "colab-check"
    spec_dir.mkdir(parents=True, exist_ok=True)
    (spec_dir / "kernel.json").write_text(json.dumps({
        "argv": [str(py), "-m", "ipykernel_launcher", "-f", "{connection_file}"],
        "display_name": "Colab-like", "language": "python",
        "env": {"FAKE_COLAB": "1", "TLUTILS_PIP": spec, "PIP_DISABLE_PIP_VERSION_CHECK": "1",
                "PIP_CONFIG_FILE": os.devnull,
                # ipykernel 6.17 on Python 3.12: no "frozen modules" debugger warning per start
                "PYDEVD_DISABLE_FILE_VALIDATION": "1"}}))
    (site_packages(py) / "sitecustomize.py").write_text(_FAKE_COLAB)
    for cell in nb.cells:  # the notebook's own setup cell: the same private constraints file
        if cell.cell_type == "code" and "setup" in cell.metadata.get("tags", []):
            cell.source = private_constraints(cell.source, setup_dir / "constraints.txt")
    os.environ["JUPYTER_PATH"] = str(work / "jupyter")
    note = ""
    try:
        NotebookClient(nb, timeout=1800, kernel_name="colab-check",
                       resources={"metadata": {"path": str(folder)}}).execute()
        passed = True
    except Exception as exc:  # a cell's error: report it, go on with the next notebook
        import traceback

        detail = str(exc).strip() or traceback.format_exc()  # a bare assert says nothing
        passed, note = False, f"{type(exc).__name__}: {detail[-800:]}"
        nbformat.write(nb, folder / nb_path.name)  # the outputs so far, for a closer look
        note += f"\n(executed notebook: {folder / nb_path.name})"
    after = installed(py)
    changed = sorted(f"{k} {v} -> {after.get(k, 'removed')}" for k, v in before.items()
                     if after.get(k) != v)
    return passed, time.perf_counter() - start, changed, note


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("notebooks", nargs="*", type=Path,
                        help="notebooks to run (default: every chapter notebook)")
    parser.add_argument("--stack", choices=sorted(STACKS), default="colab-tf2.19")
    parser.add_argument("--work", type=Path, help="working folder (default: a temporary one, "
                        "kept; reuse it to skip installing the stack again)")
    parser.add_argument("--dry-run", action="store_true",
                        help="only the dry-run check of every distinct setup cell")
    args = parser.parse_args(argv)
    python = find_python()
    if python is None:
        print(f"no Python {PYTHON_VERSION} found (Colab's); install one (pyenv) first")
        return 2
    work = args.work or Path(tempfile.mkdtemp(prefix="colab-check-"))
    work.mkdir(parents=True, exist_ok=True)
    notebooks = args.notebooks or sorted(
        p for p in (ROOT / "chapters").rglob("*.ipynb") if ".ipynb_checkpoints" not in p.parts)
    # tlutils and the notebooks as they are now, together (the checkout may change meanwhile)
    import nbformat

    snapshot = {p: nbformat.read(p, as_version=4) for p in notebooks}
    wheel = build_wheel(work / "wheel")
    if args.dry_run:
        for stack in STACKS:
            result = dry_run_check(stack, work / f"dry-{stack}", wheel, python)
            for variant, changed in result.items():
                if changed == "refused":
                    ok, what = EXPECTED[stack][variant] == "refuses", "refused (clear message)"
                else:
                    ok = not changed and EXPECTED[stack][variant] == "installs"
                    what = ", ".join(changed) or "installs; no preinstalled package changed"
                print(f"{stack:14} {variant:6} {'PASS' if ok else 'FAIL'}  {what}")
        return 0
    venv = work / f"venv-{args.stack}"
    t0 = time.perf_counter()
    marker = venv / ".stack-installed.json"  # what the bare stack has: {name: version}
    if not marker.exists():
        if venv.exists():
            shutil.rmtree(venv)
        py = real_venv(venv, python, STACKS[args.stack])
        marker.write_text(json.dumps(installed(py), indent=1, sort_keys=True))
        print(f"installed the stack {args.stack} in {time.perf_counter() - t0:.0f} s")
    py = venv / "bin" / "python"
    bare = json.loads(marker.read_text())
    print(f"stack {args.stack}: " + ", ".join(STACKS[args.stack]))
    print(f"{'notebook':55} {'result':7} {'time':>7}  preinstalled packages changed")
    failures = 0
    for nb_path in notebooks:
        restore_stack(py, bare)
        passed, seconds, changed, note = run_notebook(nb_path.resolve(), py, wheel, work,
                                                      args.stack, snapshot[nb_path])
        failures += not passed or bool(changed)
        result = "REFUSED" if passed == "refused" else "PASS" if passed else "FAIL"
        print(f"{nb_path.name:55} {result if not changed else 'FAIL':7} "
              f"{seconds:6.0f}s  {', '.join(changed) or 'none'}", flush=True)
        if note:
            print("    " + note.replace("\n", "\n    "))
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
