"""The cells every chapter notebook shares, and a command that rewrites them in place.

``python tools/notebook_cells.py`` replaces the cell tagged ``setup`` in every notebook under
``chapters/`` with :data:`SETUP_CELL` (built from the repository URL in ``_config.yml``), so
the Colab install line is the same everywhere. Tests import :func:`setup_cell` to check it.
"""

from __future__ import annotations

import re
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def repository_url() -> str:
    """The canonical repository URL, read from ``_config.yml`` (``repository: url:``)."""
    text = (ROOT / "_config.yml").read_text()
    match = re.search(r"^repository:\s*\n(?:[ \t]+.*\n)*?[ \t]+url:\s*(\S+)", text, re.M)
    if not match:
        raise ValueError("_config.yml has no repository.url")
    return match.group(1).strip("'\"")


def setup_cell() -> str:
    url = repository_url()
    return (
        "# Setup: in Google Colab, install tlutils (the book's helper package) from the book's\n"
        "# repository. Anywhere else this cell does nothing: `make` has installed it already.\n"
        "import os\n"
        "import sys\n"
        "\n"
        'if "google.colab" in sys.modules:\n'
        "    # TLUTILS_PIP may name another source (the book's tests install a local build).\n"
        f'    TLUTILS_PIP = os.environ.get("TLUTILS_PIP", "tlutils[text] @ git+{url}@main")\n'
        '    %pip install -q "$TLUTILS_PIP"'
    )


SETUP_CELL = setup_cell()


def rewrite(paths: list[Path]) -> int:
    import nbformat

    changed = 0
    for path in paths:
        nb = nbformat.read(path, as_version=4)
        for cell in nb.cells:
            if cell.cell_type == "code" and "setup" in cell.metadata.get("tags", []):
                if cell.source != SETUP_CELL:
                    cell.source = SETUP_CELL
                    changed += 1
                    nbformat.write(nb, path)
                break
    return changed


if __name__ == "__main__":
    targets = [Path(p) for p in sys.argv[1:]] or sorted((ROOT / "chapters").rglob("*.ipynb"))
    print(f"rewrote the setup cell in {rewrite(targets)} notebook(s)")
