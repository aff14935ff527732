"""Write assignment 04's support files into the (staging) folder it runs in.

``assignments/build.py`` runs this in a staging copy of this folder before ``otter assign``:

* ``source_model.weights.h5``: the source model, chapter 04's CNN trained on MNIST, exactly the
  weights file of the model zoo's entry (``tlutils.zoo.source_model()``, byte for byte). It is
  in the notebook's ``files`` (assignment config), so it ships in the student copy **and** the
  autograder zip, and the notebook loads it from there (``keras.Model.load_weights``): the
  student's own checks and the grader score the same model, wherever each trains it
  (a Colab runtime would otherwise train its own on Keras's 70,000 MNIST images, and the
  grader on the 10,000 of its data directory).
* ``heldout_digits.npz``: the target images question 3 is graded on. It is in
  ``autograder_files``, so it ships in the autograder zip only, never in the student copy: chapter
  04's target test split, the 40% of scikit-learn's digits that the notebook sets aside and never
  loads.

Each file is written atomically (temp file + rename).
"""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

import numpy as np  # noqa: E402

from tlutils import data, io, models, zoo  # noqa: E402

#: The file the notebook loads the source model from (and the assignment config ships).
SOURCE_WEIGHTS = "source_model.weights.h5"
#: The held-out target set (autograder only).
HELDOUT = "heldout_digits.npz"


def write_source_model(folder: Path) -> Path:
    """Copy the zoo's source-model weights to ``folder/SOURCE_WEIGHTS``, checking first that
    they load into the architecture the notebook builds (``models.build_cnn()``)."""
    _, entry = zoo.source_model()
    raw = Path(entry.path).read_bytes()
    path = folder / SOURCE_WEIGHTS
    with io.atomic_path(path, suffix=".weights.h5") as tmp:
        tmp.write_bytes(raw)
        models.build_cnn(name="source_cnn").load_weights(str(tmp))  # the notebook's own load
    return path


def write_heldout(folder: Path) -> Path:
    """Write chapter 04's held-out target split to ``folder/HELDOUT``."""
    target = data.load_digits_28()
    _, _, x_test, y_test = data.split(target.x, target.y, test_fraction=0.4, seed=0)
    path = folder / HELDOUT
    with io.atomic_path(path, suffix=".npz") as tmp:
        np.savez_compressed(tmp, x=x_test, y=y_test)
    return path


def main(folder: Path) -> list[Path]:
    return [write_source_model(folder), write_heldout(folder)]


if __name__ == "__main__":
    for written in main(Path.cwd()):
        print(f"wrote {written.name}")
