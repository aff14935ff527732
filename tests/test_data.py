import gzip
import hashlib
import os
import shutil
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
    x = data.read_idx(tmp_path / f"train-images-idx3-ubyte{suffix}", verify=False)
    y = data.read_idx(tmp_path / f"train-labels-idx1-ubyte{suffix}", verify=False)
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
    with pytest.raises(data.CorruptDataError,
                       match="t10k-labels-idx1-ubyte.gz: contents .* not the official"):
        data.read_idx(path)
    assert data.read_idx(path, verify=False).shape == (10,)


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


def _register_as_official(monkeypatch, folder, prefix="train"):
    """Make the crafted files in ``folder`` count as the official ones (their md5 known)."""
    for kind in ("images-idx3-ubyte", "labels-idx1-ubyte"):
        stem = f"{prefix}-{kind}"
        raw = gzip.decompress((folder / f"{stem}.gz").read_bytes())
        monkeypatch.setitem(data.KNOWN_MD5, stem, hashlib.md5(raw).hexdigest())


def test_load_mnist_from_custom_dir_pools_train_and_test(tmp_path, monkeypatch):
    _write_pair(tmp_path, "train", n=30)
    _register_as_official(monkeypatch, tmp_path)
    n_test = 0
    if os.path.isdir(SHARED_MNIST):
        for name in os.listdir(SHARED_MNIST):
            shutil.copy(os.path.join(SHARED_MNIST, name), tmp_path / name)
        n_test = 10_000
    monkeypatch.setenv("TLUTILS_DATA_DIR", str(tmp_path))
    d = data.load_mnist(source="data_dir")
    assert d.source == "data_dir" and len(d) == 30 + n_test and "train-images" in d.origin


# ---------------------------------------------------------------- MNIST files that are not MNIST
def _write_idx(path, payload: bytes, gz=True):
    path.write_bytes(gzip.compress(payload) if gz else payload)


def _load_dir(folder, monkeypatch):
    monkeypatch.setenv("TLUTILS_DATA_DIR", str(folder))
    return data.load_mnist()


def test_noise_under_the_official_train_names_is_rejected(tmp_path, monkeypatch):
    _write_pair(tmp_path, "train", n=30)  # right shapes, labels 0-9, but random pixels
    with pytest.raises(data.CorruptDataError,
                       match="train-images-idx3-ubyte.gz: contents .* not the official MNIST"):
        _load_dir(tmp_path, monkeypatch)


def test_labels_outside_0_to_9_name_the_labels_file(tmp_path, monkeypatch):
    _write_pair(tmp_path, "train", n=30)
    _register_as_official(monkeypatch, tmp_path)  # even a "known" file must hold digits
    _write_idx(tmp_path / "train-labels-idx1-ubyte.gz", _idx_labels(np.arange(30) * 8))
    with pytest.raises(data.CorruptDataError,
                       match=r"train-labels-idx1-ubyte.gz: MNIST labels must be digits 0-9, "
                             r"found 0..232"):
        _load_dir(tmp_path, monkeypatch)


def test_images_that_are_not_28x28_name_the_images_file(tmp_path, monkeypatch):
    _write_pair(tmp_path, "train", n=4)
    big = struct.pack(">IIII", 2051, 4, 32, 32) + bytes(4 * 32 * 32)
    _write_idx(tmp_path / "train-images-idx3-ubyte.gz", big)
    with pytest.raises(data.CorruptDataError,
                       match=r"train-images-idx3-ubyte.gz: MNIST images must be uint8 28x28, "
                             r"got uint8 images of shape \(32, 32\)"):
        _load_dir(tmp_path, monkeypatch)


def test_image_and_label_counts_must_agree(tmp_path, monkeypatch):
    _write_pair(tmp_path, "t10k", n=20)
    _write_idx(tmp_path / "t10k-labels-idx1-ubyte.gz", _idx_labels(np.arange(19) % 10))
    with pytest.raises(data.CorruptDataError,
                       match="t10k-images-idx3-ubyte.gz holds 20 images but "
                             ".*t10k-labels-idx1-ubyte.gz holds 19 labels"):
        _load_dir(tmp_path, monkeypatch)


