"""AppSettings: CLI flags > BNTUI_* environment > TOML config file > defaults."""

from __future__ import annotations

from pathlib import Path

import pytest

from bntui.settings import AppSettings, ConfigFileError, load_settings, save_setting


@pytest.fixture
def config_file(tmp_path, monkeypatch) -> Path:
    for name in ("BNTUI_RUNS_DIR", "BNTUI_DATA_DIR", "BNTUI_DEVICE", "BNTUI_THREADS", "BNTUI_DOWNLOAD"):
        monkeypatch.delenv(name, raising=False)
    path = tmp_path / "config.toml"
    monkeypatch.setenv("BNTUI_CONFIG_FILE", str(path))
    return path


def test_defaults_are_user_dirs(config_file):
    settings = load_settings()
    assert settings.runs_dir.name == "runs" and "bntui" in str(settings.runs_dir)
    assert settings.data_dir.name == "datasets"
    assert (settings.device, settings.download, settings.threads) == ("auto", False, 0)


def test_precedence_flag_over_env_over_file(config_file, monkeypatch, tmp_path):
    config_file.write_text(f'runs_dir = "{tmp_path / "from-file"}"\nthreads = 3\ndevice = "cpu"\n')
    assert load_settings().runs_dir == tmp_path / "from-file"
    assert load_settings().threads == 3
    monkeypatch.setenv("BNTUI_RUNS_DIR", str(tmp_path / "from-env"))
    monkeypatch.setenv("BNTUI_THREADS", "2")
    settings = load_settings()
    assert settings.runs_dir == tmp_path / "from-env" and settings.threads == 2
    assert settings.device == "cpu"  # untouched keys still come from the file
    flagged = load_settings(runs_dir=tmp_path / "from-flag", threads=None)
    assert flagged.runs_dir == tmp_path / "from-flag"
    assert flagged.threads == 2  # None means "flag not given"


def test_bad_config_file_is_one_clear_error(config_file):
    config_file.write_text("runs_dir = [unclosed\n")
    with pytest.raises(ConfigFileError, match="config file .*config.toml: not valid TOML"):
        load_settings()


def test_unknown_key_in_config_file_is_refused(config_file):
    config_file.write_text('colour = "red"\n')
    with pytest.raises(Exception, match="colour"):
        load_settings()


def test_save_setting_keeps_other_keys(config_file):
    config_file.write_text("threads = 4\n")
    save_setting("theme", "bntui-light")
    settings = AppSettings()
    assert (settings.theme, settings.threads) == ("bntui-light", 4)
