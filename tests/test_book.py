"""The book builds with -W -n --keep-going (warnings are errors) and every TOC page is there."""

from __future__ import annotations

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


def test_every_toc_page_is_built(built_book):
    for f in _toc_files():
        assert (built_book / f"{f}.html").is_file(), f"missing page for {f}"


def test_exercise_solutions_are_hidden_in_dropdowns(built_book):
    html = (built_book / "chapters/04_code_walkthrough/04_3_target_fine_tuning.html").read_text()
    assert "solution" in html and "dropdown" in html
