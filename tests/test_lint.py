"""tlutils, the tests, tools and benchmarks pass ruff; the notebooks pass ruff via nbqa
(the same commands as `make lint`)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent


def test_python_sources_pass_ruff():
    proc = subprocess.run([str(BIN / "ruff"), "check", "tlutils", "tests", "tools", "benchmarks"],
                          cwd=ROOT, capture_output=True, text=True)
    assert proc.returncode == 0, proc.stdout[-3000:]


def test_notebooks_pass_ruff_via_nbqa():
    proc = subprocess.run([str(BIN / "nbqa"), "ruff", "chapters", "--ignore",
                           "E402,F401,F811,E501,I001,B018"],
                          cwd=ROOT, capture_output=True, text=True)
    assert proc.returncode == 0, (proc.stdout + proc.stderr)[-3000:]


def test_tlutils_type_checks_clean():
    proc = subprocess.run([str(BIN / "mypy"), "tlutils"], cwd=ROOT, capture_output=True,
                          text=True)
    assert proc.returncode == 0, (proc.stdout + proc.stderr)[-3000:]


def test_notebook_code_fits_the_book_column():
    proc = subprocess.run([sys.executable, "tools/fit_code_width.py", "--check", "chapters"],
                          cwd=ROOT, capture_output=True, text=True)
    assert proc.returncode == 0, (proc.stdout + proc.stderr)[-3000:]


def test_no_private_keras_tensorflow_or_colab_apis_in_tlutils():
    """No keras.src, tensorflow.python, google.colab._ or underscored attribute access."""
    import re

    pattern = re.compile(r"keras\.src|tensorflow\.python|google\.colab\._|\._[a-z]")
    hits = [f"{path.name}:{i}: {line.strip()}"
            for path in sorted((ROOT / "tlutils").glob("*.py"))
            for i, line in enumerate(path.read_text().splitlines(), start=1)
            if pattern.search(line)]
    assert not hits, "\n".join(hits)
