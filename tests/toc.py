"""The book's table of contents as the tests read it (the book and browser tests share it)."""

from __future__ import annotations

from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def toc() -> dict:
    """``_toc.yml``, parsed."""
    import yaml

    return yaml.safe_load((ROOT / "_toc.yml").read_text())


def toc_pages() -> list[str]:
    """Every page of the TOC in reading order, the root first."""
    book = toc()
    pages = [book["root"]]

    def walk(entries: list[dict]) -> None:
        for entry in entries:
            if "file" in entry:
                pages.append(entry["file"])
            walk(entry.get("sections", []))
            walk(entry.get("chapters", []))

    for part in book.get("parts", []):
        walk(part.get("chapters", []))
    return pages
