"""Write ``appendices/api.md``: every public ``tlutils`` function and class, its one-line
summary and the book section that teaches it.

    python tools/api_page.py           # rewrite the page
    python tools/api_page.py --check   # exit 1 (and say why) if the page is stale

Public names are each module's ``__all__`` (for a module without one: the functions and classes
it defines that no other module already lists). The section comes from the docstring, which
names the chapter that teaches the name (a project rule): ``section 5.7`` or ``chapter 05.7``
names a section, ``(chapter 04, "Evaluation")`` a chapter and a title, ``chapters 01-06`` a
range. Within the chapters named, the section is the first one, in ``_toc.yml`` order, whose
title matches the quoted title, else whose code cells use the name, else whose text names it
in a code span, else the chapter's first page. A name whose docstring names no chapter falls
back to the first page (appendices included) whose code uses it, else whose text names it in
a code span (``tlutils.zoo.clear()``). ``tests/test_api_page.py`` checks that the committed
page is current and that every public name has a section.
"""

from __future__ import annotations

import importlib
import inspect
import json
import pkgutil
import re
import sys
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PAGE = ROOT / "appendices" / "api.md"
TOC = ROOT / "_toc.yml"

STOP_WORDS = {"the", "and", "for", "from", "with", "its", "what", "how", "why", "into", "are"}


@dataclass
class Section:
    """One page of the book: ``file`` as in ``_toc.yml`` (no suffix)."""

    file: str
    chapter: int  # 5 for chapters/05_frontiers/...
    number: str  # "5.1", or "5" for a chapter's first page
    title: str  # the page's H1, e.g. "5.1 Cross-domain transfer and domain adaptation"
    headings: list[str] = field(default_factory=list)
    code: str = ""
    prose: str = ""  # the Markdown text, for names only mentioned there (appendices)


@dataclass
class Entry:
    """One public name: ``module`` is where a reader finds it (``tlutils.adapt``)."""

    module: str
    name: str
    kind: str  # "function" or "class"
    summary: str
    section: Section | None


# --------------------------------------------------------------------------- the book's pages

def _toc_files(toc_path: Path = TOC) -> list[str]:
    """Every file of ``_toc.yml`` but this page, in reading order (appendices last)."""
    import yaml

    toc = yaml.safe_load(toc_path.read_text(encoding="utf-8"))
    files: list[str] = []

    def walk(items: list[dict]) -> None:
        for item in items or []:
            if "file" in item:
                files.append(item["file"])
            walk(item.get("sections", []))

    for part in toc.get("parts", []):
        walk(part.get("chapters", []))
    return [f for f in files if f != "appendices/api"]


def _read_page(path: Path) -> tuple[list[str], str]:
    """Markdown lines and the code of a notebook or MyST page."""
    if path.suffix == ".ipynb":
        cells = json.loads(path.read_text(encoding="utf-8"))["cells"]
        text = lambda c: "".join(c["source"]) if isinstance(c["source"], list) else c["source"]  # noqa: E731
        md = [line for c in cells if c["cell_type"] == "markdown" for line in text(c).splitlines()]
        code = "\n".join(text(c) for c in cells if c["cell_type"] == "code")
        return md, code
    md, code, fence = [], [], None
    for line in path.read_text(encoding="utf-8").splitlines():
        opening = re.match(r"\s*(`{3,}|~{3,})", line)
        if fence is None and opening:
            fence = opening.group(1)
        elif fence is not None and line.strip().startswith(fence):
            fence = None
        elif fence is not None:
            code.append(line)
        else:
            md.append(line)
    return md, "\n".join(code)


def book_sections(root: Path = ROOT) -> list[Section]:
    """The book's pages in reading order, with their titles, headings and code."""
    sections = []
    for file in _toc_files(root / "_toc.yml"):
        path = next((root / f"{file}{ext}" for ext in (".ipynb", ".md")
                     if (root / f"{file}{ext}").exists()), None)
        if path is None:
            raise FileNotFoundError(f"_toc.yml lists {file!r}, which is neither .ipynb nor .md")
        md, code = _read_page(path)
        headings = [line.lstrip("#").strip() for line in md if re.match(r"#{1,3} ", line)]
        title = headings[0] if headings else Path(file).name
        folder = re.match(r"chapters/(\d+)_", file)
        chapter = int(folder.group(1)) if folder else 0
        stem = re.match(r"(\d+)_(\d+)_", Path(file).name)
        number = f"{int(stem.group(1))}.{int(stem.group(2))}" if stem else str(chapter)
        sections.append(Section(file, chapter, number, title, headings[1:], code, "\n".join(md)))
    return sections


# --------------------------------------------------------------------------- docstrings

_NUM = r"\d{1,2}(?:\.\d+)?"
CHAPTER_RE = re.compile(
    rf"\b(?:[Cc]hapters?|[Ss]ections?)\s+(?P<nums>{_NUM}(?:\s*(?:-|–|,|and)\s*{_NUM})*)(?![\d.]*\d)"
    r"(?:'s)?(?:\s*,\s*(?:\"(?P<quoted>[^\"]+)\"|(?P<plain>[A-Za-z][\w\- ]*[\w])))?"
)


