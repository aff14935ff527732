"""Shared test setup: quiet TensorFlow, a private model-zoo cache, no network."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
os.environ.setdefault("TF_ENABLE_ONEDNN_OPTS", "0")

import pytest  # noqa: E402

import tlutils  # noqa: E402,F401  (imports TensorFlow quietly)


@pytest.fixture(autouse=True)
def _isolated(tmp_path_factory, monkeypatch):
    """Every test gets the session's private zoo cache and never touches the network."""
    cache = tmp_path_factory.getbasetemp() / "tlutils-cache"
    monkeypatch.setenv("TLUTILS_CACHE_DIR", str(cache))
    monkeypatch.setenv("TLUTILS_OFFLINE", "1")
    yield


SHARED_MNIST = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", "..", "shared",
                                            "data", "mnist"))


ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="session")
def built_book(tmp_path_factory) -> Path:
    """Build once per test run into a temporary folder (or reuse BOOK_HTML if set).

    Under pytest-xdist every worker asks for this fixture; the first builds the book into
    the run's shared temporary folder while holding a file lock, the others wait and reuse
    it, so the book is built once however many workers need it."""
    if os.environ.get("BOOK_HTML"):
        return Path(os.environ["BOOK_HTML"])
    from filelock import FileLock

    shared = tmp_path_factory.getbasetemp()
    if os.environ.get("PYTEST_XDIST_WORKER"):
        shared = shared.parent  # the folder all workers of this run share
    out = shared / "book"
    html = out / "_build" / "html"
    with FileLock(str(shared / "book.lock")):
        if (out / "build-ok").is_file():
            return html
        jb = shutil.which("jupyter-book", path=str(Path(sys.executable).parent)) or "jupyter-book"
        proc = subprocess.run([jb, "build", str(ROOT), "--path-output", str(out), "-W", "-n",
                               "--keep-going"], capture_output=True, text=True, timeout=1800)
        log = proc.stdout + proc.stderr
        # -W turns every Sphinx warning into an error, so success means zero warnings.
        assert proc.returncode == 0, f"book build failed:\n{log[-6000:]}"
        (out / "build-ok").write_text("ok\n")
    return html


# Longest first (issue 12). `make test` spreads whole files over two pytest-xdist workers in
# collection order, so a long file collected last leaves one core idle while it finishes.
# Files are therefore collected by their expected cost, largest first: a notebook by the time
# its committed run took (the cells' execution timestamps, which `make execute` records), a
# test file by the estimate below (measured on the 2-core machine, `--durations`), anything
# else after them in the usual order. Only the order changes, never what runs.
SLOW_TEST_FILES = {  # seconds, rounded
    "test_assignments.py": 300,
    "test_browser.py": 150,  # waits for the book build (shared with test_book, test_links)
    "test_grading_attacks.py": 60,
}


def _recorded_seconds(notebook: Path) -> float:
    """Total execution time of a notebook's committed run, from its cells' timestamps."""
    import json

    from tools.notebook_cells import cell_seconds

    try:
        cells = json.loads(notebook.read_text(encoding="utf-8"))["cells"]
    except (OSError, ValueError, KeyError):
        return 0.0
    return sum(cell_seconds(cell) or 0.0 for cell in cells)


# Shared results first. Section 4.3's comparison is computed once and read from the results
# cache by chapter 1, 4.4 and the FAQ (`transfer.compare(cache=True)`, `tlutils.memo`); a
# notebook asking for it while it is being computed waits on its file lock with its core idle
# (in one measured run 4.4 computed it in a 194 s cell while chapter 1 waited 141 s). So the
# notebook that computes it starts first, beside the longest files that do not read it (one
# per other worker), and its readers come after, when the table is there. (`make test` passes
# --no-loadscope-reorder, so pytest-xdist keeps this order instead of sorting files by
# their number of tests.)
PRODUCERS = ("04_3_target_fine_tuning.ipynb",)
READERS = ("01_background.ipynb", "04_4_evaluation.ipynb", "06_faq.ipynb")


def file_order(costs: dict[Path, float], workers: int = 2) -> list[Path]:
    """Files in the order they should start: the producers of shared results, beside them
    the longest files that read none (one per other worker), then every other file longest
    first."""
    files = sorted(costs, key=lambda path: -costs[path])
    first = [path for path in files if path.name in PRODUCERS]
    rest = [path for path in files if path.name not in PRODUCERS]
    if first:
        beside = [path for path in rest if path.name not in READERS][:max(workers - 1, 0)]
        rest = [path for path in rest if path not in beside]
        first += beside
    return first + rest


def pytest_collection_modifyitems(session, config, items):
    costs: dict[Path, float] = {}
    for item in items:
        path = Path(str(item.fspath))
        if path not in costs:
            costs[path] = (_recorded_seconds(path) if path.suffix == ".ipynb"
                           else SLOW_TEST_FILES.get(path.name, 0.0))
    workers = int(os.environ.get("PYTEST_XDIST_WORKER_COUNT", "1"))
    rank = {path: i for i, path in enumerate(file_order(costs, workers))}
    items.sort(key=lambda item: rank[Path(str(item.fspath))])  # stable within a file


def pytest_configure(config):
    # nbval's notebook kernels get three chances to start (tools/kernel_start.py says why)
    try:
        import nbval.kernel
    except ImportError:
        return
    from tools.kernel_start import retrying_kernel_start

    if not getattr(nbval.kernel.start_new_kernel, "retrying", False):
        nbval.kernel.start_new_kernel = retrying_kernel_start(nbval.kernel.start_new_kernel)
