"""The study's data: scikit-learn's digits on a 16x16 canvas, or MNIST from IDX files.

Images are float32 in [0, 1], shaped (N, 1, H, W); labels are int64. Training images are
centred; the test set is evaluated centred and translated (zero fill) by 1..4 pixels in
each of the 8 directions (up, down, left, right and the diagonals).
"""

from __future__ import annotations

import gzip
import os
from dataclasses import dataclass

import numpy as np

__all__ = ["Dataset", "load_digits", "load_translated", "place", "load_mnist", "read_idx",
           "shift", "shifted_copies", "stratified_subset", "DIRECTIONS"]

# (dy, dx) unit steps: the 8 directions a test image is shifted in
DIRECTIONS = ((-1, 0), (1, 0), (0, -1), (0, 1), (-1, -1), (-1, 1), (1, -1), (1, 1))

_IDX_DTYPES = {0x08: np.dtype("u1"), 0x09: np.dtype("i1"), 0x0B: np.dtype(">i2"),
               0x0C: np.dtype(">i4"), 0x0D: np.dtype(">f4"), 0x0E: np.dtype(">f8")}


@dataclass
class Dataset:
    """Train and test images (N, 1, H, W) float32 in [0, 1], with int64 labels."""

    name: str
    x_train: np.ndarray
    y_train: np.ndarray
    x_test: np.ndarray
    y_test: np.ndarray
    note: str = ""
    pos_train: np.ndarray | None = None  # (N, 2) top-left corners, translated digits only
    pos_test: np.ndarray | None = None

    @property
    def image_shape(self) -> tuple:
        return tuple(self.x_train.shape[1:])

    def summary(self) -> dict:
        return {"name": self.name, "image_shape": list(self.image_shape),
                "n_train": int(len(self.y_train)), "n_test": int(len(self.y_test)),
                "note": self.note}


# --------------------------------------------------------------------------------------------
# geometry
# --------------------------------------------------------------------------------------------
def shift(images, dy, dx):
    """Translate (..., H, W) images by (dy, dx) pixels, filling with zeros (no wrap-around).

    Examples
    --------
    >>> shift(np.arange(1, 5.).reshape(2, 2), 0, 1)
    array([[0., 1.],
           [0., 3.]])
    """
    images = np.asarray(images)
    H, W = images.shape[-2:]
    out = np.zeros_like(images)
    if abs(dy) >= H or abs(dx) >= W:
        return out
    src_y = slice(max(0, -dy), H - max(0, dy))
    dst_y = slice(max(0, dy), H - max(0, -dy))
    src_x = slice(max(0, -dx), W - max(0, dx))
    dst_x = slice(max(0, dx), W - max(0, -dx))
    out[..., dst_y, dst_x] = images[..., src_y, src_x]
    return out


def shifted_copies(images, distance):
    """``images`` translated by ``distance`` pixels in each of :data:`DIRECTIONS`.

    Returns an array (8, N, ...) (or (1, N, ...), the images themselves, for distance 0).
    """
    if distance == 0:
        return np.asarray(images)[None]
    return np.stack([shift(images, distance * uy, distance * ux) for uy, ux in DIRECTIONS])


def _on_canvas(images, canvas):
    """Place (N, h, w) images at the centre of a (canvas, canvas) zero image."""
    n, h, w = images.shape
    if h > canvas or w > canvas:
        raise ValueError(f"images {h}x{w} do not fit a {canvas}x{canvas} canvas")
    out = np.zeros((n, 1, canvas, canvas), np.float32)
    top, left = (canvas - h) // 2, (canvas - w) // 2
    out[:, 0, top:top + h, left:left + w] = images
    return out


def stratified_subset(y, fraction, seed):
    """Indices of a class-balanced ``fraction`` of ``y``, nested across fractions for one
    seed (the 10% subset is inside the 25% one, and so on), sorted."""
    if not 0 < fraction <= 1:
        raise ValueError(f"fraction must be in (0, 1], got {fraction!r}")
    y = np.asarray(y)
    rng = np.random.default_rng(seed)
    keep = []
    for c in np.unique(y):
        idx = np.flatnonzero(y == c)
        idx = idx[rng.permutation(len(idx))]
        keep.append(idx[:max(1, int(round(fraction * len(idx))))])
    return np.sort(np.concatenate(keep))


