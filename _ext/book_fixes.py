"""Small fixes to Jupyter Book 1's HTML, loaded as a local Sphinx extension (_config.yml).

Live figures (``tlutils.livefig``) are Plotly figures whose data sit in the notebook's output;
they need Plotly's JavaScript. The book serves it itself, once for the whole book, as
``_static/plotly.min.js``, copied from the installed ``plotly`` Python package (no CDN, no
npm), and loads it (deferred) only on pages that hold a live figure.

Jupyter Book registers some extensions' inline configuration scripts twice (sphinx-thebe's
``const THEBE_JS_URL = ...``, sphinx-togglebutton's selector), so every page logs
"Identifier 'THEBE_JS_URL' has already been declared" in the browser console. After the build,
a repeated single-line inline ``<script>`` in a page is dropped; scripts loaded from files and
multi-line scripts are left alone.
"""

from __future__ import annotations

import os
import re
import tempfile
from pathlib import Path

_INLINE = re.compile(r"^\s*<script>[^<]*</script>\s*$")

#: The class every live figure's ``<div>`` carries (see ``tlutils/livefig.py``).
LIVE_FIGURE_MARK = 'class="tl-livefig"'
PLOTLY_JS = "plotly.min.js"


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


def needs_plotly(body: str) -> bool:
    """Whether a page's body holds a live figure."""
    return LIVE_FIGURE_MARK in body


def write_plotly_js(static_dir: Path) -> Path:
    """Write Plotly's bundle from the ``plotly`` package to ``static_dir`` (temp file, then
    rename, so a half-written file never exists)."""
    from plotly.offline import get_plotlyjs

    static_dir.mkdir(parents=True, exist_ok=True)
    target = static_dir / PLOTLY_JS
    fd, tmp = tempfile.mkstemp(dir=static_dir, prefix=".plotly-", suffix=".tmp")
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            f.write(get_plotlyjs())
        os.replace(tmp, target)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return target


def _add_plotly(app, pagename, templatename, context, doctree) -> None:
    if needs_plotly(context.get("body", "")):
        app.add_js_file(PLOTLY_JS, loading_method="defer")


def _finish(app, exception) -> None:
    if exception is not None or app.builder.format != "html":
        return
    write_plotly_js(Path(app.outdir) / "_static")
    for page in Path(app.outdir).rglob("*.html"):
        text = page.read_text(encoding="utf-8")
        fixed = dedupe_inline_scripts(text)
        if fixed != text:
            page.write_text(fixed, encoding="utf-8")


def setup(app):
    app.connect("html-page-context", _add_plotly)
    app.connect("build-finished", _finish)
    return {"parallel_read_safe": True, "parallel_write_safe": True}
