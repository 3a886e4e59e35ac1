"""Datasets as whole tensors: load each split once, normalize it the way the lab's
`ToTensor()` + `Normalize(0.5, 0.5)` does, and keep it on the run's device.

The module itself imports neither torch nor torchvision: `dataset_info` runs in the TUI,
which must paint before torch is loaded. The loaders import them when called.
"""

from __future__ import annotations

import contextlib
import hashlib
import sys
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import torch

# mnist-mini is split into pool and test set by this fixed seed, whatever the run's seed,
# so every run of every seed is scored on the same 1,000 test images.
MINI_SPLIT_SEED = 20150211
MINI_TEST_PER_CLASS = 100
MINI_RESOURCE = "mnist_mini.npz"

MNIST_FILES = (
    "train-images-idx3-ubyte",
    "train-labels-idx1-ubyte",
    "t10k-images-idx3-ubyte",
    "t10k-labels-idx1-ubyte",
)
CIFAR_FOLDER = "cifar-10-batches-py"
CIFAR_FILES = (*(f"data_batch_{i}" for i in range(1, 6)), "test_batch", "batches.meta")

DIGITS = tuple(str(digit) for digit in range(10))
FASHION_CLASSES = (
    "T-shirt/top", "Trouser", "Pullover", "Dress", "Coat",
    "Sandal", "Shirt", "Sneaker", "Bag", "Ankle boot",
)  # fmt: skip
CIFAR_CLASSES = (
    "airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck",
)  # fmt: skip


@dataclass(frozen=True)
class _Spec:
    folder: str  # relative to the data dir ("" for the embedded dataset)
    files: tuple[str, ...]
    image_shape: tuple[int, int, int]  # (C, H, W)
    num_train: int  # the official sizes (the pool the validation set is taken from)
    num_test: int
    classes: tuple[str, ...]


_SPECS: dict[str, _Spec] = {
    "mnist-mini": _Spec("", (), (1, 28, 28), 4000, 1000, DIGITS),
    "mnist": _Spec("MNIST/raw", MNIST_FILES, (1, 28, 28), 60000, 10000, DIGITS),
    "fashion-mnist": _Spec("FashionMNIST/raw", MNIST_FILES, (1, 28, 28), 60000, 10000, FASHION_CLASSES),
    "cifar10": _Spec(CIFAR_FOLDER, CIFAR_FILES, (3, 32, 32), 50000, 10000, CIFAR_CLASSES),
}


class DatasetMissing(Exception):
    """The dataset is not on disk (and may not or could not be downloaded), or is unreadable."""


@dataclass(frozen=True)
class DatasetInfo:
    name: str
    present: bool
    size_bytes: int  # on disk; 0 when absent
    image_shape: tuple[int, int, int]  # (C, H, W)
    num_train: int  # training pool before the validation split
    num_test: int
    classes: tuple[str, ...]
    location: str  # the folder the files live in ("embedded" for mnist-mini)


@dataclass
class SplitTensors:
    """One run's data, normalized, on the run's device."""

    dataset: str
    image_shape: tuple[int, int, int]
    train_x: torch.Tensor
    train_y: torch.Tensor
    val_x: torch.Tensor
    val_y: torch.Tensor
    test_x: torch.Tensor
    test_y: torch.Tensor
    split_hash: str  # identifies the validation indices: same hash, same split


def _spec(name: str) -> _Spec:
    try:
        return _SPECS[name]
    except KeyError:
        raise ValueError(f"dataset: must be one of {', '.join(_SPECS)}, not {name!r}") from None


def expected_files(name: str, data_dir: Path) -> list[Path]:
    spec = _spec(name)
    return [Path(data_dir) / spec.folder / file for file in spec.files]


def dataset_info(name: str, data_dir: Path) -> DatasetInfo:
    """What the TUI shows about a dataset. Looks at the disk only (no torch import)."""
    spec = _spec(name)
    if name == "mnist-mini":
        with resources.as_file(resources.files("bntui.data").joinpath(MINI_RESOURCE)) as path:
            size = path.stat().st_size
        return DatasetInfo(
            name, True, size, spec.image_shape, spec.num_train, spec.num_test, spec.classes,
            "embedded",
        )  # fmt: skip
    files = expected_files(name, data_dir)
    present = all(path.is_file() for path in files)
    size = sum(path.stat().st_size for path in files if path.is_file())
    num_train, num_test = spec.num_train, spec.num_test
    if present and spec.files == MNIST_FILES:
        # An IDX header holds the image count in its second big-endian word: 8 bytes to read.
        num_train = _idx_count(files[0]) or num_train
        num_test = _idx_count(files[2]) or num_test
    return DatasetInfo(
        name, present, size, spec.image_shape, num_train, num_test, spec.classes,
        str(Path(data_dir) / spec.folder),
    )  # fmt: skip


