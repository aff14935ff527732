"""Every chapter notebook is committed executed, in order, without errors, and follows the
book's anatomy (CONTRIBUTING.md)."""

from __future__ import annotations

import json
import re
import sys
from pathlib import Path
from types import SimpleNamespace

import pytest

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tools"))
import notebook_cells  # noqa: E402

NOTEBOOKS = sorted((ROOT / "chapters").rglob("*.ipynb"))
IDS = [str(p.relative_to(ROOT)) for p in NOTEBOOKS]
PLACEHOLDER = "This section is being written."


def _load(path: Path) -> dict:
    """The notebook's JSON; skips the test for a placeholder page (a title and the sentence
    PLACEHOLDER, no code), which the book shows until the section's notebook lands."""
    nb = json.loads(path.read_text())
    if not _code_cells(nb) and PLACEHOLDER in "".join(nb["cells"][0]["source"]):
        pytest.skip("placeholder page: section being written")
    return nb


def _code_cells(nb: dict) -> list[dict]:  # noqa: D103
    return [c for c in nb["cells"] if c["cell_type"] == "code" and "".join(c["source"]).strip()]


def _markdown(nb: dict) -> str:
    return "\n".join("".join(c["source"]) for c in nb["cells"] if c["cell_type"] == "markdown")


def test_every_notebook_is_in_the_table_of_contents():
    toc = (ROOT / "_toc.yml").read_text()
    assert NOTEBOOKS, "no notebooks"
    for path in NOTEBOOKS:
        assert str(path.relative_to(ROOT).with_suffix("")) in toc, f"{path} is not in _toc.yml"


@pytest.mark.parametrize("path", NOTEBOOKS, ids=IDS)
def test_committed_executed_in_order_without_errors(path):
    nb = _load(path)
    cells = _code_cells(nb)
    assert cells, "notebook has no code"
    counts = [c.get("execution_count") for c in cells]
    assert counts == list(range(1, len(cells) + 1)), f"execution counts {counts}"
    errors = [o for c in cells for o in c.get("outputs", []) if o.get("output_type") == "error"]
    assert not errors, f"error outputs: {[e.get('ename') for e in errors]}"
    assert nb["metadata"]["kernelspec"]["name"] == "python3"


@pytest.mark.parametrize("path", NOTEBOOKS, ids=IDS)
def test_the_full_run_keeps_every_default_level(path):
    """``FULL = True`` may add seeds, budgets, rates or drift levels, never drop one: the claim
    cells name the default's levels (5.4's full run once had no 45-degree rotation, so its
    claims stopped with an error; bench_claims found it). And a claim that the full run does
    not confirm is printed, not raised, so the full run gets to the end."""
    import numpy as np

    from tlutils import zoo

    nb = _load(path)
    cell = notebook_cells.parameters_cell(nb)
    source = "".join(cell["source"]) if cell else ""
    if "FULL = False" not in source:
        pytest.skip("no FULL parameter")
    stops: dict[str, list] = {"default": [], "full": []}

    def stub(run: str) -> SimpleNamespace:  # records claims.stop_on_failure without setting it
        return SimpleNamespace(stop_on_failure=stops[run].append)

    default: dict = {"np": np, "zoo": zoo, "claims": stub("default")}
    full: dict = {"np": np, "zoo": zoo, "claims": stub("full")}
    exec(source, default)  # noqa: S102 - the book's own parameters cell
    exec(source.replace("FULL = False", "FULL = True"), full)  # noqa: S102
    code = "".join("".join(c["source"]) for c in _code_cells(nb))
    if "claims.check(" in code or "claims.verify(" in code:
        # a claim that does not hold stops the default run, but not the full one, whose prose
        # names the claims it changes: it must run to the end in Colab
        assert stops == {"default": [True], "full": [False]}, stops
    for name, value in default.items():
        other = full.get(name)
        if isinstance(value, (list, tuple)) and isinstance(other, (list, tuple)):
            dropped = [v for v in value if v not in other]
            assert not dropped, f"{name}: the full run drops {dropped}"
        elif isinstance(value, dict) and isinstance(other, dict):
            assert not set(value) - set(other), f"{name}: the full run drops {set(value) - set(other)}"


