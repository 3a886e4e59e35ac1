"""The project as a user installs it: the wheel carries its data, the README's commands are CI's."""

from __future__ import annotations

import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


def _readme_test_command() -> str:
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    lines = [line.strip() for line in readme.splitlines() if "pytest" in line and "pip install" in line]
    assert lines, "README.md must carry the install-and-test command"
    return lines[0][lines[0].index("pip install") :].strip("`")


def test_ci_runs_the_readme_test_command():
    ci_script = (ROOT / ".ci" / "run").read_text(encoding="utf-8")
    assert _readme_test_command() in ci_script


@pytest.fixture(scope="module")
def wheel(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("wheel")
    subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-q", "-w", str(out), str(ROOT)],
        check=True,
        capture_output=True,
    )
    (built,) = out.glob("bntui-*.whl")
    return built


def test_wheel_carries_dataset_themes_and_styles(wheel):
    names = set(zipfile.ZipFile(wheel).namelist())
    assert "bntui/data/mnist_mini.npz" in names
    shipped = sorted(p.name for p in (ROOT / "themes").glob("*.toml"))
    assert shipped, "themes/ must hold the shipped themes"
    for name in shipped:
        assert f"bntui/_themes/{name}" in names
    assert any(name.startswith("bntui/tui/") and name.endswith(".tcss") for name in names)


def test_installed_wheel_finds_its_data_outside_the_checkout(wheel, tmp_path):
    zipfile.ZipFile(wheel).extractall(tmp_path / "site")
    probe = (
        "import importlib.resources as r, numpy as np;"
        "d = np.load(r.files('bntui') / 'data' / 'mnist_mini.npz');"
        "print(d['images'].shape[0]);"
        "print(len([p for p in r.files('bntui._themes').iterdir() if p.name.endswith('.toml')]))"
    )
    result = subprocess.run(
        [sys.executable, "-c", probe],
        cwd=tmp_path,
        env={"PYTHONPATH": str(tmp_path / "site"), "PATH": "/usr/bin:/bin"},
        capture_output=True,
        text=True,
        check=True,
    )
    images, themes = result.stdout.split()
    assert int(images) == 5000
    assert int(themes) >= 4


def test_wheel_carries_every_module(wheel):
    names = set(zipfile.ZipFile(wheel).namelist())
    sources = sorted(str(p.relative_to(ROOT)) for p in (ROOT / "bntui").rglob("*.py"))
    missing = [source for source in sources if source not in names]
    assert not missing, f"add these packages to pyproject.toml [tool.setuptools] packages: {missing}"


def test_the_layers_hold():
    """lint-imports checks the contracts in pyproject.toml: no layer imports one above it."""
    lint_imports = Path(sys.executable).with_name("lint-imports")  # the dev extra's script
    result = subprocess.run([str(lint_imports)], cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stdout + result.stderr


def test_ruff_finds_nothing():
    """No unused import, undefined name or syntax error anywhere (rules: pyproject.toml)."""
    ruff = Path(sys.executable).with_name("ruff")  # the dev extra's script
    result = subprocess.run(
        [str(ruff), "check", "bntui", "tests", "bench"], cwd=ROOT, capture_output=True, text=True, timeout=120
    )
    assert result.returncode == 0, result.stdout + result.stderr


def test_mypy_finds_nothing():
    """The package type-checks (settings: [tool.mypy] in pyproject.toml)."""
    result = subprocess.run(
        [sys.executable, "-m", "mypy", "bntui"], cwd=ROOT, capture_output=True, text=True, timeout=600
    )
    assert result.returncode == 0, result.stdout + result.stderr


def test_the_code_is_formatted():
    """`ruff format` leaves every file as it is (the style: [tool.ruff] in pyproject.toml)."""
    ruff = Path(sys.executable).with_name("ruff")
    result = subprocess.run(
        [str(ruff), "format", "--check", "bntui", "tests", "bench"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, result.stdout + result.stderr
