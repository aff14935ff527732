"""Small fixes to Jupyter Book 1's HTML, loaded as a local Sphinx extension (_config.yml).

The ipywidgets HTML manager (1.x) calls MathJax 2's ``MathJax.Hub.Queue`` to typeset widget
labels; the book loads MathJax 3, which has no ``Hub``. A shim maps it to MathJax 3's
``typesetPromise`` once MathJax has started.

Jupyter Book registers some extensions' inline configuration scripts twice (sphinx-thebe's
``const THEBE_JS_URL = ...``, sphinx-togglebutton's selector), so every page logs
"Identifier 'THEBE_JS_URL' has already been declared" in the browser console. After the build,
a repeated single-line inline ``<script>`` in a page is dropped; scripts loaded from files and
multi-line scripts are left alone.

The widget manager (``embed-amd.js``) fetches its icon fonts from the folder of its AMD module
``@jupyter-widgets/html-manager/dist/libembed-amd``, which require.js resolves against the page's
own folder, where no fonts are. A line inserted before that script maps the module to the
vendored copy under ``_static/`` (the path is taken from the page's ``data-content_root``, so it
works at any depth).
"""

from __future__ import annotations

import re
from pathlib import Path

_INLINE = re.compile(r"^\s*<script>[^<]*</script>\s*$")


def dedupe_inline_scripts(html: str) -> str:
    """Remove repeated identical one-line inline scripts, keeping the first of each."""
    seen: set[str] = set()
    out = []
    for line in html.splitlines(keepends=True):
        if _INLINE.match(line):
            key = line.strip()
            if key in seen:
                continue
            seen.add(key)
        out.append(line)
    return "".join(out)


WIDGET_FONTS_FIX = (
    '<script>(function () { var dist = new URL("_static/@jupyter-widgets/html-manager/dist/",'
    ' new URL(document.documentElement.dataset.content_root || "./", document.baseURI)).href;'
    ' if (window.require && window.require.config) { window.require.config({paths:'
    ' {"@jupyter-widgets/html-manager/dist/libembed-amd": dist + "libembed-amd"}}); } })();'
    "</script>\n"
)
_EMBED = re.compile(r'<script\b[^>]*\bsrc="[^"]*embed-amd\.js[^"]*"[^>]*>')


def point_widget_fonts_at_static(html: str) -> str:
    """Insert :data:`WIDGET_FONTS_FIX` before the widget manager's script (once)."""
    if WIDGET_FONTS_FIX in html:
        return html
    match = _EMBED.search(html)
    if match is None:
        return html
    return html[: match.start()] + WIDGET_FONTS_FIX + html[match.start():]


def _fix_pages(app, exception) -> None:
    if exception is not None or app.builder.format != "html":
        return
    for page in Path(app.outdir).rglob("*.html"):
        text = page.read_text(encoding="utf-8")
        fixed = point_widget_fonts_at_static(dedupe_inline_scripts(text))
        if fixed != text:
            page.write_text(fixed, encoding="utf-8")


MATHJAX2_SHIM = (
    "(function shim() { var M = window.MathJax;"
    " if (M && M.startup && M.typesetPromise) {"
    " if (!M.Hub) { M.Hub = {Queue: function () { return M.typesetPromise(); }}; } }"
    " else { setTimeout(shim, 25); } })();"
)


def setup(app):
    app.add_js_file(None, body=MATHJAX2_SHIM, priority=800)
    app.connect("build-finished", _fix_pages)
    return {"parallel_read_safe": True, "parallel_write_safe": True}