def _stored_names(source: str) -> set[str]:
    """Names a cell assigns outside any function (a function's locals shadow nothing)."""
    import ast

    code = "\n".join(line for line in source.splitlines() if not line.lstrip().startswith(("%", "!")))
    names: set[str] = set()

    def visit(node: ast.AST) -> None:
        for child in ast.iter_child_nodes(node):
            if isinstance(child, (ast.FunctionDef, ast.AsyncFunctionDef, ast.Lambda, ast.ClassDef)):
                continue
            if isinstance(child, ast.Name) and isinstance(child.ctx, ast.Store):
                names.add(child.id)
            visit(child)

    visit(ast.parse(code))
    return names


@pytest.mark.parametrize("path", NOTEBOOKS, ids=IDS)
def test_parameters_are_set_only_in_the_parameters_cell(path):
    """A later cell that assigns a parameter's name overrides what the reader, the full run
    and benchmarks/bench_claims.py set there (5.7's manual loop once reused ``STEPS``)."""
    nb = _load(path)
    params = notebook_cells.parameters_cell(nb)
    if params is None:
        pytest.skip("no parameters cell")
    names = {n for n in _stored_names("".join(params["source"])) if n.isupper()}
    clashes = {
        (n, i)
        for i, c in enumerate(_code_cells(nb))
        if c is not params
        for n in _stored_names("".join(c["source"])) & names
    }
    assert not clashes, f"parameters assigned again in later code cells (name, code cell): {sorted(clashes)}"


@pytest.mark.parametrize("path", NOTEBOOKS, ids=IDS)
def test_anatomy(path):
    nb = _load(path)
    first = nb["cells"][0]
    assert first["cell_type"] == "markdown" and "".join(first["source"]).startswith("# ")
    text = _markdown(nb)
    assert re.search(r"learning goals", text, re.I), "no learning goals"
    assert re.search(r"^## Exercises", text, re.M), "no Exercises section"
    assert len(re.findall(r":::\{exercise\}", text)) >= 3, "fewer than 3 exercises"
    assert len(re.findall(r":::\{solution\}", text)) >= 3, "exercise solutions missing"
    assert re.search(r"^## Summary", text, re.M), "no Summary section"
    tags = [c.get("metadata", {}).get("tags", []) for c in _code_cells(nb)]
    assert ["setup"] in tags or any("setup" in t for t in tags), "no cell tagged setup"
    params = [c for c in _code_cells(nb) if "parameters" in c.get("metadata", {}).get("tags", [])]
    assert params and "FULL" in "".join(params[0]["source"]), "no parameters cell with FULL"


@pytest.mark.parametrize("path", NOTEBOOKS, ids=IDS)
def test_setup_cell_is_the_shared_one(path):
    nb = _load(path)
    setup = [c for c in _code_cells(nb) if "setup" in c.get("metadata", {}).get("tags", [])]
    assert setup, "no setup cell"
    assert "".join(setup[0]["source"]) == notebook_cells.setup_cell_for(nb)
    assert notebook_cells.repository_url() in notebook_cells.setup_cell_for(nb)


@pytest.mark.parametrize("path", NOTEBOOKS, ids=IDS)
def test_tlutils_is_imported_before_tensorflow(path):
    source = "\n".join("".join(c["source"]) for c in _code_cells(_load(path)))
    tl = source.find("import tlutils")
    tf = min([i for i in (source.find("import tensorflow"), source.find("import keras"))
              if i >= 0], default=len(source))
    assert 0 <= tl < tf, "import tlutils must come before TensorFlow/Keras"


@pytest.mark.parametrize("path", NOTEBOOKS, ids=IDS)
def test_no_tensorflow_noise_in_outputs(path):
    noise = re.compile(r"(E0000|W0000|I0000|cuda_|oneDNN|absl::|node_def_util|"
                       r"This TensorFlow binary is optimized)")
    for cell in _code_cells(_load(path)):
        for out in cell.get("outputs", []):
            text = out.get("text", "") if isinstance(out.get("text"), str) else "".join(out.get("text", []))
            assert not noise.search(text), f"TensorFlow log noise in an output: {text[:200]}"


def test_exercise_labels_are_unique_across_the_book():
    labels = []
    for path in NOTEBOOKS:
        nb = json.loads(path.read_text())
        labels += re.findall(r":::\{exercise\}\s*\n:label: (\S+)", _markdown(nb))
    duplicates = {label for label in labels if labels.count(label) > 1}
    assert not duplicates


def _parameters(nb: dict, full: bool) -> dict:
    cell = notebook_cells.parameters_cell(nb)
    scope: dict = {"claims": SimpleNamespace(stop_on_failure=lambda stop: None)}
    exec("".join(cell["source"]).replace("FULL = False", f"FULL = {full}"), scope)  # noqa: S102
    return scope


