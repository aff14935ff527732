"""The book builds with -W -n --keep-going (warnings are errors) and every TOC page is there."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
pytestmark = pytest.mark.book


def _toc_files() -> list[str]:
    import yaml

    toc = yaml.safe_load((ROOT / "_toc.yml").read_text())
    files = [toc["root"]]

    def walk(entries):
        for entry in entries:
            if "file" in entry:
                files.append(entry["file"])
            walk(entry.get("sections", []))
            walk(entry.get("chapters", []))

    for part in toc.get("parts", []):
        walk(part.get("chapters", []))
    return files


@pytest.fixture(scope="session")
def built_book(tmp_path_factory) -> Path:
    """Build once per session into a temporary folder (or reuse BOOK_HTML if set)."""
    if os.environ.get("BOOK_HTML"):
        return Path(os.environ["BOOK_HTML"])
    out = tmp_path_factory.mktemp("book")
    jb = shutil.which("jupyter-book", path=str(Path(sys.executable).parent)) or "jupyter-book"
    proc = subprocess.run([jb, "build", str(ROOT), "--path-output", str(out), "-W", "-n",
                           "--keep-going"], capture_output=True, text=True, timeout=1800)
    log = proc.stdout + proc.stderr
    assert proc.returncode == 0, f"book build failed:\n{log[-6000:]}"
    assert "warning" not in log.lower().replace("-w", ""), log[-4000:]
    return out / "_build" / "html"


def test_every_toc_page_is_built(built_book):
    for f in _toc_files():
        assert (built_book / f"{f}.html").is_file(), f"missing page for {f}"


def test_exercise_solutions_are_hidden_in_dropdowns(built_book):
    html = (built_book / "chapters/04_code_walkthrough/04_3_target_fine_tuning.html").read_text()
    assert "solution" in html and "dropdown" in html
