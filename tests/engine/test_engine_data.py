"""Datasets: torchvision loading of real file formats, normalization, splits, missing data."""

from __future__ import annotations

import subprocess
import sys

import pytest
import torch
import torchvision
from datafixtures import write_cifar, write_idx, write_mnist
from torchvision import transforms

from bntui.config import RunConfig
from bntui.engine import data
from bntui.engine.data import DatasetMissing, dataset_info, load_raw, load_split_tensors


def lab_transform(channels: int):
    return transforms.Compose([transforms.ToTensor(), transforms.Normalize((0.5,) * channels, (0.5,) * channels)])


@pytest.mark.parametrize("name, folder", [("mnist", "MNIST"), ("fashion-mnist", "FashionMNIST")])
def test_mnist_normalization_matches_torchvision_transforms(mnist_root, name, folder):
    images, labels, _, _ = load_raw(name, mnist_root)
    dataset_class = getattr(torchvision.datasets, folder)
    reference = dataset_class(str(mnist_root), train=True, transform=lab_transform(1))
    ours = data.normalize_images(images[:50])
    for index in range(50):
        image, label = reference[index]
        assert torch.equal(ours[index], image)
        assert labels[index].item() == label


def test_cifar_normalization_matches_torchvision_transforms(cifar_root):
    images, labels, test_images, test_labels = load_raw("cifar10", cifar_root)
    reference = torchvision.datasets.CIFAR10(str(cifar_root), train=True, transform=lab_transform(3))
    ours = data.normalize_images(images[:50])
    for index in range(50):
        image, label = reference[index]
        assert torch.equal(ours[index], image)
        assert labels[index].item() == label
    assert images.shape == (300, 3, 32, 32) and test_images.shape == (100, 3, 32, 32)
    assert test_labels.dtype == torch.int64


def test_loads_real_idx_files_through_torchvision(mnist_root):
    train_x, train_y, test_x, test_y = load_raw("mnist", mnist_root)
    assert train_x.shape == (300, 1, 28, 28) and train_x.dtype == torch.uint8
    assert test_x.shape == (100, 1, 28, 28)
    assert sorted(train_y.unique().tolist()) == list(range(10))


def test_split_tensors_are_normalized_disjoint_and_seeded(mnist_root):
    config = RunConfig(dataset="mnist", val_fraction=0.2, seed=3)
    split = load_split_tensors(config, mnist_root)
    assert (len(split.train_y), len(split.val_y), len(split.test_y)) == (240, 60, 100)
    assert split.train_x.dtype == torch.float32 and split.train_x.shape[1:] == (1, 28, 28)
    assert split.train_x.is_contiguous()
    assert -1.0 <= split.train_x.min() and split.train_x.max() <= 1.0
    again = load_split_tensors(config, mnist_root)
    assert again.split_hash == split.split_hash and torch.equal(again.val_x, split.val_x)
    other = load_split_tensors(config.model_copy(update={"seed": 4}), mnist_root)
    assert other.split_hash != split.split_hash
    # The validation images are training-pool images that the training split lacks.
    train_rows = {tuple(row.tolist()) for row in split.train_x.reshape(240, -1)[:, :40]}
    assert not any(tuple(row.tolist()) in train_rows for row in split.val_x.reshape(60, -1)[:, :40])


def test_split_depends_only_on_seed_not_on_global_rng(mnist_root):
    config = RunConfig(dataset="mnist", seed=1)
    first = load_split_tensors(config, mnist_root).split_hash
    torch.manual_seed(12345)
    torch.rand(100)
    assert load_split_tensors(config, mnist_root).split_hash == first


def test_mnist_mini_test_set_is_stratified_and_fixed_across_seeds():
    a = load_split_tensors(RunConfig(dataset="mnist-mini", seed=0), "unused")
    b = load_split_tensors(RunConfig(dataset="mnist-mini", seed=9), "unused")
    assert len(a.test_y) == 1000 and a.test_y.bincount().tolist() == [100] * 10
    assert len(a.train_y) + len(a.val_y) == 4000
    assert torch.equal(a.test_x, b.test_x)
    assert a.split_hash != b.split_hash


def test_validation_split_mixes_classes_even_for_a_class_sorted_pool():
    split = load_split_tensors(RunConfig(dataset="mnist-mini"), "unused")
    # mnist-mini's pool is sorted by class: batches taken in order must still mix classes.
    first_batch = split.val_y[:64]
    assert len(first_batch.unique()) >= 8


