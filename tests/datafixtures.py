"""Tiny datasets in the real on-disk formats torchvision reads: MNIST IDX files and CIFAR-10
python pickle batches. Plain functions, reused by tests/conftest.py and the bench scripts.

Images carry a faint class-dependent pattern on top of noise, so a model can learn them."""

from __future__ import annotations

import os
import pickle
from pathlib import Path

import numpy as np

from bntui.engine.data import CIFAR_CLASSES, CIFAR_FOLDER


def make_images(count: int, shape: tuple[int, ...], seed: int) -> tuple[np.ndarray, np.ndarray]:
    """(uint8 images of `shape` per image, uint8 labels 0-9 in turn)."""
    rng = np.random.default_rng(seed)
    labels = (np.arange(count) % 10).astype(np.uint8)
    templates = rng.integers(0, 256, size=(10, *shape))
    noise = rng.integers(0, 256, size=(count, *shape))
    images = (0.5 * templates[labels] + 0.5 * noise).astype(np.uint8)
    return images, labels


def write_idx(path: Path, array: np.ndarray) -> None:
    """IDX format: zero, zero, type code 0x08 (uint8), number of dimensions, the sizes as
    big-endian int32, then the bytes."""
    header = bytes([0, 0, 0x08, array.ndim]) + b"".join(int(size).to_bytes(4, "big") for size in array.shape)
    path.write_bytes(header + np.ascontiguousarray(array, dtype=np.uint8).tobytes())


def write_mnist(root: Path, folder: str = "MNIST", num_train: int = 300, num_test: int = 100, seed: int = 0) -> Path:
    """Uncompressed IDX files under `<root>/<folder>/raw/` (folder MNIST or FashionMNIST)."""
    raw = Path(root) / folder / "raw"
    raw.mkdir(parents=True, exist_ok=True)
    for prefix, count, offset in (("train", num_train, 0), ("t10k", num_test, 1)):
        images, labels = make_images(count, (28, 28), seed + offset)
        write_idx(raw / f"{prefix}-images-idx3-ubyte", images)
        write_idx(raw / f"{prefix}-labels-idx1-ubyte", labels)
    return Path(root)


def write_cifar(root: Path, per_batch: int = 60, num_test: int = 100, seed: int = 0) -> Path:
    """data_batch_1..5, test_batch and batches.meta under `<root>/cifar-10-batches-py/`,
    pickled like the official files: data is (N, 3072) uint8, row-major R, G, B planes."""
    folder = Path(root) / CIFAR_FOLDER
    folder.mkdir(parents=True, exist_ok=True)
    names = [f"data_batch_{i}" for i in range(1, 6)] + ["test_batch"]
    for index, name in enumerate(names):
        count = num_test if name == "test_batch" else per_batch
        images, labels = make_images(count, (3, 32, 32), seed + index)
        entry = {
            "batch_label": name.encode(),
            "labels": labels.astype(int).tolist(),
            "data": images.reshape(count, 3 * 32 * 32),
            "filenames": [f"img_{index}_{i}.png".encode() for i in range(count)],
        }
        with open(folder / name, "wb") as handle:
            pickle.dump(entry, handle)
    meta = {"label_names": list(CIFAR_CLASSES), "num_cases_per_batch": per_batch, "num_vis": 3072}
    with open(folder / "batches.meta", "wb") as handle:
        pickle.dump(meta, handle)
    return Path(root)


def accept_cifar_files_without_md5(monkeypatch=None) -> None:
    """torchvision's CIFAR10 checks the MD5 sums of the official files, which generated files
    cannot match. Swap only that check (file presence stays checked); everything else runs
    through the real torchvision class. With a pytest monkeypatch the swap is undone after
    the test; without one (bench scripts) it lasts for the process."""
    import torchvision.datasets.cifar as cifar

    def present(fpath, md5=None) -> bool:
        return os.path.isfile(fpath)

    if monkeypatch is not None:
        monkeypatch.setattr(cifar, "check_integrity", present)
    else:
        cifar.check_integrity = present