def chapter_mentions(doc: str) -> list[tuple[int, str | None, str | None]]:
    """``(chapter, section number or None, title hint or None)`` for each mention, in order.

    >>> chapter_mentions('Plots (chapters 01, 03-04; chapter 05.7, "Scale-out").')
    [(1, None, None), (3, None, None), (4, None, None), (5, '5.7', 'Scale-out')]
    >>> chapter_mentions('A loss (section 3.1, "Why the literal formula fails"; sections 5.1 and 5.4)')
    [(3, '3.1', 'Why the literal formula fails'), (5, '5.1', None), (5, '5.4', None)]
    """
    doc = " ".join(doc.split())
    out: list[tuple[int, str | None, str | None]] = []
    for m in CHAPTER_RE.finditer(doc):
        hint = m.group("quoted") or m.group("plain")
        parts = re.split(r"\s*(?:,|and)\s*", m.group("nums"))
        for i, part in enumerate(parts):
            part_hint = hint if i == len(parts) - 1 else None
            if re.fullmatch(r"\d+\.\d+\s*[-–]\s*\d+\.\d+", part):  # sections 3.1-3.2
                (c, low), (_, high) = (map(int, p.split(".")) for p in re.split(r"\s*[-–]\s*", part))
                out.extend((c, f"{c}.{k}", part_hint if k == high else None)
                           for k in range(low, high + 1))
            elif re.fullmatch(rf"{_NUM}\s*[-–]\s*{_NUM}", part):
                low, high = (int(float(p)) for p in re.split(r"\s*[-–]\s*", part))
                out.extend((c, None, part_hint if c == high else None)
                           for c in range(low, high + 1))
            elif "." in part:
                chapter, sub = part.split(".", 1)
                out.append((int(chapter), f"{int(chapter)}.{int(sub)}", part_hint))
            else:
                out.append((int(part), None, part_hint))
    return out


def _words(text: str) -> set[str]:
    return {w for w in re.findall(r"[a-z0-9]+", text.lower()) if len(w) > 2 and w not in STOP_WORDS}


def _matches(hint: str, text: str) -> bool:
    """At least half of the hint's words appear in ``text``."""
    hint_words = _words(hint)
    return bool(hint_words) and len(hint_words & _words(text)) * 2 >= len(hint_words)


def _uses(section: Section, module: str, name: str) -> bool:
    """Whether the section's code calls ``name`` as a reader would write it."""
    if module == "tlutils":
        pattern = rf"\btlutils\.{name}\b|from tlutils import [^\n]*\b{name}\b"
    else:
        short = module.rsplit(".", 1)[-1]
        pattern = (rf"(?<![\w.])(?:tlutils\.)?{short}\.{name}\b"
                   rf"|from {re.escape(module)} import [^\n]*\b{name}\b")
    return re.search(pattern, section.code) is not None


def _mentions(section: Section, module: str, name: str, *, loose: bool = False) -> bool:
    """Whether the section's text names ``name`` in a code span: qualified (``zoo.clear()``),
    or at the start of the span for a class (```Digits.source```, ```CorruptDataError: ...```)
    and, when ``loose`` (within the chapters a docstring names), for any name."""
    short = module.rsplit(".", 1)[-1]
    qualified = rf"(?<![\w.])(?:tlutils\.)?{short}\.{name}\b"
    for span in re.findall(r"`+([^`]+)`+", section.prose):
        if re.search(qualified, span):
            return True
        if (loose or name[:1].isupper()) and re.match(rf"{name}\b", span):
            return True
    return False


def teaching_section(doc: str, module: str, name: str, sections: list[Section]) -> Section | None:
    """The section that teaches ``module.name`` (see the module docstring for the rule)."""
    mentions = [m for m in chapter_mentions(doc) if any(s.chapter == m[0] for s in sections)]
    for _, number, _ in mentions:
        for s in sections:
            if number is not None and s.number == number:
                return s
    chapters = {chapter for chapter, _, _ in mentions}
    hints = [hint for _, _, hint in mentions if hint]
    candidates = [s for s in sections if s.chapter in chapters] if chapters else sections
    for hint in hints:
        for s in candidates:
            if s.number != str(s.chapter) and _matches(hint, s.title):
                return s
    for s in candidates:
        if _uses(s, module, name):
            return s
    for hint in hints:
        for s in candidates:
            if any(_matches(hint, h) for h in s.headings) and s.number != str(s.chapter):
                return s
    if chapters:
        return next((s for s in candidates if _mentions(s, module, name, loose=True)),
                    candidates[0])
    return next((s for s in sections if _mentions(s, module, name)), None)


_ROLE = re.compile(r":(?:[\w-]+:)?[\w-]+:`~?([^`]+)`")
_CHAPTER_NOTE = re.compile(r"\s*\([^()]*\b(?:[Cc]hapters?|[Ss]ections?)\s+\d[^()]*\)")


def _own_doc(obj: object) -> str:
    """The object's own docstring (a class without one does not inherit its base's)."""
    doc = obj.__dict__.get("__doc__") if inspect.isclass(obj) else obj.__doc__
    return inspect.cleandoc(doc) if isinstance(doc, str) else ""


