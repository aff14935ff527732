"""Datasets for the book, offline first (chapter 04, "Data preparation", and every later chapter).

Three real datasets and one synthetic one:

* **MNIST**, 28x28 handwritten digits, via :func:`load_mnist`, which tries in order a data
  directory (``TLUTILS_DATA_DIR``), the Keras cache, a Keras download and finally an embedded
  stand-in rendered from fonts, and says which one it used.
* **scikit-learn's digits**, 1,797 real 8x8 handwritten digits shipped with scikit-learn,
  upscaled to MNIST's 28x28 layout by :func:`load_digits_28`. They come from different writers,
  a different scanner and a different resolution than MNIST: a real domain shift.
* **Font digits**, rendered from the TrueType fonts matplotlib ships and randomly distorted
  (:func:`render_digits`); a synthetic domain for the sim-to-real chapters.

Images are float32 arrays of shape ``(n, 28, 28, 1)`` in ``[0, 1]``; labels are int64.
"""

from __future__ import annotations

import gzip
import hashlib
import os
import warnings
import zlib
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from tlutils import checks, config

__all__ = [
    "CorruptDataError",
    "Digits",
    "augmenter",
    "class_split",
    "few_shot",
    "fingerprint",
    "load_digits_28",
    "load_mnist",
    "read_idx",
    "render_digits",
    "split",
    "to_dataset",
]

#: SHA-256 of Keras's ``mnist.npz`` (the hash ``keras.datasets.mnist.load_data`` checks).
KNOWN_SHA256: dict[str, str] = {
    "mnist.npz": "731c5ac602752760c8e48fbffcf8c3b850d9dc2a2aedcf2cc48468fc17b673d1",
}
#: MD5 of the *decompressed* contents of the four official MNIST IDX files, so a file is
#: recognised whatever gzip wrapper it came in (mirrors re-compress them). The published
#: values, checked against the local test set (``shared/data/README.md``); MD5 is fine here,
#: since forging a file to match a given digest (a second preimage) is out of reach.
KNOWN_MD5: dict[str, str] = {
    "train-images-idx3-ubyte": "6bbc9ace898e44ae57da46a324031adb",
    "train-labels-idx1-ubyte": "a25bea736e30d166cdddb491f175f624",
    "t10k-images-idx3-ubyte": "2646ac647ad5339dbf082846283269ea",
    "t10k-labels-idx1-ubyte": "27ae3e4e09519cfbb04c329615203637",
}
_IDX_PAIRS = (("train-images-idx3-ubyte", "train-labels-idx1-ubyte"),
              ("t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte"))
SOURCES = ("data_dir", "keras_cache", "download", "standin")


class CorruptDataError(ValueError):
    """A data file is truncated, corrupt or fails its checksum. The message names the file."""


@dataclass
class Digits:
    """Images ``x`` (n, 28, 28, 1) float32 in [0, 1], labels ``y`` (n,) int64, and provenance.

    ``source`` is one of ``"data_dir"``, ``"keras_cache"``, ``"download"``, ``"standin"``,
    ``"sklearn"`` or ``"fonts"``; ``origin`` says exactly where the data came from.
    """

    x: np.ndarray
    y: np.ndarray
    source: str
    origin: str
    notes: list[str] = field(default_factory=list)

    def __len__(self) -> int:
        return len(self.y)

    def __repr__(self) -> str:
        counts = np.bincount(self.y, minlength=10).tolist()
        return (f"Digits(n={len(self)}, source={self.source!r}, origin={self.origin!r}, "
                f"per_class={counts})")


# --------------------------------------------------------------------------------------------
# IDX files
# --------------------------------------------------------------------------------------------

def _read_bytes(path: Path) -> bytes:
    try:
        if path.suffix == ".gz":
            with gzip.open(path, "rb") as fh:
                return fh.read()
        return path.read_bytes()
    except (OSError, EOFError, zlib.error) as exc:
        raise CorruptDataError(f"{path}: cannot be read, corrupt or truncated ({exc})") from exc


