"""Shared fixtures: tiny real-format datasets on disk (see tests/datafixtures.py); every test
on the CPU unless it is marked `cuda` (those are skipped where CUDA is absent)."""

from __future__ import annotations

import platform

import pytest
from datafixtures import accept_cifar_files_without_md5, write_cifar, write_mnist


@pytest.fixture(scope="session")
def _dataset_root(tmp_path_factory):
    root = tmp_path_factory.mktemp("datasets")
    write_mnist(root, "MNIST")
    write_mnist(root, "FashionMNIST", seed=10)
    write_cifar(root)
    return root


@pytest.fixture
def mnist_root(_dataset_root):
    """A data dir holding MNIST and FashionMNIST in torchvision's raw IDX layout."""
    return _dataset_root


@pytest.fixture
def cifar_root(_dataset_root, monkeypatch):
    """A data dir holding CIFAR-10 python batches; torchvision's MD5 check is relaxed."""
    accept_cifar_files_without_md5(monkeypatch)
    return _dataset_root


@pytest.fixture(autouse=True)
def _isolated_user_dirs(tmp_path_factory, monkeypatch):
    """No test reads or writes the real user's config, themes, runs or data: every BNTUI_*
    variable points into a fresh temp dir (tests that need other values set their own)."""
    home = tmp_path_factory.mktemp("user")
    monkeypatch.setenv("BNTUI_CONFIG_FILE", str(home / "config.toml"))
    monkeypatch.setenv("BNTUI_THEME_DIR", str(home / "themes"))
    monkeypatch.setenv("BNTUI_RUNS_DIR", str(home / "runs"))
    monkeypatch.setenv("BNTUI_DATA_DIR", str(home / "datasets"))
    for name in ("BNTUI_DEVICE", "BNTUI_DOWNLOAD", "BNTUI_THREADS", "BNTUI_THEME", "NO_COLOR"):
        monkeypatch.delenv(name, raising=False)


@pytest.fixture(autouse=True)
def _no_detached_run_outlives_its_test(request):
    """Runs train in detached processes that outlive whoever launched them: that is the point,
    but not between tests. After each test, stop what it left in its tmp_path."""
    yield
    tmp_path = request.node.funcargs.get("tmp_path")
    if tmp_path is not None:
        from runhelpers import stop_everything

        stop_everything(tmp_path)


def pytest_collection_modifyitems(config, items):
    """Tests marked `cuda` run only where CUDA is present. Asking torch here, before any test
    hides the GPUs (see _pinned_to_the_cpu), lets CUDA start with the real environment."""
    marked = [item for item in items if item.get_closest_marker("cuda")]
    if not marked:
        return
    import torch

    if torch.cuda.is_available():
        return
    skip = pytest.mark.skip(reason="needs a CUDA device")
    for item in marked:
        item.add_marker(skip)


@pytest.fixture(autouse=True)
def _pinned_to_the_cpu(request, monkeypatch):
    """Tests not marked `cuda` train on the CPU even on a GPU machine (their assertions, such as
    device == "cpu" or LeNet-5 repeating bit for bit, are about the CPU): this process sees a
    CPU-only machine, so `auto` and the settings' default mean the CPU, and subprocesses
    (trainers, the device probe, the CLI) see no CUDA device. BNTUI_DEVICE is left unset:
    AppSettings reads it, and the TUI's tests and snapshots show the default device, auto.
    (MPS has no such switch: on a Mac, `auto` in a trainer subprocess may still pick it.)"""
    if request.node.get_closest_marker("cuda"):
        return
    import bntui.engine.device as device_module

    cpu_only = ((device_module.DeviceInfo("cpu", platform.processor() or "CPU"),), ())
    monkeypatch.setattr(device_module, "_probe", lambda: cpu_only)
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "")
