"""Write ``heldout_digits.npz``: the target images that assignment 04's question 3 is graded on.

``assignments/build.py`` runs this in a staging copy of this folder before ``otter assign``; the
file then ships in the autograder zip only (``autograder_files`` in the notebook's assignment
config), never in the student copy. It is chapter 04's target test split: the 40% of
scikit-learn's digits that the student notebook sets aside and never loads.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

# Only NumPy, SciPy and scikit-learn are needed here: skip tlutils' TensorFlow import.
os.environ.setdefault("TLUTILS_NO_QUIET_IMPORT", "1")
sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

import numpy as np  # noqa: E402

from tlutils import data, io  # noqa: E402


def main(folder: Path) -> Path:
    target = data.load_digits_28()
    _, _, x_test, y_test = data.split(target.x, target.y, test_fraction=0.4, seed=0)
    path = folder / "heldout_digits.npz"
    with io.atomic_path(path, suffix=".npz") as tmp:
        np.savez_compressed(tmp, x=x_test, y=y_test)
    return path


if __name__ == "__main__":
    written = main(Path.cwd())
    print(f"wrote {written.name}")
