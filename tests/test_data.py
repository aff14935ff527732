import gzip
import os
import struct
import warnings

import numpy as np
import pytest

from tests.conftest import SHARED_MNIST
from tlutils import data


def _idx_images(n: int, seed: int = 0) -> bytes:
    rng = np.random.default_rng(seed)
    return struct.pack(">IIII", 2051, n, 28, 28) + rng.integers(0, 256, n * 784, dtype=np.uint8).tobytes()


def _idx_labels(labels: np.ndarray) -> bytes:
    return struct.pack(">II", 2049, len(labels)) + labels.astype(np.uint8).tobytes()


def _write_pair(folder, prefix="train", n=30, gz=True):
    labels = np.arange(n) % 10
    imgs, labs = _idx_images(n), _idx_labels(labels)
    suffix = ".gz" if gz else ""
    opener = gzip.open if gz else open
    with opener(folder / f"{prefix}-images-idx3-ubyte{suffix}", "wb") as fh:
        fh.write(imgs)
    with opener(folder / f"{prefix}-labels-idx1-ubyte{suffix}", "wb") as fh:
        fh.write(labs)
    return labels


# ---------------------------------------------------------------- IDX reading
@pytest.mark.parametrize("gz", [True, False])
def test_read_idx_roundtrip(tmp_path, gz):
    labels = _write_pair(tmp_path, gz=gz)
    suffix = ".gz" if gz else ""
    x = data.read_idx(tmp_path / f"train-images-idx3-ubyte{suffix}")
    y = data.read_idx(tmp_path / f"train-labels-idx1-ubyte{suffix}")
    assert x.shape == (30, 28, 28) and x.dtype == np.uint8
    np.testing.assert_array_equal(y, labels)


def test_truncated_idx_names_the_file(tmp_path):
    path = tmp_path / "train-images-idx3-ubyte"
    path.write_bytes(_idx_images(5)[:-10])
    with pytest.raises(data.CorruptDataError, match="train-images-idx3-ubyte.*truncated"):
        data.read_idx(path)


def test_truncated_gzip_names_the_file(tmp_path):
    path = tmp_path / "train-images-idx3-ubyte.gz"
    path.write_bytes(gzip.compress(_idx_images(50))[:200])
    with pytest.raises(data.CorruptDataError, match="train-images-idx3-ubyte.gz"):
        data.read_idx(path)


def test_bad_magic(tmp_path):
    path = tmp_path / "x-idx"
    path.write_bytes(b"\x01\x02\x03\x04" + b"\0" * 20)
    with pytest.raises(data.CorruptDataError, match="magic"):
        data.read_idx(path)


def test_known_checksum_mismatch_is_reported(tmp_path):
    path = tmp_path / "t10k-labels-idx1-ubyte.gz"
    path.write_bytes(gzip.compress(_idx_labels(np.arange(10) % 10)))
    with pytest.raises(data.CorruptDataError, match="t10k-labels-idx1-ubyte.gz: sha256"):
        data.read_idx(path)


def test_read_idx_missing_path():
    with pytest.raises(ValueError, match="path"):
        data.read_idx("/nonexistent/file-idx")


# ---------------------------------------------------------------- load_mnist sources
@pytest.mark.skipif(not os.path.isdir(SHARED_MNIST), reason="shared MNIST not present")
def test_load_mnist_from_shared_data_dir(monkeypatch):
    monkeypatch.setenv("TLUTILS_DATA_DIR", SHARED_MNIST)
    d = data.load_mnist()
    assert d.source == "data_dir"
    assert d.x.shape == (10_000, 28, 28, 1) and d.x.dtype == np.float32
    assert 0.0 <= d.x.min() and d.x.max() <= 1.0
    counts = np.bincount(d.y, minlength=10).tolist()
    assert counts == [980, 1135, 1032, 1010, 982, 892, 958, 1028, 974, 1009]


def test_load_mnist_from_custom_dir_pools_train_and_test(tmp_path, monkeypatch):
    _write_pair(tmp_path, "train", n=30)
    monkeypatch.setenv("TLUTILS_DATA_DIR", str(tmp_path))
    d = data.load_mnist(source="data_dir")
    assert d.source == "data_dir" and len(d) == 30 and "train-images" in d.origin