@pytest.mark.parametrize("name", ["mnist", "fashion-mnist", "cifar10"])
def test_missing_dataset_names_data_dir_layout_and_alternative(tmp_path, name):
    with pytest.raises(DatasetMissing) as caught:
        load_raw(name, tmp_path)
    message = str(caught.value)
    assert str(tmp_path) in message
    assert "mnist-mini" in message and "--download" in message
    # the TUI has no --download flag: the message names the settings it does read
    assert "download = true" in message and "BNTUI_DOWNLOAD=1" in message
    expected = {
        "mnist": "MNIST/raw/train-images-idx3-ubyte",
        "fashion-mnist": "FashionMNIST/raw/train-images-idx3-ubyte",
        "cifar10": "cifar-10-batches-py/data_batch_1..5",
    }[name]
    assert expected in message
    assert "\n" not in message


def test_failed_download_is_reported_as_missing(tmp_path, monkeypatch):
    def offline(self):
        raise RuntimeError("Error downloading train-images-idx3-ubyte.gz: network unreachable")

    monkeypatch.setattr(torchvision.datasets.MNIST, "download", offline)
    with pytest.raises(DatasetMissing, match="could not be downloaded: .*network unreachable"):
        load_raw("mnist", tmp_path, download=True)


def test_download_progress_goes_to_stderr_not_stdout(tmp_path, monkeypatch, capsys):
    def chatty_download(self):
        print("Downloading https://example.invalid/train-images-idx3-ubyte.gz")
        write_mnist(tmp_path, num_train=20, num_test=10)

    monkeypatch.setattr(torchvision.datasets.MNIST, "download", chatty_download)
    images = load_raw("mnist", tmp_path, download=True)[0]
    assert len(images) == 20
    captured = capsys.readouterr()
    assert "Downloading" in captured.err and "Downloading" not in captured.out


def test_damaged_file_is_reported_not_raised_as_a_crash(tmp_path):
    write_mnist(tmp_path, num_train=20, num_test=10)
    raw = tmp_path / "MNIST" / "raw" / "train-images-idx3-ubyte"
    raw.write_bytes(raw.read_bytes()[:100])  # truncated
    with pytest.raises(DatasetMissing, match="could not be read"):
        load_raw("mnist", tmp_path)


def test_cifar_files_failing_torchvision_checksum_are_reported(tmp_path):
    write_cifar(tmp_path)  # generated files cannot match the official MD5 sums
    with pytest.raises(DatasetMissing, match="could not be read"):
        load_raw("cifar10", tmp_path)


def test_dataset_info_reports_presence_size_and_counts(tmp_path):
    absent = dataset_info("mnist", tmp_path)
    assert not absent.present and absent.size_bytes == 0 and absent.num_train == 60000
    write_mnist(tmp_path, num_train=30, num_test=12)
    present = dataset_info("mnist", tmp_path)
    assert present.present and present.size_bytes > 30 * 784
    assert (present.num_train, present.num_test) == (30, 12)
    assert present.image_shape == (1, 28, 28)
    mini = dataset_info("mnist-mini", tmp_path)
    assert mini.present and mini.size_bytes > 0 and (mini.num_train, mini.num_test) == (4000, 1000)
    cifar = dataset_info("cifar10", tmp_path)
    assert not cifar.present and cifar.image_shape == (3, 32, 32) and len(cifar.classes) == 10


def test_dataset_info_counts_a_partial_download_as_absent(tmp_path):
    write_mnist(tmp_path)
    (tmp_path / "MNIST" / "raw" / "t10k-labels-idx1-ubyte").unlink()
    assert not dataset_info("mnist", tmp_path).present


def test_dataset_info_does_not_import_torch(tmp_path):
    code = (
        "import sys; from bntui.engine.data import dataset_info; "
        f"[dataset_info(n, {str(tmp_path)!r}) for n in ('mnist-mini', 'mnist', 'cifar10')]; "
        "assert 'torch' not in sys.modules and 'torchvision' not in sys.modules"
    )
    subprocess.run([sys.executable, "-c", code], check=True)


def test_unknown_dataset_name_is_a_clear_error(tmp_path):
    with pytest.raises(ValueError, match="dataset: must be one of"):
        dataset_info("imagenet", tmp_path)


def test_idx_writer_round_trips_through_torchvision_reader(tmp_path):
    from torchvision.datasets.mnist import read_image_file

    images = torch.randint(0, 256, (7, 28, 28), dtype=torch.uint8)
    write_idx(tmp_path / "x-idx3-ubyte", images.numpy())
    assert torch.equal(read_image_file(str(tmp_path / "x-idx3-ubyte")), images)
