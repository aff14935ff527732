"""Internal link check of the built book (issue 8, site hygiene).

Every internal ``href``/``src`` in every built page must point at a file that exists in the
build, and every ``#anchor`` must name an element id (or ``<a name>``) in the target page.
External links (http, https, protocol-relative, mailto, javascript, data, ...) are not checked:
the book must build and be tested offline.
"""

from __future__ import annotations

from functools import cache
from html.parser import HTMLParser
from pathlib import Path
from urllib.parse import unquote, urlsplit

import pytest

pytestmark = pytest.mark.book

# Folders of assets and copied sources, not pages of the book.
NOT_PAGES = {"_static", "_sources", "_images", "_downloads", "_sphinx_design_static"}


class _PageParser(HTMLParser):
    """Collects the ids/names a page defines and the href/src values it links to."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.ids: set[str] = set()
        self.links: list[tuple[str, str]] = []  # (tag, url)

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        for name, value in attrs:
            if value is None:
                continue
            if name == "id" or (name == "name" and tag == "a"):
                self.ids.add(value)
            elif name in ("href", "src"):
                self.links.append((tag, value.strip()))

    handle_startendtag = handle_starttag


@cache
def _parse(path: Path) -> _PageParser:
    parser = _PageParser()
    parser.feed(path.read_text(encoding="utf-8", errors="replace"))
    parser.close()
    return parser


def _is_external(url: str) -> bool:
    parts = urlsplit(url)
    return bool(parts.scheme) or url.startswith("//")  # http:, https:, mailto:, data:, ...


def pages(html_root: Path) -> list[Path]:
    """Every built HTML page under ``html_root`` (asset folders excluded)."""
    return sorted(p for p in html_root.rglob("*.html")
                  if not NOT_PAGES.intersection(p.relative_to(html_root).parts))


def broken_links(html_root: Path) -> list[str]:
    """One line per internal link or anchor in the build that does not resolve."""
    html_root = html_root.resolve()
    problems: list[str] = []
    for page in pages(html_root):
        where = page.relative_to(html_root).as_posix()
        for tag, url in _parse(page).links:
            if not url or _is_external(url):
                continue
            parts = urlsplit(url)
            if parts.path:
                target = (page.parent / unquote(parts.path)).resolve()
                if target.is_dir():
                    target = target / "index.html"
            else:
                target = page
            if not target.is_file():
                problems.append(f"{where}: <{tag}> {url!r} -> missing file")
                continue
            try:
                target.relative_to(html_root)
            except ValueError:
                problems.append(f"{where}: <{tag}> {url!r} -> points outside the build")
                continue
            anchor = unquote(parts.fragment)
            if anchor and target.suffix == ".html" and anchor not in _parse(target).ids:
                problems.append(f"{where}: <{tag}> {url!r} -> no id {anchor!r} in "
                                f"{target.relative_to(html_root).as_posix()}")
    return problems


def test_checker_finds_broken_links(tmp_path):
    """The checker itself: good links pass, a missing file and a missing anchor are reported."""
    (tmp_path / "sub").mkdir()
    (tmp_path / "_static").mkdir()
    (tmp_path / "_static" / "x.css").write_text("")
    (tmp_path / "sub" / "index.html").write_text('<h1 id="top">t</h1><a name="old"></a>')
    (tmp_path / "index.html").write_text(
        '<link href="_static/x.css?v=1"><a href="sub/">d</a><a href="sub/index.html#top">a</a>'
        '<a href="#here" id="here">s</a><a href="sub/index.html#old">n</a><a href="#">t</a>'
        '<a href="https://example.org/x.html">e</a><a href="mailto:a@b">m</a>'
        '<img src="data:image/png;base64,AAAA"><a href="javascript:void(0)">j</a>')
    assert broken_links(tmp_path) == []
    (tmp_path / "bad.html").write_text('<a href="nope.html">x</a><a href="index.html#gone">y</a>'
                                       '<img src="_images/missing.png">')
    found = broken_links(tmp_path)
    assert len(found) == 3, found
    assert any("nope.html" in f and "missing file" in f for f in found)
    assert any("'gone'" in f for f in found)
    assert any("missing.png" in f for f in found)


def test_book_has_pages(built_book):
    """The build holds the landing page and a page per chapter folder."""
    found = {p.relative_to(built_book).as_posix() for p in pages(built_book)}
    assert "index.html" in found or "intro.html" in found
    for chapter in ("01_background", "02_core_concepts", "03_algorithms", "04_code_walkthrough",
                    "05_frontiers", "06_faq"):
        assert any(f.startswith(f"chapters/{chapter}/") for f in found), chapter


def test_internal_links_resolve(built_book):
    """Every internal link and anchor of every built page resolves."""
    problems = broken_links(built_book)
    assert not problems, f"{len(problems)} broken internal link(s):\n" + "\n".join(problems[:200])