def test_half_an_idx_pair_is_an_error(tmp_path, monkeypatch):
    _write_pair(tmp_path, "train", n=10)
    (tmp_path / "train-labels-idx1-ubyte.gz").unlink()
    monkeypatch.setenv("TLUTILS_DATA_DIR", str(tmp_path))
    with pytest.raises(data.CorruptDataError, match="train-labels-idx1-ubyte is missing"):
        data.load_mnist()


def test_corrupt_file_is_never_silently_skipped(tmp_path, monkeypatch):
    _write_pair(tmp_path, "train", n=10)
    (tmp_path / "train-images-idx3-ubyte.gz").write_bytes(b"not gzip at all")
    monkeypatch.setenv("TLUTILS_DATA_DIR", str(tmp_path))
    with pytest.raises(data.CorruptDataError, match="train-images-idx3-ubyte.gz"):
        data.load_mnist()


def test_data_dir_that_does_not_exist(monkeypatch):
    monkeypatch.setenv("TLUTILS_DATA_DIR", "/nonexistent/mnist")
    with pytest.raises(ValueError, match="TLUTILS_DATA_DIR"):
        data.load_mnist()


def test_offline_fallback_is_the_standin_with_a_warning(tmp_path, monkeypatch, capsys):
    monkeypatch.delenv("TLUTILS_DATA_DIR", raising=False)
    monkeypatch.setenv("KERAS_HOME", str(tmp_path))  # empty Keras cache
    with pytest.warns(UserWarning, match="STAND-IN"):
        d = data.load_mnist(standin_size=100)
    assert d.source == "standin" and len(d) == 100
    assert "download skipped" in " ".join(d.notes)
    assert "WARNING" in capsys.readouterr().out


def test_download_path_used_when_online(tmp_path, monkeypatch):
    import keras

    monkeypatch.delenv("TLUTILS_DATA_DIR", raising=False)
    monkeypatch.delenv("TLUTILS_OFFLINE", raising=False)
    monkeypatch.setenv("KERAS_HOME", str(tmp_path))
    fake = np.zeros((4, 28, 28), np.uint8)
    monkeypatch.setattr(keras.datasets.mnist, "load_data",
                        lambda: ((fake, np.arange(4)), (fake[:2], np.arange(2))))
    d = data.load_mnist()
    assert d.source == "download" and len(d) == 6


def test_download_failure_falls_back_but_forced_download_raises(tmp_path, monkeypatch):
    import keras

    def boom():
        raise OSError("network unreachable")

    monkeypatch.delenv("TLUTILS_DATA_DIR", raising=False)
    monkeypatch.delenv("TLUTILS_OFFLINE", raising=False)
    monkeypatch.setenv("KERAS_HOME", str(tmp_path))
    monkeypatch.setattr(keras.datasets.mnist, "load_data", boom)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        assert data.load_mnist(standin_size=20).source == "standin"
    with pytest.raises(OSError):
        data.load_mnist(source="download")


def test_corrupt_keras_cache_is_reported(tmp_path, monkeypatch):
    monkeypatch.delenv("TLUTILS_DATA_DIR", raising=False)
    monkeypatch.setenv("KERAS_HOME", str(tmp_path))
    (tmp_path / "datasets").mkdir()
    (tmp_path / "datasets" / "mnist.npz").write_bytes(b"truncated")
    with pytest.raises(data.CorruptDataError, match="mnist.npz"):
        data.load_mnist()


def test_load_mnist_bad_arguments():
    with pytest.raises(ValueError, match="source"):
        data.load_mnist(source="internet")
    with pytest.raises(ValueError, match="standin_size"):
        data.load_mnist(standin_size=0)


# ---------------------------------------------------------------- embedded datasets
def test_load_digits_28_is_mnist_shaped_and_centred():
    d = data.load_digits_28()
    assert d.x.shape == (1797, 28, 28, 1) and d.source == "sklearn"
    assert d.x.min() >= 0.0 and d.x.max() <= 1.0
    assert sorted(np.unique(d.y).tolist()) == list(range(10))
    mean = d.x[..., 0].mean(axis=0)
    rows, cols = np.indices(mean.shape)
    cy, cx = (rows * mean).sum() / mean.sum(), (cols * mean).sum() / mean.sum()
    assert abs(cy - 13.5) < 1.0 and abs(cx - 13.5) < 1.0
    assert mean[:2].max() < 0.05  # MNIST-style empty border