def _idx_count(path: Path) -> int | None:
    try:
        with open(path, "rb") as handle:
            header = handle.read(8)
    except OSError:
        return None
    return int.from_bytes(header[4:8], "big") if len(header) == 8 else None


def missing_message(name: str, data_dir: Path, problem: str) -> str:
    spec = _spec(name)
    folder = Path(data_dir) / spec.folder
    if spec.files == MNIST_FILES:
        layout = f"{folder}/{', '.join(MNIST_FILES)}"
    else:
        layout = f"{folder}/data_batch_1..5, test_batch, batches.meta"
    return (
        f"dataset {name} {problem} (data dir {data_dir}; torchvision's layout: {layout}); "
        # The TUI has no --download flag: name the settings it reads too.
        f"to fetch it, pass --download to `bntui run`, or set download = true in the config "
        f"file or BNTUI_DOWNLOAD=1 (the TUI reads these); or use the offline dataset mnist-mini"
    )


# --- loading ---------------------------------------------------------------------------


def load_raw(name: str, data_dir: Path, download: bool = False):
    """(train_images, train_labels, test_images, test_labels) as CPU tensors: images uint8
    (N, C, H, W) (maybe a strided view), labels int64. Raises DatasetMissing."""
    if name == "mnist-mini":
        return _load_mini()
    spec = _spec(name)
    if not download and not all(path.is_file() for path in expected_files(name, data_dir)):
        raise DatasetMissing(missing_message(name, data_dir, "not found"))
    try:
        train_set, test_set = _torchvision_splits(name, data_dir, download)
    except Exception as exc:  # torchvision raises RuntimeError/URLError/OSError variously
        problem = "could not be downloaded" if download else "could not be read"
        raise DatasetMissing(missing_message(name, data_dir, f"{problem}: {_one_line(exc)}")) from exc
    import torch

    def images(dataset) -> torch.Tensor:
        data = torch.as_tensor(dataset.data)
        if data.ndim == 3:  # MNIST family: (N, H, W)
            return data.unsqueeze(1)
        return data.permute(0, 3, 1, 2)  # CIFAR-10: (N, H, W, C) -> NCHW view

    def labels(dataset) -> torch.Tensor:
        return torch.as_tensor(dataset.targets, dtype=torch.int64)

    train_images, test_images = images(train_set), images(test_set)
    if tuple(train_images.shape[1:]) != spec.image_shape:
        raise DatasetMissing(
            f"dataset {name} in {data_dir} has images of shape {tuple(train_images.shape[1:])}, "
            f"expected {spec.image_shape}"
        )
    train_labels, test_labels = labels(train_set), labels(test_set)
    files = expected_files(name, data_dir)
    for split, split_images, split_labels in (
        ("train", train_images, train_labels),
        ("test", test_images, test_labels),
    ):
        _check_labels(name, _split_files(name, files, split), split_images, split_labels, len(spec.classes))
    return train_images, train_labels, test_images, test_labels


def _split_files(name: str, files: list[Path], split: str) -> tuple[Path, Path]:
    """(file of the images, file of the labels) of a split, for messages."""
    if name == "cifar10":
        folder = files[0].parent
        return (folder, folder) if split == "train" else (files[-2], files[-2])
    return (files[0], files[1]) if split == "train" else (files[2], files[3])


def _check_labels(name: str, paths: tuple[Path, Path], images, labels, classes: int) -> None:
    """A damaged or foreign file must fail at load with its name, not train on misaligned
    pairs (counts that differ) or end in an index error (a label outside the classes)."""
    image_file, label_file = paths
    if len(images) != len(labels):
        raise DatasetMissing(
            f"dataset {name}: {label_file} holds {len(labels)} labels for the {len(images)} images "
            f"of {image_file}: the files do not belong together"
        )
    if len(labels) and (int(labels.min()) < 0 or int(labels.max()) >= classes):
        wrong = int(labels.min()) if int(labels.min()) < 0 else int(labels.max())
        raise DatasetMissing(f"dataset {name}: {label_file} holds the label {wrong}: labels must be 0..{classes - 1}")


def _torchvision_splits(name: str, data_dir: Path, download: bool):
    import torchvision.datasets as tv

    cls = {"mnist": tv.MNIST, "fashion-mnist": tv.FashionMNIST, "cifar10": tv.CIFAR10}[name]
    root = str(data_dir)
    if download:
        Path(data_dir).mkdir(parents=True, exist_ok=True)
    # torchvision reports download progress with print() and tqdm. A trainer process speaks
    # JSON on stdout, so its messages go to stderr (where tqdm's bar already goes).
    with contextlib.redirect_stdout(sys.stderr):
        train_set = cls(root=root, train=True, download=download)
        test_set = cls(root=root, train=False, download=False)
    return train_set, test_set