def _parse_idx(p: Path, raw: bytes) -> np.ndarray:
    """The uint8 array an IDX file's bytes hold (header and exact payload length checked)."""
    if len(raw) < 4 or raw[0] != 0 or raw[1] != 0 or raw[2] != 0x08:
        raise CorruptDataError(f"{p}: not an unsigned-byte IDX file (bad magic number)")
    ndim = raw[3]
    header = 4 + 4 * ndim
    if ndim == 0 or len(raw) < header:
        raise CorruptDataError(f"{p}: truncated IDX header")
    dims = tuple(int.from_bytes(raw[4 + 4 * i: 8 + 4 * i], "big") for i in range(ndim))
    expected = int(np.prod(dims))
    if len(raw) - header != expected:
        raise CorruptDataError(f"{p}: expected {expected} data bytes for shape {dims}, "
                               f"found {len(raw) - header} (truncated or corrupt)")
    return np.frombuffer(raw, dtype=np.uint8, offset=header).reshape(dims)


def _stem(p: Path) -> str:
    return p.name[:-3] if p.name.endswith(".gz") else p.name


def _verify_idx(p: Path, raw: bytes) -> None:
    """Raise naming ``p`` if it carries an official MNIST name but not the official contents."""
    known = KNOWN_MD5.get(_stem(p))
    if known is None:
        return
    digest = hashlib.md5(raw).hexdigest()
    if digest != known:
        raise CorruptDataError(f"{p}: contents (md5 {digest}) are not the official MNIST file "
                               f"{_stem(p)} (md5 {known}); corrupt, truncated or not MNIST")


def read_idx(path: str | os.PathLike, *, verify: bool = True) -> np.ndarray:
    """Read one IDX file (``.gz`` or raw) into a uint8 array (chapter 04, "Data preparation").

    Checks the header and the exact payload length and, with ``verify``, for a file named
    like one of the four official MNIST files, that its decompressed contents are that file
    (:data:`KNOWN_MD5`). Raises :class:`CorruptDataError` naming the file on any mismatch and
    ValueError if ``path`` does not exist.
    """
    if not isinstance(path, (str, os.PathLike)):
        raise ValueError(f"path must be a str or os.PathLike, got {type(path).__name__}")
    p = Path(path)
    if not p.is_file():
        raise ValueError(f"path {str(path)!r} is not a file")
    raw = _read_bytes(p)
    array = _parse_idx(p, raw)
    if verify:
        _verify_idx(p, raw)
    return array


def _check_mnist_arrays(x: np.ndarray, y: np.ndarray, x_name: str, y_name: str) -> None:
    """Raise :class:`CorruptDataError` naming the file unless ``x`` holds uint8 28x28 images
    and ``y`` as many digit labels 0-9."""
    if x.dtype != np.uint8 or x.ndim != 3 or x.shape[1:] != (28, 28):
        raise CorruptDataError(f"{x_name}: MNIST images must be uint8 28x28, got "
                               f"{x.dtype} images of shape {x.shape[1:]}")
    if y.ndim != 1 or not np.issubdtype(y.dtype, np.integer):
        raise CorruptDataError(f"{y_name}: MNIST labels must be a 1-D array of integers, got "
                               f"{y.dtype} of shape {y.shape}")
    if len(x) != len(y):
        raise CorruptDataError(f"{x_name} holds {len(x)} images but {y_name} holds {len(y)} "
                               "labels")
    if len(y) == 0:
        raise CorruptDataError(f"{x_name}: holds no images")
    if y.min() < 0 or y.max() > 9:
        raise CorruptDataError(f"{y_name}: MNIST labels must be digits 0-9, found "
                               f"{int(y.min())}..{int(y.max())}")


def _find(folder: Path, stem: str) -> Path | None:
    for name in (stem + ".gz", stem):
        if (folder / name).is_file():
            return folder / name
    return None


def _load_from_dir(folder: Path) -> tuple[np.ndarray, np.ndarray, str] | None:
    """MNIST arrays from IDX pairs or ``mnist.npz`` in ``folder``; None if it holds neither."""
    xs, ys, used = [], [], []
    for img_stem, lab_stem in _IDX_PAIRS:
        img, lab = _find(folder, img_stem), _find(folder, lab_stem)
        if img is None and lab is None:
            continue
        if img is None or lab is None:
            missing = img_stem if img is None else lab_stem
            raise CorruptDataError(f"{folder}: found one half of an IDX pair; {missing} is missing")
        raw_x, raw_y = _read_bytes(img), _read_bytes(lab)
        x, y = _parse_idx(img, raw_x), _parse_idx(lab, raw_y)
        _check_mnist_arrays(x, y, str(img), str(lab))  # clear message first, then the digest
        _verify_idx(img, raw_x)
        _verify_idx(lab, raw_y)
        xs.append(x)
        ys.append(y)
        used.append(img.name)
    if xs:
        return np.concatenate(xs), np.concatenate(ys), f"{folder} ({', '.join(used)})"
    npz = folder / "mnist.npz"
    if npz.is_file():
        x, y = _read_npz(npz)
        return x, y, str(npz)
    return None


