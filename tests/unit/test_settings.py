"""AppSettings: CLI flags > BNTUI_* environment > TOML config file > defaults."""

from __future__ import annotations

from pathlib import Path

import pytest

from bntui.settings import AppSettings, ConfigFileError, SettingsValueError, load_settings, save_setting


@pytest.fixture
def config_file(tmp_path, monkeypatch) -> Path:
    for name in ("RUNS_DIR", "DATA_DIR", "DEVICE", "THREADS", "DOWNLOAD", "THEME", "MAX_PARALLEL", "BACKEND"):
        monkeypatch.delenv(f"BNTUI_{name}", raising=False)
    monkeypatch.setenv("XDG_DATA_HOME", str(tmp_path / "xdg-data"))  # never the real user dirs
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


# -- saving keeps what the user wrote --------------------------------------------------------


def test_save_setting_changes_only_that_key_keeping_comments_and_layout(config_file):
    config_file.write_text('# my settings\nthreads = 1   # keep it low\ntheme = "old"  # mine\n')
    save_setting("theme", "bntui-light")
    assert config_file.read_text() == ('# my settings\nthreads = 1   # keep it low\ntheme = "bntui-light"  # mine\n')


def test_save_setting_adds_a_missing_key_at_top_level_and_nothing_else(config_file):
    config_file.write_text("# my settings\nthreads = 1   # keep it low\n\n[notes]\nx = 1\n")
    save_setting("theme", "mine")
    assert config_file.read_text() == ('# my settings\nthreads = 1   # keep it low\ntheme = "mine"\n\n[notes]\nx = 1\n')


def test_save_setting_creates_a_missing_file(config_file):
    save_setting("theme", "mine")
    assert config_file.read_text() == 'theme = "mine"\n'
    assert list(config_file.parent.iterdir()) == [config_file]  # no temp file left behind


def test_save_setting_through_a_link_updates_the_linked_file(config_file, tmp_path):
    real = tmp_path / "dotfiles" / "bntui.toml"
    real.parent.mkdir()
    real.write_text("threads = 2  # mine\n")
    config_file.symlink_to(real)
    save_setting("theme", "mine")
    assert config_file.is_symlink()
    assert real.read_text() == 'threads = 2  # mine\ntheme = "mine"\n'


def test_save_setting_refuses_to_overwrite_a_broken_file(config_file):
    config_file.write_text("threads = [unclosed  # half-edited\n")
    with pytest.raises(OSError, match="config file .*config.toml: not valid TOML"):
        save_setting("theme", "mine")
    assert config_file.read_text() == "threads = [unclosed  # half-edited\n"


# -- errors name the source of the bad value --------------------------------------------------


def test_bad_value_in_config_file_names_the_file(config_file):
    config_file.write_text("threads = -1\n")
    with pytest.raises(ConfigFileError) as caught:
        load_settings()
    assert str(caught.value) == (f"config file {config_file}: threads: must be greater than or equal to 0")


def test_bad_value_in_environment_names_the_variable(config_file, monkeypatch):
    config_file.write_text("threads = -1\n")  # overridden by the environment: not the problem
    monkeypatch.setenv("BNTUI_THREADS", "-2")
    with pytest.raises(ValueError) as caught:
        load_settings()
    assert str(caught.value) == "BNTUI_THREADS: must be greater than or equal to 0"


def test_bad_flag_value_names_the_flag(config_file):
    with pytest.raises(ValueError, match=r"^--threads: must be less than or equal to 1024$"):
        load_settings(threads=5000)


@pytest.mark.parametrize(
    ("line", "expected"),
    [
        ("runs_dir = 5", "runs_dir: must be a path (text)"),
        ("threads = 'many'", "threads: must be a whole number"),
        ("download = 'maybe'", "download: must be true or false"),
        ("theme = 3", "theme: must be text"),
        ('device = "tpu"', "device: must be auto, cpu, cuda, cuda:N or mps"),  # a run's own rule
        (
            'colour = "red"',
            "colour: unknown setting (known: data_dir, runs_dir, device, download, threads, theme, "
            "max_parallel, backend, pack, slurm)",
        ),
    ],
)
def test_wrong_type_in_config_file_is_readable(config_file, line, expected):
    config_file.write_text(line + "\n")
    with pytest.raises(ConfigFileError) as caught:
        load_settings()
    assert str(caught.value) == f"config file {config_file}: {expected}"


def test_every_bad_value_is_reported_on_one_line(config_file, monkeypatch):
    config_file.write_text("threads = -1\nruns_dir = 5\n")
    monkeypatch.setenv("BNTUI_DOWNLOAD", "maybe")
    with pytest.raises(ConfigFileError) as caught:
        load_settings()
    message = str(caught.value)
    assert "\n" not in message
    assert "BNTUI_DOWNLOAD: must be true or false" in message
    assert f"config file {config_file}: runs_dir: must be a path (text)" in message
    assert "threads: must be greater than or equal to 0" in message


def test_cli_reports_config_file_errors_in_one_line(config_file, capsys):
    from bntui.cli import main

    config_file.write_text("threads = -1\n")
    assert main(["runs"]) == 2
    expected = f"config file {config_file}: threads: must be greater than or equal to 0"
    assert capsys.readouterr().err == f"bntui: error: {expected}\n"


# -- device: the same rule as a run's device --------------------------------------------------


@pytest.mark.parametrize(("value", "stored"), [("cpu", "cpu"), (" CUDA:1 ", "cuda:1"), ("mps", "mps")])
def test_device_accepts_what_a_run_accepts(config_file, value, stored):
    config_file.write_text(f'device = "{value}"\n')
    assert load_settings().device == stored


def test_unknown_device_in_environment_is_refused(config_file, monkeypatch):
    monkeypatch.setenv("BNTUI_DEVICE", "tpu")
    with pytest.raises(ValueError, match=r"^BNTUI_DEVICE: must be auto, cpu, cuda, cuda:N or mps$"):
        load_settings()


def test_the_slurm_table_and_launch_settings_come_from_the_file_flags_and_environment(config_file, monkeypatch):
    config_file.write_text('backend = "slurm"\nmax_parallel = 3\n[slurm]\npartition = "gpu"\ntime_min = 30\n')
    settings = load_settings()
    assert (settings.backend, settings.max_parallel) == ("slurm", 3)
    assert (settings.slurm.partition, settings.slurm.time_min, settings.slurm.cpus) == ("gpu", 30, 1)
    # A flag for one key of the table keeps the others from the file.
    settings = load_settings(slurm={"time_min": 5}, max_parallel=None)
    assert (settings.slurm.partition, settings.slurm.time_min) == ("gpu", 5)
    monkeypatch.setenv("BNTUI_MAX_PARALLEL", "2")
    assert load_settings().max_parallel == 2


@pytest.mark.parametrize(
    ("text", "flags", "expected"),
    [
        ("[slurm]\ngpus = -1\n", {}, "config file {path}: slurm.gpus: must be greater than or equal to 0"),
        ("[slurm]\nnodes = 2\n", {}, "config file {path}: slurm.nodes: unknown setting"),
        ("", {"slurm": {"cpus": 0}}, "--slurm-cpus: must be greater than or equal to 1"),
        ("max_parallel = 0\n", {}, "config file {path}: max_parallel: must be greater than or equal to 1"),
    ],
)
def test_bad_launch_settings_name_where_they_came_from(config_file, text, flags, expected):
    config_file.write_text(text)
    with pytest.raises(SettingsValueError) as caught:
        load_settings(**flags)
    assert str(caught.value).startswith(expected.format(path=config_file))