def test_render_digits_is_balanced_and_seeded():
    a = data.render_digits(50, seed=3)
    b = data.render_digits(50, seed=3)
    c = data.render_digits(50, seed=4)
    np.testing.assert_array_equal(a.x, b.x)
    assert not np.array_equal(a.x, c.x)
    assert np.bincount(a.y).tolist() == [5] * 10
    assert a.x.shape == (50, 28, 28, 1) and a.x.max() <= 1.0
    assert (a.x.reshape(50, -1).max(axis=1) > 0.5).all()  # every image has ink


@pytest.mark.parametrize("kwargs,name", [({"n": 0}, "n"), ({"n": 5, "distort": -1}, "distort"),
                                         ({"n": 2.5}, "n")])
def test_render_digits_bad_input(kwargs, name):
    with pytest.raises(ValueError, match=name):
        data.render_digits(**kwargs)


# ---------------------------------------------------------------- samplers
@pytest.fixture
def toy():
    rng = np.random.default_rng(0)
    y = np.repeat(np.arange(4), 10)
    x = rng.normal(size=(40, 3)).astype(np.float32)
    x[:, 0] = np.arange(40)  # an id column to check identity of samples
    return x, y


def test_few_shot_draws_k_per_class_and_is_seeded(toy):
    x, y = toy
    xs, ys = data.few_shot(x, y, 3, seed=1)
    assert np.bincount(ys).tolist() == [3, 3, 3, 3]
    np.testing.assert_array_equal(y[xs[:, 0].astype(int)], ys)  # labels follow their images
    xs2, _ = data.few_shot(x, y, 3, seed=1)
    xs3, _ = data.few_shot(x, y, 3, seed=2)
    np.testing.assert_array_equal(xs, xs2)
    assert not np.array_equal(np.sort(xs[:, 0]), np.sort(xs3[:, 0]))


def test_few_shot_rejects_too_few_and_bad_k(toy):
    x, y = toy
    with pytest.raises(ValueError, match="class 0 has only 10"):
        data.few_shot(x, y, 11)
    with pytest.raises(ValueError, match="k_per_class"):
        data.few_shot(x, y, 0)
    with pytest.raises(ValueError, match="same length"):
        data.few_shot(x, y[:-1], 1)


def test_split_is_stratified_and_disjoint(toy):
    x, y = toy
    xtr, ytr, xte, yte = data.split(x, y, test_fraction=0.3, seed=0)
    assert np.bincount(yte).tolist() == [3, 3, 3, 3]
    assert set(xtr[:, 0]).isdisjoint(set(xte[:, 0]))
    assert len(ytr) + len(yte) == 40
    with pytest.raises(ValueError, match="test_fraction"):
        data.split(x, y, test_fraction=1.5)


def test_class_split_relabels(toy):
    x, y = toy
    xs, ys = data.class_split(x, y, [3, 1])
    assert sorted(np.unique(ys).tolist()) == [0, 1]
    np.testing.assert_array_equal(ys == 0, y[xs[:, 0].astype(int)] == 3)
    with pytest.raises(ValueError, match="do not occur"):
        data.class_split(x, y, [7])
    with pytest.raises(ValueError, match="distinct"):
        data.class_split(x, y, [1, 1])


def test_to_dataset_batches(toy):
    x, y = toy
    batches = list(data.to_dataset(x, y, batch_size=16, shuffle=False))
    assert [len(b[1]) for b in batches] == [16, 16, 8]
    with pytest.raises(ValueError, match="batch_size"):
        data.to_dataset(x, y, batch_size=0)


def test_fingerprint_changes_with_content(toy):
    x, y = toy
    y2 = y.copy()
    y2[0] = 3
    assert data.fingerprint(x, y) == data.fingerprint(x.copy(), y.copy())
    assert data.fingerprint(x, y) != data.fingerprint(x, y2)
    with pytest.raises(ValueError, match="arrays"):
        data.fingerprint()


def test_augmenter_validates():
    with pytest.raises(ValueError, match="rotation"):
        data.augmenter(rotation=2.0)
    aug = data.augmenter(seed=1)
    img = np.zeros((2, 28, 28, 1), np.float32)
    img[:, 10:18, 10:18] = 1.0
    out = np.asarray(aug(img, training=True))
    assert out.shape == img.shape
    np.testing.assert_allclose(np.asarray(aug(img, training=False)), img)