def test_labels_file_of_the_wrong_rank_is_named(tmp_path, monkeypatch):
    _write_pair(tmp_path, "train", n=4)
    two_d = struct.pack(">III", 2050, 4, 2) + bytes(8)
    _write_idx(tmp_path / "train-labels-idx1-ubyte.gz", two_d)
    with pytest.raises(data.CorruptDataError, match="train-labels-idx1-ubyte.gz: MNIST labels "
                                                     "must be a 1-D"):
        _load_dir(tmp_path, monkeypatch)


def test_wrong_structure_is_a_value_error():
    assert issubclass(data.CorruptDataError, ValueError)


@pytest.mark.skipif(not os.path.isdir(SHARED_MNIST), reason="shared MNIST not present")
def test_official_contents_load_whatever_the_compression(tmp_path, monkeypatch):
    for name in ("t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte"):
        raw = gzip.decompress(open(os.path.join(SHARED_MNIST, name + ".gz"), "rb").read())
        if name.startswith("t10k-images"):
            (tmp_path / name).write_bytes(raw)  # uncompressed
        else:
            (tmp_path / (name + ".gz")).write_bytes(gzip.compress(raw, compresslevel=1))
    d = _load_dir(tmp_path, monkeypatch)
    assert len(d) == 10_000 and d.source == "data_dir"


def test_npz_of_the_wrong_structure_is_rejected(tmp_path, monkeypatch):
    path = tmp_path / "mnist.npz"
    x = np.zeros((3, 32, 32), np.uint8)
    np.savez(path, x_train=x, y_train=np.arange(3), x_test=x[:1], y_test=np.arange(1))
    monkeypatch.setitem(data.KNOWN_SHA256, "mnist.npz", hashlib.sha256(path.read_bytes()).hexdigest())
    with pytest.raises(data.CorruptDataError, match="mnist.npz .*28x28"):
        _load_dir(tmp_path, monkeypatch)


def test_a_download_that_is_not_mnist_raises_instead_of_falling_back(tmp_path, monkeypatch):
    import keras

    monkeypatch.delenv("TLUTILS_DATA_DIR", raising=False)
    monkeypatch.delenv("TLUTILS_OFFLINE", raising=False)
    monkeypatch.setenv("KERAS_HOME", str(tmp_path))
    img = np.zeros((4, 28, 28), np.uint8)
    monkeypatch.setattr(keras.datasets.mnist, "load_data",
                        lambda: ((img, np.arange(4) + 200), (img[:2], np.arange(2))))
    with pytest.raises(data.CorruptDataError, match="downloaded MNIST labels.*0-9"):
        data.load_mnist()


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
    with pytest.raises(ValueError, match="seed"):
        data.load_mnist(seed=-1)


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
    with pytest.raises(ValueError, match="equal length"):
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


def test_samplers_reject_bad_arrays_naming_the_argument(toy):
    x, y = toy
    bad_x = x.copy()
    bad_x[0, 1] = np.nan
    with pytest.raises(ValueError, match="x holds NaN"):
        data.few_shot(bad_x, y, 1)
    with pytest.raises(ValueError, match="y must hold integer"):
        data.split(x, y.astype(np.float32))
    with pytest.raises(ValueError, match="y must hold labels >= 0"):
        data.class_split(x, y - 1, [0])
    with pytest.raises(ValueError, match="test_fraction"):
        data.split(x, y, test_fraction=1.0)
    with pytest.raises(ValueError, match="test_fraction"):
        data.split(x, y, test_fraction=float("nan"))
    with pytest.raises(ValueError, match="seed"):
        data.few_shot(x, y, 1, seed=-2)
    with pytest.raises(ValueError, match="x must be a numeric numpy array"):
        data.to_dataset([1, 2, 3])
    with pytest.raises(ValueError, match="zoom"):
        data.augmenter(zoom=float("nan"))