def _load_mini():
    import numpy as np
    import torch

    with resources.files("bntui.data").joinpath(MINI_RESOURCE).open("rb") as handle:
        with np.load(handle) as archive:
            images, labels = archive["images"], archive["labels"]
    pool, test = stratified_split(labels, MINI_TEST_PER_CLASS, MINI_SPLIT_SEED)
    as_images = lambda idx: torch.from_numpy(images[idx]).unsqueeze(1)  # noqa: E731
    as_labels = lambda idx: torch.from_numpy(labels[idx].astype(np.int64))  # noqa: E731
    return as_images(pool), as_labels(pool), as_images(test), as_labels(test)


def stratified_split(labels, test_per_class: int, seed: int):
    """(pool_indices, test_indices), both sorted: `test_per_class` images of every class go
    to the test set, chosen by `seed`."""
    import numpy as np

    rng = np.random.default_rng(seed)
    test = []
    for label in np.unique(labels):
        members = np.flatnonzero(labels == label)
        test.append(rng.permutation(members)[:test_per_class])
    test_indices = np.sort(np.concatenate(test))
    pool_indices = np.setdiff1d(np.arange(len(labels)), test_indices)
    return pool_indices, test_indices


def normalize_images(images: torch.Tensor) -> torch.Tensor:
    """uint8 images -> float32 in [-1, 1], the same arithmetic as `ToTensor()` (x / 255)
    followed by `Normalize(0.5, 0.5)` ((x - 0.5) / 0.5), so results match bit for bit."""
    import torch

    return images.to(torch.float32).div_(255).sub_(0.5).div_(0.5)


def split_pool(num_pool: int, val_fraction: float, seed: int):
    """(train_indices, val_indices) from a seeded random permutation of the training pool;
    its own generator, so the split never depends on other RNG use. The validation indices
    stay in shuffled order: evaluating with batch statistics needs batches that mix the
    classes, and a pool may be sorted by class (mnist-mini is)."""
    import torch

    if num_pool < 2:
        raise ValueError(f"the training pool has {num_pool} image(s); at least 2 are needed")
    num_val = min(max(1, int(num_pool * val_fraction)), num_pool - 1)
    generator = torch.Generator().manual_seed(derive_seed(seed, "split"))
    order = torch.randperm(num_pool, generator=generator)
    return order[num_val:].sort().values, order[:num_val]


def split_hash(val_indices: torch.Tensor) -> str:
    import torch

    data = val_indices.to(torch.int64).cpu().numpy().astype("<i8").tobytes()
    return hashlib.sha256(data).hexdigest()[:16]


def derive_seed(seed: int, purpose: str) -> int:
    """An independent seed per purpose (split, batch order, probe batch), so their random
    streams do not mirror each other although they all come from the run's one seed."""
    digest = hashlib.sha256(f"{seed}:{purpose}".encode()).digest()
    return int.from_bytes(digest[:8], "little") & (2**63 - 1)


def load_split_tensors(config, data_dir: Path, download: bool = False, device=None, raw=None) -> SplitTensors:
    """Load `config.dataset` once, split the pool into train/validation by `config.seed`
    and `config.val_fraction`, normalize, and place every split on `device`. `raw`:
    load_raw's result for the dataset, where the caller has it (a pack of several seeds)."""
    import torch

    device = torch.device("cpu") if device is None else torch.device(device)
    train_images, train_labels, test_images, test_labels = raw or load_raw(config.dataset, data_dir, download)
    train_idx, val_idx = split_pool(len(train_labels), config.val_fraction, config.seed)

    def place(images: torch.Tensor) -> torch.Tensor:
        # Move uint8 (4x smaller) and convert on the device.
        images = images.to(device)
        return normalize_images(images).contiguous()

    return SplitTensors(
        dataset=config.dataset,
        image_shape=tuple(train_images.shape[1:]),
        train_x=place(train_images[train_idx]),
        train_y=train_labels[train_idx].to(device),
        val_x=place(train_images[val_idx]),
        val_y=train_labels[val_idx].to(device),
        test_x=place(test_images),
        test_y=test_labels.to(device),
        split_hash=split_hash(val_idx),
    )


def _one_line(exc: BaseException) -> str:
    text = " ".join(str(exc).split()) or type(exc).__name__
    return text if len(text) <= 200 else text[:197] + "..."