# --------------------------------------------------------------------------------------------
# scikit-learn digits
# --------------------------------------------------------------------------------------------
def load_digits(seed=0, canvas=16, test_fraction=0.2, limit=None) -> Dataset:
    """scikit-learn's bundled digits (1,797 images, 8x8, values 0..16; no download), each
    centred on a ``canvas`` x ``canvas`` image, split into train and test by ``seed``
    (stratified). ``limit`` keeps a seeded, stratified subset of about that many images."""
    from sklearn.datasets import load_digits as _sk_digits
    from sklearn.model_selection import train_test_split

    d = _sk_digits()
    x = _on_canvas(d.images.astype(np.float32) / np.float32(16), canvas)
    y = d.target.astype(np.int64)
    if limit is not None and limit < len(y):
        keep = stratified_subset(y, limit / len(y), seed + 1)
        x, y = x[keep], y[keep]
    x_tr, x_te, y_tr, y_te = train_test_split(x, y, test_size=test_fraction,
                                              random_state=seed, stratify=y)
    return Dataset("digits", x_tr, y_tr, x_te, y_te,
                   f"scikit-learn digits, 8x8 centred on {canvas}x{canvas}, "
                   f"{1 - test_fraction:.0%}/{test_fraction:.0%} stratified split (seed {seed})")


# --------------------------------------------------------------------------------------------
# translated digits (issue 21)
# --------------------------------------------------------------------------------------------
def place(images, canvas, seed):
    """Place each (h, w) image of ``images`` (N, h, w) at a seeded, uniformly random position
    on a (canvas, canvas) zero image: top and left each uniform in 0..canvas - h (resp. w).

    Returns the (N, 1, canvas, canvas) float32 images and the (N, 2) int64 top-left corners.
    """
    images = np.asarray(images, np.float32)
    n, h, w = images.shape
    if h > canvas or w > canvas:
        raise ValueError(f"images {h}x{w} do not fit a {canvas}x{canvas} canvas")
    rng = np.random.default_rng(seed)
    pos = np.stack([rng.integers(0, canvas - h + 1, n), rng.integers(0, canvas - w + 1, n)],
                   axis=1).astype(np.int64)
    out = np.zeros((n, 1, canvas, canvas), np.float32)
    for i, (t, l) in enumerate(pos):
        out[i, 0, t:t + h, l:l + w] = images[i]
    return out, pos


def load_translated(seed=0, canvas=24, test_fraction=0.2, limit=None) -> Dataset:
    """scikit-learn's digits (8x8), split as :func:`load_digits` splits them for ``seed``,
    each digit placed at a random position on a ``canvas`` x ``canvas`` image, in training
    and test alike (:func:`place`; the positions are seeded by ``seed`` and ``canvas``, and
    differ between the two sets). The digits can move by up to ``canvas - 8`` pixels."""
    from sklearn.datasets import load_digits as _sk_digits
    from sklearn.model_selection import train_test_split

    d = _sk_digits()
    x = d.images.astype(np.float32) / np.float32(16)
    y = d.target.astype(np.int64)
    if limit is not None and limit < len(y):
        keep = stratified_subset(y, limit / len(y), seed + 1)
        x, y = x[keep], y[keep]
    x_tr, x_te, y_tr, y_te = train_test_split(x, y, test_size=test_fraction,
                                              random_state=seed, stratify=y)
    x_tr, p_tr = place(x_tr, canvas, [seed, canvas, 0])
    x_te, p_te = place(x_te, canvas, [seed, canvas, 1])
    return Dataset("translated digits", x_tr, y_tr, x_te, y_te,
                   f"scikit-learn digits, 8x8 at seeded random positions on {canvas}x{canvas} "
                   f"(train and test), {1 - test_fraction:.0%}/{test_fraction:.0%} stratified "
                   f"split (seed {seed})", p_tr, p_te)