def _compare_call(nb: dict) -> str:
    """The ``runs = transfer.compare(...)`` call of a notebook, comments and spaces removed."""
    for cell in nb["cells"]:
        text = "".join(cell["source"])
        match = re.search(r"runs = transfer\.compare\((.*?)\n\)", text, re.S)
        if cell["cell_type"] == "code" and match:
            body = re.sub(r"#[^\n]*", "", match.group(1))
            return re.sub(r"\s+", "", body)
    raise AssertionError("no 'runs = transfer.compare(' call")


def _definition(nb: dict, name: str) -> str:
    """The statement ``name = ...`` of a notebook (up to the next top-level line), spaces and
    comments removed."""
    for cell in nb["cells"]:
        text = "".join(cell["source"])
        match = re.search(rf"^{name} = (.*?)(?=^\S)", text + "\nEND", re.S | re.M)
        if cell["cell_type"] == "code" and match:
            return re.sub(r"\s+", "", re.sub(r"#[^\n]*", "", match.group(1)))
    raise AssertionError(f"no '{name} = ' statement")


def test_chapter_1_and_sections_4_3_and_4_4_run_one_comparison():
    """One fact, one number (issue 13): chapter 1's learning curve, section 4.4's baselines and
    the FAQ's Q1 (chapter 6) are section 4.3's comparison, with the same settings and the same
    call, cached so it is trained once."""
    fair = json.loads(
        (ROOT / "chapters/04_code_walkthrough/04_3_target_fine_tuning.ipynb").read_text())
    shared = ("BUDGETS", "SEEDS", "STEPS", "MAX_STEPS", "BODY_LRS", "HEAD_LRS", "CHOOSE_AT")
    for other in ("01_background/01_background.ipynb", "04_code_walkthrough/04_4_evaluation.ipynb",
                  "06_faq/06_faq.ipynb"):
        nb = json.loads((ROOT / "chapters" / other).read_text())
        for full in (False, True):
            a, b = _parameters(nb, full), _parameters(fair, full)
            assert {k: a[k] for k in shared} == {k: b[k] for k in shared}, (other, full)
        call = _compare_call(nb)
        assert call == _compare_call(fair) and "cache=True" in call, other
        for name in ("recipes", "lr_grids", "rule"):  # the arguments' definitions too
            assert _definition(nb, name) == _definition(fair, name), (other, name)


def _stale_calls(code: str, modules: dict) -> list[str]:
    """Calls ``module.name(...)`` of a tlutils module in ``code`` whose function no longer
    exists or takes no such keyword."""
    import ast
    import inspect

    stale = []
    for node in ast.walk(ast.parse(code)):
        if not (isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute)
                and isinstance(node.func.value, ast.Name) and node.func.value.id in modules):
            continue
        where = f"{node.func.value.id}.{node.func.attr}"
        target = getattr(modules[node.func.value.id], node.func.attr, None)
        if target is None:
            stale.append(f"{where} does not exist")
            continue
        try:
            params = inspect.signature(target).parameters
        except (TypeError, ValueError):
            continue
        if any(p.kind is inspect.Parameter.VAR_KEYWORD for p in params.values()):
            continue
        stale += [f"{where} takes no keyword {kw.arg!r}" for kw in node.keywords
                  if kw.arg is not None and kw.arg not in params]
    return stale


def test_solution_code_uses_the_current_api():
    """Exercise solutions written as code in a dropdown are never executed, so a renamed
    tlutils function or argument would leave a reader copying one with an error: each block
    must parse, and each ``module.function(...)`` call of a tlutils module must name a
    function that exists, with keywords it takes."""
    import importlib
    import pkgutil

    import tlutils

    modules = {m.name: importlib.import_module(f"tlutils.{m.name}")
               for m in pkgutil.iter_modules(tlutils.__path__)}
    assert _stale_calls("engine.run_grid(x, lrs=[1])\ntransfer.compare(x, nonsense=1)",
                        modules) == ["engine.run_grid does not exist",
                                     "transfer.compare takes no keyword 'nonsense'"]
    problems, blocks = [], 0
    for path in NOTEBOOKS:
        for _, code in notebook_cells.solution_blocks(_load(path)):
            blocks += 1
            try:
                problems += [f"{path.name}: {p}" for p in _stale_calls(code, modules)]
            except SyntaxError as error:
                problems.append(f"{path.name}: a solution does not parse: {error}")
    assert blocks >= 40, f"only {blocks} solution code blocks found: is the pattern stale?"
    assert not problems, problems
