"""The book builds with -W -n --keep-going (warnings are errors) and every TOC page is there."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.toc import toc_pages

ROOT = Path(__file__).resolve().parents[1]
pytestmark = pytest.mark.book


def test_every_toc_page_is_built(built_book):
    for f in toc_pages():
        assert (built_book / f"{f}.html").is_file(), f"missing page for {f}"


def test_exercise_solutions_are_hidden_in_dropdowns(built_book):
    html = (built_book / "chapters/04_code_walkthrough/04_3_target_fine_tuning.html").read_text()
    assert "solution" in html and "dropdown" in html
