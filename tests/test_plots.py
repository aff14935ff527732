import matplotlib

matplotlib.use("Agg")

import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
import pytest  # noqa: E402

from tlutils import plots  # noqa: E402


def test_image_grid():
    fig = plots.image_grid(np.zeros((12, 28, 28, 1)), labels=list(range(12)), ncols=5)
    assert len(fig.axes) == 15
    with pytest.raises(ValueError, match="labels"):
        plots.image_grid(np.zeros((3, 28, 28)), labels=[1])
    with pytest.raises(ValueError, match="x must"):
        plots.image_grid(np.zeros(5))


def test_confusion_matrix_rows_sum_to_one():
    fig = plots.confusion_matrix(np.array([0, 0, 1, 2]), np.array([0, 1, 1, 2]))
    image = fig.axes[0].images[0].get_array()
    np.testing.assert_allclose(np.asarray(image).sum(axis=1), 1.0)
    with pytest.raises(ValueError, match="y_true"):
        plots.confusion_matrix(np.array([0]), np.array([0, 1]))


def test_compare_methods_and_learning_curves():
    df = pd.DataFrame({"method": ["a", "a", "b", "b"], "budget": [1, 10, 1, 10],
                       "accuracy": [0.5, 0.7, 0.6, 0.9]})
    fig = plots.compare_methods(df, hline={"oracle": 0.95})
    assert len(fig.axes[0].containers) == 2
    with pytest.raises(ValueError, match="lacks"):
        plots.compare_methods(df, hue="recipe")
    hist = pd.DataFrame({"epoch": [1, 2], "loss": [1.0, 0.5], "val_loss": [1.1, 0.7]})
    fig = plots.learning_curves(hist, metrics=["loss"])
    assert len(fig.axes[0].lines) == 2
    with pytest.raises(ValueError, match="history"):
        plots.learning_curves(pd.DataFrame({"loss": [1]}))


@pytest.mark.parametrize("call, name", [
    (lambda: plots.image_grid(np.zeros((3, 4, 4)), n=4), "n"),
    (lambda: plots.image_grid(np.zeros((3, 4, 4)), ncols=0), "ncols"),
    (lambda: plots.image_grid(np.zeros((3, 4, 4, 1, 1))), "x"),
    (lambda: plots.confusion_matrix(np.array([0.5, 1.0]), np.array([0, 1])), "y_true"),
    (lambda: plots.confusion_matrix(np.array([0, 1]), np.array([-1, 1])), "y_pred"),
    (lambda: plots.compare_methods([1, 2]), "results"),
    (lambda: plots.learning_curves(pd.DataFrame({"epoch": [1]}), metrics=[]), "metrics"),
])
def test_bad_input_names_the_argument(call, name):
    with pytest.raises(ValueError, match=name):
        call()
