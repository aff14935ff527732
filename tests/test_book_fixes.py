"""The Sphinx extension in _ext/book_fixes.py (the browser test checks the built pages)."""

import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "_ext"))
import book_fixes  # noqa: E402


def test_repeated_one_line_inline_scripts_are_dropped():
    html = ("<script>var a = 1;</script>\n<p>x</p>\n<script>var a = 1;</script>\n"
            "<script src='y.js'></script>\n")
    assert book_fixes.dedupe_inline_scripts(html).count("var a = 1") == 1
    assert "y.js" in book_fixes.dedupe_inline_scripts(html)


def test_multi_line_scripts_are_kept():
    html = "<script>\nvar a = 1;\n</script>\n<script>\nvar a = 1;\n</script>\n"
    assert book_fixes.dedupe_inline_scripts(html) == html


def test_only_pages_with_live_figures_need_plotly():
    assert book_fixes.needs_plotly('<div class="tl-livefig" id="tl-livefig-x"></div>')
    assert not book_fixes.needs_plotly("<p>plotly</p>")


def test_plotly_js_is_written_whole_from_the_package(tmp_path):
    pytest.importorskip("plotly")
    from plotly.offline import get_plotlyjs

    path = book_fixes.write_plotly_js(tmp_path / "_static")
    assert path.name == "plotly.min.js" and path.read_text(encoding="utf-8") == get_plotlyjs()
    assert [p.name for p in path.parent.iterdir()] == ["plotly.min.js"]  # no temp file left
