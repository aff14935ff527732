"""The order `make test` starts files in (tests/conftest.py): longest first, and the notebook
that computes a shared result before the notebooks that read it (issue 12)."""

from __future__ import annotations

from pathlib import Path

from tests.conftest import PRODUCERS, READERS, ROOT, file_order


def test_the_producer_starts_first_beside_the_longest_file_that_does_not_wait_for_it():
    costs = {Path("06_faq.ipynb"): 400.0, Path("05_4.ipynb"): 300.0,
             Path("04_3_target_fine_tuning.ipynb"): 100.0, Path("01_background.ipynb"): 50.0,
             Path("test_x.py"): 0.0}
    assert [p.name for p in file_order(costs)] == [
        "04_3_target_fine_tuning.ipynb", "05_4.ipynb", "06_faq.ipynb", "01_background.ipynb",
        "test_x.py"]
    # three workers: two files that read nothing start beside the producer
    assert [p.name for p in file_order(costs, workers=3)][:3] == [
        "04_3_target_fine_tuning.ipynb", "05_4.ipynb", "test_x.py"]


def test_the_lists_name_the_notebooks_that_share_the_cached_comparison():
    """Every notebook that asks for a cached comparison is the producer or a reader, and
    xdist is told to keep the order."""
    asking = {path.name for path in ROOT.glob("chapters/*/*.ipynb")
              if "cache=True" in path.read_text(encoding="utf-8")}
    assert asking == set(PRODUCERS) | set(READERS)
    assert "--no-loadscope-reorder" in (ROOT / "Makefile").read_text(encoding="utf-8")