def summary(doc: str) -> str:
    """The docstring's first sentence as one line of Markdown, without the chapter note."""
    first = " ".join(doc.split("\n\n", 1)[0].split())
    first = _ROLE.sub(r"``\1``", first)
    first = _CHAPTER_NOTE.sub("", first)
    m = re.match(r"(.+?[.!?])(?=\s+[A-Z`(]|$)", first)
    text = (m.group(1) if m else first).strip()
    return _escape(text) if text else "(no docstring)"


def _escape(text: str) -> str:
    """Escape what Markdown tables, MyST math and raw HTML would eat, outside code spans."""
    parts = re.split(r"(`+[^`]*?`+)", text)
    out = []
    for i, part in enumerate(parts):
        if i % 2:  # a code span: only the table's pipe needs escaping
            out.append(part.replace("|", r"\|"))
        else:
            out.append(re.sub(r"([|$<>*_\[\]])", r"\\\1", part))
    return "".join(out)


# --------------------------------------------------------------------------- the package

def _modules() -> list[str]:
    import tlutils

    names = [m.name for m in pkgutil.iter_modules(tlutils.__path__)
             if not m.name.startswith("_") and m.name not in INTERNAL]
    return ["tlutils"] + [f"tlutils.{n}" for n in sorted(names)]


#: Modules of tlutils' own plumbing, public to its other modules but taught nowhere: the
#: argument validators every public function calls at its entry.
INTERNAL = {"checks"}


def public_api(sections: list[Section] | None = None) -> list[Entry]:
    """Every public function and class, module by module, with its teaching section."""
    sections = book_sections() if sections is None else sections
    entries: list[Entry] = []
    seen: set[int] = set()
    for module_name in _modules():
        module = importlib.import_module(module_name)
        names = getattr(module, "__all__", None)
        explicit = names is not None
        if not explicit:
            names = sorted(n for n, o in vars(module).items()
                           if not n.startswith("_") and (inspect.isfunction(o) or inspect.isclass(o))
                           and getattr(o, "__module__", None) == module_name)
        for name in names:
            obj = getattr(module, name, None)
            if not (inspect.isfunction(obj) or inspect.isclass(obj)):
                continue  # constants (KINDS, ZOO_VERSION ...) have no docstring of their own
            if not explicit and id(obj) in seen:
                continue
            seen.add(id(obj))
            doc = _own_doc(obj)
            entries.append(Entry(module_name, name, "class" if inspect.isclass(obj) else "function",
                                 summary(doc), teaching_section(doc, module_name, name, sections)))
    return entries


def _module_summary(module_name: str) -> str:
    doc = inspect.cleandoc(importlib.import_module(module_name).__doc__ or "")
    return summary(doc) if doc else ""


def render(entries: list[Entry] | None = None) -> str:
    """The page's Markdown."""
    entries = public_api() if entries is None else entries
    lines = [
        "# API reference: `tlutils`",
        "",
        "Every public function and class of `tlutils`, the book's helper package: what it does,",
        "and the section that teaches it, so that you can go from a helper call in a notebook",
        "back to the lesson, where the mechanism is first written in plain Keras.",
        "`help(tlutils.adapt.coral_loss)` in a notebook shows a helper's full docstring.",
        "",
        "This page is generated from the docstrings by `tools/api_page.py`; do not edit it by",
        "hand (`tests/test_api_page.py` fails when it is out of date).",
    ]
    by_module: dict[str, list[Entry]] = {}
    for e in entries:
        by_module.setdefault(e.module, []).append(e)
    for module_name, items in by_module.items():
        lines += ["", f"## `{module_name}`", ""]  # in code: linkify would turn tlutils.io into a URL
        about = _module_summary(module_name)
        if about:
            lines += [about, ""]
        lines += ["| Name | What it does | Taught in |", "| --- | --- | --- |"]
        for e in items:
            label = f"`{e.name}`" if e.kind == "class" else f"`{e.name}()`"
            if e.section is None:
                where = "(no section yet)"
            else:
                where = f"{{doc}}`{_escape_role(e.section.title)} <../{e.section.file}>`"
            lines.append(f"| {label} | {e.summary} | {where} |")
    return "\n".join(lines) + "\n"


def _escape_role(title: str) -> str:
    """A title usable as the text of a ``{doc}`` role inside a table cell."""
    return title.replace("`", "'").replace("<", "(").replace(">", ")").replace("|", "/")


def main(argv: list[str]) -> int:
    text = render()
    if "--check" in argv:
        current = PAGE.read_text(encoding="utf-8") if PAGE.exists() else ""
        if current != text:
            print(f"{PAGE.relative_to(ROOT)} is out of date: run python tools/api_page.py",
                  file=sys.stderr)
            return 1
        return 0
    tmp = PAGE.with_suffix(".md.tmp")
    tmp.write_text(text, encoding="utf-8")
    tmp.replace(PAGE)  # never half-written
    print(f"wrote {PAGE.relative_to(ROOT)}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
