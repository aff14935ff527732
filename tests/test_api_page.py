"""The API appendix (appendices/api.md) is current and sends every public name to a section."""

from __future__ import annotations

import importlib.util
import re
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


def _load_tool():
    spec = importlib.util.spec_from_file_location("api_page", ROOT / "tools" / "api_page.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules["api_page"] = module  # dataclasses look their module up there
    spec.loader.exec_module(module)
    return module


api_page = _load_tool()


@pytest.fixture(scope="module")
def entries():
    return api_page.public_api()


def test_committed_page_is_what_the_generator_writes_now(entries):
    committed = api_page.PAGE.read_text(encoding="utf-8")
    assert committed == api_page.render(entries), (
        "appendices/api.md is out of date: run `python tools/api_page.py` and commit the page")


def test_every_public_name_has_a_teaching_section(entries):
    missing = [f"{e.module}.{e.name}" for e in entries if e.section is None]
    assert not missing, (
        "these public names neither name a chapter/section in their docstring nor appear in a "
        f"notebook's code, so the API page cannot say where they are taught: {missing}")


def test_the_page_lists_every_name_in_every_all(entries):
    import tlutils.adapt
    import tlutils.transfer

    listed = {(e.module, e.name) for e in entries}
    for module in (tlutils.adapt, tlutils.transfer):
        for name in module.__all__:
            obj = getattr(module, name)
            if callable(obj) and hasattr(obj, "__name__"):
                assert (module.__name__, name) in listed
    assert ("tlutils", "setup") in listed


def test_links_point_to_pages_of_the_book():
    page = api_page.PAGE.read_text(encoding="utf-8")
    toc = (ROOT / "_toc.yml").read_text(encoding="utf-8")
    assert re.search(r"^\s*- file: appendices/api\s*$", toc, re.MULTILINE), "api.md not in _toc.yml"
    targets = re.findall(r"\{doc\}`[^`<]*<\.\./([^>]+)>`", page)
    assert targets
    files = set(api_page._toc_files())
    assert set(targets) <= files, set(targets) - files


def test_chapter_mentions_cover_the_docstring_forms():
    m = api_page.chapter_mentions
    assert m('(chapter 04, "Evaluation")') == [(4, None, "Evaluation")]
    assert m("used by chapters 01-03") == [(1, None, None), (2, None, None), (3, None, None)]
    assert m("chapters 02, 04 and 06") == [(2, None, None), (4, None, None), (6, None, None)]
    assert m("(chapter 05.7)") == [(5, "5.7", None)]
    assert m('(section 5.1, "The target domain")') == [(5, "5.1", "The target domain")]
    assert m("Chapter 04's recipes; chapter 05, negative transfer") == [
        (4, None, None), (5, None, "negative transfer")]
    assert m("no mention at all") == []


def _sections():
    S = api_page.Section
    return [
        S("chapters/03_x/index", 3, "3", "3. Algorithms"),
        S("chapters/03_x/03_1_loss", 3, "3.1", "3.1 Loss and gradient descent",
          ["Pitfalls"], "from tlutils import losses\nlosses.cross_entropy(y, p)"),
        S("chapters/03_x/03_2_reg", 3, "3.2", "3.2 Regularisation and fine-tuning",
          ["The fine-tuning procedure"], "transfer.L2SP(0.01)\ntlutils.setup(0)"),
        S("chapters/05_x/index", 5, "5", "5. Frontiers"),
        S("chapters/05_x/05_1_cross", 5, "5.1", "5.1 Cross-domain transfer", [], ""),
        S("appendices/setup", 0, "0", "Setup", [], "",
          "Call `tlutils.zoo.clear()` or read `Digits.source`; `clear` alone is too vague."),
    ]


def test_teaching_section_prefers_number_then_title_then_use_then_chapter():
    t = api_page.teaching_section
    secs = _sections()
    assert t("(section 5.1)", "tlutils.adapt", "coral_loss", secs).number == "5.1"
    assert t('(chapter 03, "Regularisation")', "tlutils.x", "y", secs).number == "3.2"
    assert t("(chapter 03)", "tlutils.losses", "cross_entropy", secs).number == "3.1"
    assert t("(chapter 03)", "tlutils.transfer", "L2SP", secs).number == "3.2"
    assert t('(chapter 03, "The fine-tuning procedure")', "tlutils.x", "y", secs).number == "3.2"
    assert t("(chapter 05)", "tlutils.adapt", "unused", secs).number == "5"  # chapter's first page
    assert t("No chapter named.", "tlutils", "setup", secs).number == "3.2"  # used there
    assert t("No chapter named.", "tlutils.adapt", "unused", secs) is None
    assert t("(chapter 09)", "tlutils.adapt", "unused", secs) is None  # no such chapter
    # Named only in an appendix's text: qualified, or a class at the start of a code span.
    assert t("Empty the cache.", "tlutils.zoo", "clear", secs).file == "appendices/setup"
    assert t("Images and labels.", "tlutils.data", "Digits", secs).file == "appendices/setup"
    assert t("Empty the cache.", "tlutils.other", "clear", secs) is None


def test_summary_is_one_markdown_safe_line():
    s = api_page.summary
    assert s('Seed everything (chapter 04, "Evaluation").\n\nMore text.') == "Seed everything."
    assert s("Uses :func:`apply_l2sp` and $x$ | <b>.") == r"Uses ``apply_l2sp`` and \$x\$ \| \<b\>."
    assert s("``|a - b|`` in [0, 1]") == r"``\|a - b\|`` in \[0, 1\]"
    assert s("") == "(no docstring)"
