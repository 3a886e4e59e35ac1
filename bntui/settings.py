"""Application settings: CLI flags > BNTUI_* environment > TOML config file > defaults."""

from __future__ import annotations

import os
import tomllib
from pathlib import Path
from typing import Any

import platformdirs
from pydantic import Field, field_validator
from pydantic_settings import (
    BaseSettings,
    PydanticBaseSettingsSource,
    SettingsConfigDict,
    TomlConfigSettingsSource,
)

APP_NAME = "bntui"


def default_config_file() -> Path:
    override = os.environ.get("BNTUI_CONFIG_FILE")
    if override:
        return Path(override).expanduser()
    return Path(platformdirs.user_config_dir(APP_NAME)) / "config.toml"


def default_data_dir() -> Path:
    return Path(platformdirs.user_data_dir(APP_NAME)) / "datasets"


def default_runs_dir() -> Path:
    return Path(platformdirs.user_data_dir(APP_NAME)) / "runs"


def default_theme_dir() -> Path:
    override = os.environ.get("BNTUI_THEME_DIR")
    if override:
        return Path(override).expanduser()
    return Path(platformdirs.user_config_dir(APP_NAME)) / "themes"


class ConfigFileError(ValueError):
    """The TOML config file exists but cannot be used."""


class AppSettings(BaseSettings):
    """Where bntui keeps its data and how it behaves on this machine."""

    model_config = SettingsConfigDict(env_prefix="BNTUI_", extra="forbid", validate_default=True)

    data_dir: Path = Field(default_factory=default_data_dir, description="where datasets live")
    runs_dir: Path = Field(default_factory=default_runs_dir, description="the run store")
    device: str = Field("auto", description="default device: auto, cpu, cuda, cuda:N or mps")
    download: bool = Field(False, description="allow downloading datasets")
    threads: int = Field(0, ge=0, le=1024, description="CPU threads for torch (0: torch's default)")
    theme: str = Field("bntui-dark", description="TUI theme name")

    @field_validator("data_dir", "runs_dir", mode="after")
    @classmethod
    def _expand(cls, value: Path) -> Path:
        return value.expanduser()

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        # init (CLI flags) > environment > TOML file > defaults
        return (
            init_settings,
            env_settings,
            TomlConfigSettingsSource(settings_cls, toml_file=default_config_file()),
        )


def load_settings(**overrides: Any) -> AppSettings:
    """Build settings, passing only the overrides the user actually gave (None means unset).

    A broken config file raises ConfigFileError naming the file."""
    given = {key: value for key, value in overrides.items() if value is not None}
    path = default_config_file()
    if path.exists():
        try:
            tomllib.loads(path.read_text(encoding="utf-8"))
        except (OSError, UnicodeDecodeError, tomllib.TOMLDecodeError) as exc:
            raise ConfigFileError(f"config file {path}: not valid TOML ({exc})") from None
    return AppSettings(**given)


def save_setting(key: str, value: Any) -> Path:
    """Write one key into the TOML config file, keeping the others (used for the theme)."""
    path = default_config_file()
    current: dict[str, Any] = {}
    if path.exists():
        try:
            current = tomllib.loads(path.read_text(encoding="utf-8"))
        except (OSError, UnicodeDecodeError, tomllib.TOMLDecodeError):
            current = {}
    current[key] = value
    path.parent.mkdir(parents=True, exist_ok=True)
    lines = [f"{name} = {_toml_value(item)}" for name, item in current.items()]
    temp = path.with_suffix(".toml.tmp")
    temp.write_text("\n".join(lines) + "\n", encoding="utf-8")
    os.replace(temp, path)
    return path


def _toml_value(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (int, float)):
        return repr(value)
    text = str(value).replace("\\", "\\\\").replace('"', '\\"')
    return f'"{text}"'