# --------------------------------------------------------------------------------------------
# MNIST (IDX files)
# --------------------------------------------------------------------------------------------
def read_idx(path) -> np.ndarray:
    """Read an IDX file (the MNIST format), gzipped or not.

    The header is two zero bytes, a type code (0x08 ubyte, 0x09 byte, 0x0B short, 0x0C int,
    0x0D float, 0x0E double), the number of dimensions, then each size as a big-endian
    uint32; the data follow, big-endian, C order.
    """
    with open(path, "rb") as f:
        raw = f.read()
    if raw[:2] == b"\x1f\x8b":
        raw = gzip.decompress(raw)
    if len(raw) < 4 or raw[0] != 0 or raw[1] != 0 or raw[2] not in _IDX_DTYPES:
        raise ValueError(f"{path}: not an IDX file (header {raw[:4]!r})")
    dtype, ndim = _IDX_DTYPES[raw[2]], raw[3]
    header = 4 + 4 * ndim
    if len(raw) < header:
        raise ValueError(f"{path}: truncated IDX header")
    shape = tuple(int(v) for v in np.frombuffer(raw, ">u4", ndim, 4))
    count = int(np.prod(shape, dtype=np.int64))
    if len(raw) - header != count * dtype.itemsize:
        raise ValueError(
            f"{path}: IDX header says {shape} of {dtype} ({count * dtype.itemsize} bytes), "
            f"the file holds {len(raw) - header} data bytes"
        )
    return np.frombuffer(raw, dtype, count, header).reshape(shape).astype(dtype.newbyteorder("="))


_MNIST_NAMES = {
    "x_train": ("train-images-idx3-ubyte", "train-images.idx3-ubyte"),
    "y_train": ("train-labels-idx1-ubyte", "train-labels.idx1-ubyte"),
    "x_test": ("t10k-images-idx3-ubyte", "t10k-images.idx3-ubyte"),
    "y_test": ("t10k-labels-idx1-ubyte", "t10k-labels.idx1-ubyte"),
}


def _find_mnist(directory, key):
    for name in _MNIST_NAMES[key]:
        for candidate in (name, name + ".gz"):
            path = os.path.join(directory, candidate)
            if os.path.isfile(path):
                return path
    raise FileNotFoundError(
        f"no {_MNIST_NAMES[key][0]}[.gz] in {directory!r} (the four standard MNIST IDX "
        "files are needed)"
    )


def load_mnist(directory, seed=0, max_train=10000, max_test=2000, limit=None) -> Dataset:
    """MNIST from the four standard IDX files in ``directory`` (gzipped or not).

    The images stay 28x28 (MNIST already centres each digit's 20x20 box). Keeps the standard
    train/test split, subsampled by ``seed`` to at most ``max_train`` and ``max_test``
    images (stratified) to keep the run short; ``limit`` caps both further.
    """
    arrays = {key: read_idx(_find_mnist(directory, key)) for key in _MNIST_NAMES}
    for part in ("train", "test"):
        x, y = arrays["x_" + part], arrays["y_" + part]
        if x.ndim != 3 or y.ndim != 1 or len(x) != len(y):
            raise ValueError(f"MNIST {part}: images {x.shape} and labels {y.shape} disagree")
    out = {}
    for part, cap, s in (("train", max_train, seed), ("test", max_test, seed + 1)):
        x = arrays["x_" + part].astype(np.float32) / np.float32(255)
        y = arrays["y_" + part].astype(np.int64)
        if limit is not None:
            cap = min(cap, limit)
        if cap < len(y):
            keep = stratified_subset(y, cap / len(y), s)
            x, y = x[keep], y[keep]
        out[part] = (x[:, None], y)
    return Dataset("mnist", *out["train"], *out["test"],
                   f"MNIST IDX files from {directory}, 28x28; {len(out['train'][1])} training "
                   f"and {len(out['test'][1])} test images (seeded stratified subsample)")
