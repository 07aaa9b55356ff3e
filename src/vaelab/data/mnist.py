"""MNIST held in memory as tensors, read from the IDX files the download stage unpacked.

Training is compute-bound: the whole split is one float tensor in [0, 1] and batches are taken by
index (no per-image PIL conversion in the hot loop). Every file is checked (magic number, shape,
exact size) when read, so a truncated or altered file fails loudly instead of training on garbage.
"""

from __future__ import annotations

import io
import struct
from pathlib import Path
from typing import Iterator, Literal, NamedTuple

import numpy as np
import torch

from vaelab.core.config import MNIST_TEST_SIZE, MNIST_TRAIN_SIZE
from vaelab.core.errors import DataError
from vaelab.data.download import raw_dir
from vaelab.data.spaces import binarize

IMAGE_SIDE = 28
INPUT_DIM = IMAGE_SIDE * IMAGE_SIDE  # 784
NUM_CLASSES = 10
SPLIT_SIZES = {"train": MNIST_TRAIN_SIZE, "test": MNIST_TEST_SIZE}
_PREFIX = {"train": "train", "test": "t10k"}
_IMAGE_MAGIC, _LABEL_MAGIC = 2051, 2049



class Split(NamedTuple):
    images: torch.Tensor  # float32 [N, 784] in [0, 1]
    labels: torch.Tensor  # int64 [N]


def _read_idx(path: Path, magic: int, dims: tuple[int, ...]) -> np.ndarray:
    hint = "re-run `dvc repro download` (or `dvc checkout --force data/MNIST/raw`) to restore it"
    try:
        blob = path.read_bytes()
    except FileNotFoundError:
        raise DataError(f"{path}: missing; {hint}") from None
    header_len = 4 * (1 + len(dims))
    if len(blob) < header_len:
        raise DataError(f"{path}: truncated header ({len(blob)} bytes); {hint}")
    got_magic, *got_dims = struct.unpack(f">{1 + len(dims)}I", blob[:header_len])
    if got_magic != magic or tuple(got_dims) != dims:
        raise DataError(
            f"{path}: header says magic {got_magic} shape {tuple(got_dims)}, "
            f"expected magic {magic} shape {dims}; {hint}"
        )
    expected = header_len + int(np.prod(dims))
    if len(blob) != expected:
        raise DataError(f"{path}: {len(blob)} bytes, expected {expected}; {hint}")
    return np.frombuffer(blob, dtype=np.uint8, offset=header_len).reshape(dims)


def load_split(root: str | Path, split: Literal["train", "test"], size: int | None = None) -> Split:
    """Load a split as in-memory tensors; ``size`` keeps the first N images."""
    n = SPLIT_SIZES[split]
    if size is not None and size > n:
        raise DataError(f"data.{split}_size = {size}: the {split} split has only {n} images")
    folder = raw_dir(root)
    images = _read_idx(folder / f"{_PREFIX[split]}-images-idx3-ubyte", _IMAGE_MAGIC, (n, IMAGE_SIDE, IMAGE_SIDE))
    labels = _read_idx(folder / f"{_PREFIX[split]}-labels-idx1-ubyte", _LABEL_MAGIC, (n,))
    if labels.max() >= NUM_CLASSES:
        raise DataError(f"{folder}: labels outside 0-9; re-run `dvc repro download`")
    images, labels = images[:size], labels[:size]
    x = torch.from_numpy(images.reshape(len(images), INPUT_DIM).astype(np.float32) / 255.0)
    return Split(x, torch.from_numpy(labels.astype(np.int64)))


def batches(n: int, batch_size: int, generator: torch.Generator | None = None) -> Iterator[torch.Tensor]:
    """Index batches over ``range(n)``: shuffled with ``generator`` when given, in order otherwise."""
    order = torch.randperm(n, generator=generator) if generator is not None else torch.arange(n)
    yield from order.split(batch_size)


def binarized_test_bytes(root: str | Path, seed: int) -> bytes:
    """The `binarize` stage's output (``binarized/test.npy``): one fixed, seeded binarisation of the test set,
    uint8 0/1 [10000, 784], as the bytes of a .npy file (no pickle)."""
    bits = binarize(load_split(root, "test").images, torch.Generator().manual_seed(seed)).to(torch.uint8).numpy()
    buf = io.BytesIO()
    np.save(buf, bits, allow_pickle=False)
    return buf.getvalue()


def load_binarized_test(root: str | Path) -> torch.Tensor:
    """The fixed binarisation of the test set written by the `binarize` stage, as float 0/1 [10000, 784]."""
    path = Path(root) / "binarized" / "test.npy"
    try:
        bits = np.load(path, allow_pickle=False)
    except FileNotFoundError:
        raise DataError(f"{path}: missing; run `dvc repro binarize`") from None
    if bits.shape != (SPLIT_SIZES["test"], INPUT_DIM) or bits.dtype != np.uint8 or bits.max() > 1:
        raise DataError(f"{path}: expected uint8 0/1 of shape (10000, 784), got {bits.dtype} {bits.shape}; "
                        "run `dvc repro -f binarize`")
    return torch.from_numpy(bits.astype(np.float32))
