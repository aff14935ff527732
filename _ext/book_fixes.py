"""Small fixes to Jupyter Book 1's HTML, loaded as a local Sphinx extension (_config.yml).

* sphinx-thebe registers its inline configuration script twice, which makes the browser log
  "Identifier 'THEBE_JS_URL' has already been declared" on every page. Identical script
  entries are dropped so each page loads each script once.
"""

from __future__ import annotations


def _dedupe_scripts(app, pagename, templatename, context, doctree) -> None:
    scripts = context.get("script_files")
    if not scripts:
        return
    seen, unique = set(), []
    for js in scripts:
        key = (getattr(js, "filename", str(js)),
               tuple(sorted((k, str(v)) for k, v in getattr(js, "attributes", {}).items())))
        if key not in seen:
            seen.add(key)
            unique.append(js)
    context["script_files"] = unique


def setup(app):
    app.connect("html-page-context", _dedupe_scripts, priority=900)
    return {"parallel_read_safe": True, "parallel_write_safe": True}
