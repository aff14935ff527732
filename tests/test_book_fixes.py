"""The post-build HTML fixes in _ext/book_fixes.py (the browser test checks the built pages)."""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "_ext"))
import book_fixes  # noqa: E402

PAGE = ('<html data-content_root="../../"><head>\n<script src="../../_static/require.js"></script>\n'
        '<script data-jupyter-widgets-cdn="../../_static/" src="../../_static/embed-amd.js?v=1">'
        '</script>\n</head></html>\n')


def test_widget_fonts_fix_goes_between_require_and_the_manager_once():
    fixed = book_fixes.point_widget_fonts_at_static(PAGE)
    assert fixed.index("require.js") < fixed.index("libembed-amd") < fixed.index("embed-amd.js?")
    assert book_fixes.point_widget_fonts_at_static(fixed) == fixed


def test_pages_without_widgets_are_untouched():
    page = '<html><head><script src="x.js"></script></head></html>'
    assert book_fixes.point_widget_fonts_at_static(page) == page


def test_repeated_one_line_inline_scripts_are_dropped():
    html = ("<script>var a = 1;</script>\n<p>x</p>\n<script>var a = 1;</script>\n"
            "<script src='y.js'></script>\n")
    assert book_fixes.dedupe_inline_scripts(html).count("var a = 1") == 1
    assert "y.js" in book_fixes.dedupe_inline_scripts(html)
