"""Open the built book in headless Chromium with the network disabled (Debian's chromium,
driven by Playwright; never a downloaded browser). Each page must render its equations with
MathJax (no raw TeX left), load every figure, log no console errors, and carry the right
"Open in Colab" link. A screenshot per page lands in _build/screenshots/."""

from __future__ import annotations

import re
import shutil
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
pytestmark = [pytest.mark.book,
              pytest.mark.skipif(not Path(CHROMIUM).exists(), reason="Debian chromium not installed")]

def _pages() -> dict[str, bool]:
    """The landing page and the first page of every chapter in the TOC; True for notebooks,
    which must carry an "Open in Colab" link."""
    import yaml

    toc = yaml.safe_load((ROOT / "_toc.yml").read_text())
    pages = {toc["root"]: False}
    for part in toc.get("parts", []):
        for chapter in part.get("chapters", []):
            first = chapter.get("sections", [chapter])[0]["file"]
            if first.startswith("chapters/"):
                pages[first] = (ROOT / f"{first}.ipynb").exists()
    return pages


PAGES = _pages()


@pytest.fixture(scope="module")
def browser():
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        b = p.chromium.launch(executable_path=CHROMIUM, args=[
            "--no-sandbox", "--disable-gpu", "--disable-background-networking",
            "--disable-component-update", "--disable-sync", "--no-first-run"])
        yield b
        b.close()


def _repo_url() -> str:
    import sys

    sys.path.insert(0, str(ROOT / "tools"))
    import notebook_cells

    return notebook_cells.repository_url()


@pytest.mark.parametrize("page_name", list(PAGES))
def test_page_renders_offline(browser, built_book, page_name):
    context = browser.new_context(offline=True, viewport={"width": 1280, "height": 900})
    page = context.new_page()
    errors: list[str] = []
    page.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
    page.on("pageerror", lambda e: errors.append(str(e)))
    page.goto((built_book / f"{page_name}.html").as_uri(), wait_until="load")
    page.wait_for_timeout(300)

    html = page.content()
    assert "cdn.jsdelivr.net" not in html and "cdnjs.cloudflare.com" not in html, "CDN script left"
    has_math = page.evaluate("() => !!document.querySelector('.math, div.math, span.math')")
    if has_math:
        page.wait_for_function("() => window.MathJax && MathJax.startup && MathJax.startup.document",
                               timeout=20_000)
        page.evaluate("() => MathJax.startup.promise")
        assert page.locator("mjx-container").count() > 0, "MathJax typeset nothing"
        text = page.inner_text("main")
        assert not re.search(r"\\\(|\\\[|\$\$", text), "raw TeX left on the page"
    broken = page.evaluate(
        "() => Array.from(document.images).filter(i => !i.complete || i.naturalWidth === 0)"
        ".map(i => i.src)")
    assert not broken, f"images that did not load: {broken}"
    if PAGES[page_name]:
        colab = page.evaluate("() => Array.from(document.querySelectorAll('a'))"
                              ".map(a => a.href).filter(h => h.includes('colab.research.google.com'))")
        repo = _repo_url().removeprefix("https://github.com/")
        expected = f"https://colab.research.google.com/github/{repo}/blob/main/{page_name}.ipynb"
        assert expected in colab, f"Colab link {colab} != {expected}"
    shots = ROOT / "_build" / "screenshots"
    shots.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(shots / f"{page_name.replace('/', '__')}.png"), full_page=False)
    context.close()
    assert not errors, f"console errors: {errors}"