def _read_npz(path: Path) -> tuple[np.ndarray, np.ndarray]:
    digest = hashlib.sha256(path.read_bytes()).hexdigest()
    if digest != KNOWN_SHA256["mnist.npz"]:
        raise CorruptDataError(f"{path}: sha256 {digest[:12]}... is not the known Keras mnist.npz")
    try:
        with np.load(path) as f:
            x = np.concatenate([f["x_train"], f["x_test"]])
            y = np.concatenate([f["y_train"], f["y_test"]])
    except (OSError, KeyError, ValueError, zlib.error) as exc:
        raise CorruptDataError(f"{path}: cannot be read ({exc})") from exc
    _check_mnist_arrays(x, y, f"{path} (x_train, x_test)", f"{path} (y_train, y_test)")
    return x, y


def _keras_cache_file() -> Path:
    home = os.environ.get("KERAS_HOME", str(Path.home() / ".keras"))
    return Path(home) / "datasets" / "mnist.npz"


def _standardise(x: np.ndarray, y: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    return (x.astype(np.float32)[..., None] / 255.0), y.astype(np.int64)


def load_mnist(source: str = "auto", *, standin_size: int = 10_000, seed: int = 0) -> Digits:
    """Load MNIST offline first (chapter 04, "Data preparation"; used by most chapters).

    ``source="auto"`` tries, in order:

    1. ``TLUTILS_DATA_DIR``: IDX files (``.gz`` or raw; train and/or test) or ``mnist.npz``;
    2. the Keras cache, ``~/.keras/datasets/mnist.npz`` (or under ``KERAS_HOME``);
    3. a Keras download (skipped when ``TLUTILS_OFFLINE=1``); needs internet, e.g. in Colab;
    4. an embedded **stand-in**: digits rendered from fonts (:func:`render_digits`), with a
       visible warning, so that every notebook still runs with no data at all.

    Name one of ``"data_dir"``, ``"keras_cache"``, ``"download"`` or ``"standin"`` to force a
    source (it then raises instead of falling back). All available images (train and test
    files) are pooled; split them with :func:`split`. Every source must hold uint8 28x28
    images and as many labels 0-9; the four official IDX files must also have the official
    contents (:data:`KNOWN_MD5`, whatever their compression) and ``mnist.npz`` Keras's
    checksum. A corrupt, truncated or foreign file raises :class:`CorruptDataError` (a
    ValueError) naming it, never a fallback.
    """
    if source not in ("auto", *SOURCES):
        raise ValueError(f"source must be 'auto' or one of {SOURCES}, got {source!r}")
    checks.int_at_least("standin_size", standin_size)
    checks.int_at_least("seed", seed, 0)
    notes: list[str] = []

    if source in ("auto", "data_dir"):
        folder = config.data_dir()
        if folder is not None:
            found = _load_from_dir(folder)
            if found is not None:
                x, y = _standardise(found[0], found[1])
                return Digits(x, y, "data_dir", found[2], notes)
            notes.append(f"TLUTILS_DATA_DIR={folder} holds no MNIST files")
        else:
            notes.append("TLUTILS_DATA_DIR is not set")
        if source == "data_dir":
            raise FileNotFoundError("no MNIST in the data directory: " + "; ".join(notes))

    if source in ("auto", "keras_cache"):
        cached = _keras_cache_file()
        if cached.is_file():
            x, y = _standardise(*_read_npz(cached))
            return Digits(x, y, "keras_cache", str(cached), notes)
        notes.append(f"no Keras cache at {cached}")
        if source == "keras_cache":
            raise FileNotFoundError("; ".join(notes))

    if source in ("auto", "download"):
        if config.offline() and source == "auto":
            notes.append("download skipped (TLUTILS_OFFLINE=1)")
        else:
            try:
                import keras

                (xtr, ytr), (xte, yte) = keras.datasets.mnist.load_data()
            except Exception as exc:  # no network, proxy, DNS ... all mean "not available"
                notes.append(f"download failed ({type(exc).__name__})")
                if source == "download":
                    raise
            else:  # what did arrive is checked like any file: wrong data is never a fallback
                x, y = np.concatenate([xtr, xte]), np.concatenate([ytr, yte])
                _check_mnist_arrays(x, y, "downloaded MNIST images", "downloaded MNIST labels")
                x, y = _standardise(x, y)
                return Digits(x, y, "download", "keras.datasets.mnist.load_data()", notes)

    stand = render_digits(standin_size, seed=seed)
    message = ("MNIST is not available here (" + "; ".join(notes) + "). Using the embedded "
               f"STAND-IN: {standin_size} digits rendered from fonts. Results will differ from "
               "the book; set TLUTILS_DATA_DIR to a folder with MNIST files for real data.")
    warnings.warn(message, stacklevel=2)
    print("WARNING:", message)
    return Digits(stand.x, stand.y, "standin", stand.origin, notes + [message])


# --------------------------------------------------------------------------------------------
# Embedded real and synthetic digits
# --------------------------------------------------------------------------------------------

def _to_mnist_frame(img: np.ndarray, box: int = 20) -> np.ndarray:
    """Fit a grey image into a ``box`` square keeping its aspect, then centre its mass in 28x28
    (the recipe LeCun et al. used to build MNIST)."""
    from scipy import ndimage

    ys, xs = np.nonzero(img > 0.05 * img.max())
    if len(ys) == 0:
        return np.zeros((28, 28), np.float32)
    img = img[ys.min(): ys.max() + 1, xs.min(): xs.max() + 1]
    scale = box / max(img.shape)
    img = np.clip(ndimage.zoom(img, scale, order=1), 0, None)
    out = np.zeros((28, 28), np.float32)
    h, w = min(img.shape[0], 28), min(img.shape[1], 28)
    top, left = (28 - h) // 2, (28 - w) // 2
    out[top: top + h, left: left + w] = img[:h, :w]
    cy, cx = ndimage.center_of_mass(out)
    out = ndimage.shift(out, (13.5 - cy, 13.5 - cx), order=1, mode="constant")
    peak = out.max()
    return np.clip(out / peak if peak > 0 else out, 0.0, 1.0).astype(np.float32)


def load_digits_28() -> Digits:
    """scikit-learn's 1,797 real 8x8 digits in MNIST's 28x28 layout (chapter 04's target task).

    Each 8x8 image (grey levels 0-16) is upscaled into a 20x20 box and centred by mass in a
    28x28 frame, as MNIST itself was built. No download: the data ship with scikit-learn.
    """
    from sklearn.datasets import load_digits

    raw = load_digits()
    imgs = raw.images.astype(np.float32) / 16.0
    x = np.stack([_to_mnist_frame(im) for im in imgs])
    return Digits(x[..., None], raw.target.astype(np.int64), "sklearn",
                  "sklearn.datasets.load_digits() (UCI optdigits, 8x8)")


_FONT_FILES = ("DejaVuSans.ttf", "DejaVuSans-Bold.ttf", "DejaVuSans-Oblique.ttf",
               "DejaVuSerif.ttf", "DejaVuSerif-Bold.ttf", "DejaVuSerif-Italic.ttf",
               "DejaVuSansMono.ttf", "DejaVuSansMono-Bold.ttf", "STIXGeneral.ttf",
               "STIXGeneralBol.ttf", "STIXGeneralItalic.ttf", "cmr10.ttf")


def _font_paths() -> list[Path]:
    import matplotlib

    folder = Path(matplotlib.get_data_path()) / "fonts" / "ttf"
    paths = [folder / f for f in _FONT_FILES if (folder / f).is_file()]
    if not paths:  # pragma: no cover - matplotlib always ships DejaVu
        raise FileNotFoundError(f"no TrueType fonts found in {folder}")
    return paths


def _glyphs(size: int = 64) -> np.ndarray:
    """Every digit in every font at three stroke weights, rendered large and centred on its
    bounding box: array (n_fonts * 3, 10, size, size) in [0, 1]."""
    from PIL import Image, ImageDraw, ImageFont
    from scipy import ndimage

    out = []
    for path in _font_paths():
        font = ImageFont.truetype(str(path), int(size * 0.6))
        rendered = []
        for d in range(10):
            canvas = Image.new("L", (size, size), 0)
            draw = ImageDraw.Draw(canvas)
            left, top, right, bottom = draw.textbbox((0, 0), str(d), font=font)
            draw.text(((size - (right - left)) / 2 - left, (size - (bottom - top)) / 2 - top),
                      str(d), fill=255, font=font)
            rendered.append(np.asarray(canvas, np.float32) / 255.0)
        row = np.asarray(rendered)
        for thick in (0, 2, 4):
            out.append(row if thick == 0 else
                       np.stack([ndimage.grey_dilation(g, size=(thick, thick)) for g in row]))
    return np.asarray(out)


_GLYPH_CACHE: dict[int, np.ndarray] = {}


def render_digits(n: int, *, seed: int = 0, distort: float = 1.0) -> Digits:
    """``n`` synthetic digits rendered from matplotlib's fonts with random distortions
    (chapter 05, "Cross-domain transfer"; also MNIST's offline stand-in, chapter 04).

    Each image picks a font and a stroke weight, applies a random rotation (up to 15 degrees
    times ``distort``), shear, scale and blur, and lands in a 20x20 box centred in 28x28 like
    MNIST. Classes are balanced. About 0.1 ms per image.
    """
    checks.int_at_least("n", n)
    checks.int_at_least("seed", seed, 0)
    checks.number("distort", distort, low=0.0, high=3.0)
    from scipy import ndimage

    if 64 not in _GLYPH_CACHE:
        _GLYPH_CACHE[64] = _glyphs(64)
    glyphs = _GLYPH_CACHE[64]
    n_styles = glyphs.shape[0]
    rng = np.random.default_rng(seed)
    y = np.arange(n) % 10
    rng.shuffle(y)
    styles = rng.integers(0, n_styles, size=n)
    angles = np.deg2rad(rng.uniform(-15, 15, size=n) * distort)
    shears = rng.uniform(-0.25, 0.25, size=n) * distort
    scales = rng.uniform(0.85, 1.1, size=(n, 2)) ** distort
    shifts = rng.normal(0.0, 0.6, size=(n, 2)) * distort
    blurs = rng.uniform(0.4, 0.9, size=n)
    # Glyph height in the 64px render, so every digit is scaled into MNIST's 20px box.
    heights = {}
    centre_out = np.array([13.5, 13.5])
    x = np.empty((n, 28, 28), np.float32)
    for i in range(n):
        g = glyphs[styles[i], y[i]]
        key = (styles[i], y[i])
        if key not in heights:
            rows = np.flatnonzero(g.max(axis=1) > 0.1)
            cols = np.flatnonzero(g.max(axis=0) > 0.1)
            heights[key] = (max(rows[-1] - rows[0], cols[-1] - cols[0]) + 1,
                            np.array([(rows[0] + rows[-1]) / 2, (cols[0] + cols[-1]) / 2]))
        size, centre_in = heights[key]
        a = angles[i]
        rot = np.array([[np.cos(a), -np.sin(a)], [np.sin(a), np.cos(a)]])
        forward = (20.0 / size) * rot @ np.array([[1.0, shears[i]], [0.0, 1.0]]) @ np.diag(scales[i])
        inv = np.linalg.inv(forward)  # output pixel -> input pixel
        offset = centre_in - inv @ (centre_out + shifts[i])
        img = ndimage.affine_transform(g, inv, offset=offset, output_shape=(28, 28), order=1)
        img = ndimage.gaussian_filter(img, sigma=blurs[i] * 0.5)
        peak = img.max()
        x[i] = img / peak if peak > 0 else img
    return Digits(np.clip(x, 0.0, 1.0)[..., None], y.astype(np.int64), "fonts",
                  f"render_digits(n={n}, seed={seed}) from {n_styles // 3} matplotlib fonts")


# --------------------------------------------------------------------------------------------
# Splits and samplers
# --------------------------------------------------------------------------------------------

def class_split(x: np.ndarray, y: np.ndarray, classes: list[int] | tuple[int, ...],
                *, relabel: bool = True) -> tuple[np.ndarray, np.ndarray]:
    """Keep only ``classes`` (e.g. digits 5-9); with ``relabel`` map them to 0..k-1 in the
    given order (chapter 02, "Core concepts"; chapter 05, negative transfer)."""
    checks.xy(x, y)
    classes = checks.int_sequence("classes", classes, 0)
    missing = [c for c in classes if not np.any(y == c)]
    if missing:
        raise ValueError(f"classes {missing} do not occur in y")
    mask = np.isin(y, classes)
    xs, ys = x[mask], y[mask]
    if relabel:
        lookup = {c: i for i, c in enumerate(classes)}
        ys = np.array([lookup[int(v)] for v in ys], dtype=np.int64)
    return xs, ys


def few_shot(x: np.ndarray, y: np.ndarray, k_per_class: int, *, seed: int = 0
             ) -> tuple[np.ndarray, np.ndarray]:
    """Draw ``k_per_class`` labelled examples of every class, seeded and shuffled
    (chapter 04, "Target fine-tuning").

    Raises ValueError if a class has fewer than ``k_per_class`` examples.
    """
    checks.xy(x, y)
    checks.int_at_least("k_per_class", k_per_class)
    checks.int_at_least("seed", seed, 0)
    rng = np.random.default_rng(seed)
    picks = []
    for c in np.unique(y):
        idx = np.flatnonzero(y == c)
        if len(idx) < k_per_class:
            raise ValueError(f"k_per_class={k_per_class} but class {int(c)} has only {len(idx)}")
        picks.append(rng.choice(idx, size=k_per_class, replace=False))
    order = rng.permutation(np.concatenate(picks))
    return x[order], y[order]


def split(x: np.ndarray, y: np.ndarray, *, test_fraction: float = 0.2, seed: int = 0
          ) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Stratified train/test split: returns ``x_train, y_train, x_test, y_test`` (chapter 04)."""
    checks.xy(x, y)
    if checks.number("test_fraction", test_fraction, low=0.0, high=1.0, strict=True) == 1.0:
        raise ValueError(f"test_fraction must be in (0, 1), got {test_fraction!r}")
    checks.int_at_least("seed", seed, 0)
    rng = np.random.default_rng(seed)
    train, test = [], []
    for c in np.unique(y):
        idx = rng.permutation(np.flatnonzero(y == c))
        n_test = int(round(len(idx) * test_fraction))
        if n_test == 0 or n_test == len(idx):
            raise ValueError(f"class {int(c)} has {len(idx)} samples: too few to split with "
                             f"test_fraction={test_fraction}")
        test.append(idx[:n_test])
        train.append(idx[n_test:])
    tr, te = rng.permutation(np.concatenate(train)), rng.permutation(np.concatenate(test))
    return x[tr], y[tr], x[te], y[te]


def fingerprint(*arrays: np.ndarray) -> str:
    """Short SHA-256 of array contents, shapes and dtypes; the model zoo keys cached models by
    it (chapter 04, "Source model")."""
    if not arrays:
        raise ValueError("arrays must not be empty")
    h = hashlib.sha256()
    for a in arrays:
        a = np.ascontiguousarray(a)
        h.update(str((a.shape, a.dtype.str)).encode())
        h.update(a.tobytes())
    return h.hexdigest()[:16]


def augmenter(*, rotation: float = 0.04, translation: float = 0.08, zoom: float = 0.1,
              seed: int = 0):
    """A Keras preprocessing block of small random rotations, shifts and zooms, active only in
    training (chapter 04, "Target fine-tuning": augmentation for tiny label budgets)."""
    for name, value in (("rotation", rotation), ("translation", translation), ("zoom", zoom)):
        if checks.number(name, value, low=0.0, high=1.0) == 1.0:
            raise ValueError(f"{name} must be a fraction in [0, 1), got {value!r}")
    checks.int_at_least("seed", seed, 0)
    import keras

    return keras.Sequential([
        keras.layers.RandomRotation(rotation, fill_mode="constant", seed=seed),
        keras.layers.RandomTranslation(translation, translation, fill_mode="constant", seed=seed + 1),
        keras.layers.RandomZoom(zoom, fill_mode="constant", seed=seed + 2),
    ], name="augment")


def to_dataset(x: np.ndarray, y: np.ndarray | None = None, *, batch_size: int = 32,
               shuffle: bool = True, seed: int = 0, repeat: bool = False):
    """A batched, prefetched ``tf.data.Dataset`` from arrays (chapter 05, domain adaptation,
    and section 5.7's distributed training). Shuffling is seeded."""
    checks.int_at_least("batch_size", batch_size)
    checks.int_at_least("seed", seed, 0)
    if y is not None:
        checks.xy(x, y)
    else:
        checks.finite_array("x", x)
    import tensorflow as tf

    ds = tf.data.Dataset.from_tensor_slices(x if y is None else (x, y))
    if shuffle:
        ds = ds.shuffle(len(x), seed=seed, reshuffle_each_iteration=True)
    if repeat:
        ds = ds.repeat()
    return ds.batch(batch_size).prefetch(tf.data.AUTOTUNE)
