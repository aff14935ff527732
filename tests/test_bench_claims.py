"""benchmarks/bench_claims.py perturbs every parameter that its settings name, in every
notebook whose claims depend on one (issue 13: 3x and 10x the steps, five seeds, the
neighbouring learning rates)."""

from __future__ import annotations

import importlib.util
import json
import os
from pathlib import Path

import pytest

from tools import notebook_cells

ROOT = Path(__file__).resolve().parents[1]
NOTEBOOKS = sorted((ROOT / "chapters").rglob("*.ipynb"))
#: notebooks whose claims depend on no training length: 4.2's check that the plain-Keras
#: model and the zoo's are the same model
NO_STEPS = {"04_2_source_model"}


@pytest.fixture(scope="module")
def bench():
    """The script as a module; importing it must not change the environment."""
    before = dict(os.environ)
    spec = importlib.util.spec_from_file_location("bench_claims", ROOT / "benchmarks" / "bench_claims.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    assert dict(os.environ) == before
    return module


CELL = """FULL = False
SEEDS = (0, 1, 2)
MAP_SEEDS = (0, 1, 2)
SPLITS = tuple(range(3))
STEPS = 100
MAX_STEPS = 10 * STEPS
EPOCHS = 25
ES_EPOCHS = 40
LR = 1e-3
HEAD_LRS = [1e-3, 1e-2]
GROW_LR = 5e-3
NEW_HEAD_LR = 1e-2  # a new head's rate
NEIGHBOUR_LR = {"scratch": 3e-3}
N_TRAIN = 4_000
"""


def _run(source: str) -> dict:
    scope: dict = {}
    exec(source, scope)  # noqa: S102 - a parameters cell of plain assignments
    return scope


def test_steps_settings_scale_every_training_length(bench):
    for setting, factor in (("steps3", 3), ("steps10", 10)):
        got = _run(bench.perturb(CELL, setting))
        assert (got["STEPS"], got["MAX_STEPS"]) == (100 * factor, 1000 * factor)
        assert (got["EPOCHS"], got["ES_EPOCHS"]) == (25 * factor, 40 * factor)
        assert (got["N_TRAIN"], got["LR"], got["SEEDS"]) == (4_000, 1e-3, (0, 1, 2))


def test_seeds5_sets_every_seed_list_to_five(bench):
    got = _run(bench.perturb(CELL, "seeds5"))
    assert got["SEEDS"] == got["MAP_SEEDS"] == got["SPLITS"] == (0, 1, 2, 3, 4)
    assert got["STEPS"] == 100


def test_learning_rate_settings_move_to_the_neighbouring_rates(bench):
    down, up = _run(bench.perturb(CELL, "lr_down")), _run(bench.perturb(CELL, "lr_up"))
    assert down["LR"] == pytest.approx(1e-3 / 3) and up["GROW_LR"] == pytest.approx(15e-3)
    assert down["NEW_HEAD_LR"] == pytest.approx(1e-2 / 3)
    # a grid, or a dict of rates to choose from, is not shifted
    assert (down["HEAD_LRS"], down["NEIGHBOUR_LR"]) == ([1e-3, 1e-2], {"scratch": 3e-3})


def test_a_setting_without_its_parameter_is_skipped(bench):
    assert bench.perturb("FULL = False\nN = 3\n", "steps3") is None
    assert bench.perturb("N = 3\n", "full") is None
    assert bench.perturb(CELL, "default") == CELL


def test_every_notebook_with_claims_has_a_training_length_to_scale(bench):
    missing = []
    for path in NOTEBOOKS:
        nb = json.loads(path.read_text())
        code = "".join("".join(c["source"]) for c in nb["cells"] if c["cell_type"] == "code")
        params = notebook_cells.parameters_cell(nb)
        if "claims.check(" not in code or params is None or path.stem in NO_STEPS:
            continue
        if bench.perturb("".join(params["source"]), "steps3") is None:
            missing.append(path.stem)
    assert not missing, f"claims with no step or epoch parameter for bench_claims: {missing}"
