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
