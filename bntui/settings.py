"""Application settings: CLI flags > BNTUI_* environment > TOML config file > defaults."""

from __future__ import annotations

import os
import tomllib
from pathlib import Path
from typing import Annotated, Any, Literal

import platformdirs
import tomlkit
from tomlkit.exceptions import TOMLKitError
from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, ValidationError, field_validator
from pydantic_settings import (
    BaseSettings,
    PydanticBaseSettingsSource,
    SettingsConfigDict,
    SettingsError,
    TomlConfigSettingsSource,
)

# plain_message is config's wording for pydantic errors: runs and settings read alike.
from bntui.config import check_device_name, plain_message

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


def _not_empty(value: Any) -> Any:
    # An empty path would silently mean the current folder: every folder there would then be
    # listed as a run. (The CLI passes its flags as text, so "" still reaches this check.)
    if isinstance(value, str) and not value.strip():
        raise ValueError("must not be empty: give a folder (an empty path means no folder)")
    return value


# A folder setting (runs_dir, data_dir), from a flag, a BNTUI_* variable or the config file.
FolderPath = Annotated[Path, BeforeValidator(_not_empty)]


class SettingsValueError(SettingsError):
    """A setting's value is not allowed; the message names the flag or variable it came from.

    A SettingsError so that callers which already catch pydantic-settings' errors catch it."""


class ConfigFileError(SettingsValueError):
    """The TOML config file exists but cannot be used."""


Backend = Literal["local", "slurm"]


class SlurmOptions(BaseModel):
    """How runs are submitted to SLURM: the [slurm] table of the config file, --slurm-* flags."""

    model_config = ConfigDict(extra="forbid")

    partition: str | None = Field(None, description="SLURM partition (default: the cluster's default)")
    time_min: int = Field(60, ge=1, le=525_600, description="time limit of each run's job, minutes")
    gpus: int = Field(0, ge=0, le=64, description="GPUs per run")
    cpus: int = Field(1, ge=1, le=1024, description="CPU cores per run")


class AppSettings(BaseSettings):
    """Where bntui keeps its data and how it behaves on this machine."""

    model_config = SettingsConfigDict(env_prefix="BNTUI_", extra="forbid", validate_default=True)

    data_dir: FolderPath = Field(default_factory=default_data_dir, description="where datasets live")
    runs_dir: FolderPath = Field(default_factory=default_runs_dir, description="the run store")
    device: str = Field("auto", description="default device: auto, cpu, cuda, cuda:N or mps")
    download: bool = Field(False, description="allow downloading datasets")
    threads: int = Field(0, ge=0, le=1024, description="CPU threads for torch (0: torch's default)")
    theme: str = Field("bntui-dark", description="TUI theme name")
    max_parallel: int | None = Field(
        None,
        ge=1,
        le=64,
        description="runs training at once per device (unset: 1 on a CPU, by free memory on a GPU)",
    )
    backend: Backend = Field("local", description="where runs train: local (detached processes) or slurm")
    pack: Literal["auto", "off"] = Field(
        "auto", description="train a launch's runs that differ only in seed and BN as one packed model: auto or off"
    )
    slurm: SlurmOptions = Field(default_factory=SlurmOptions, description="SLURM submission")

    @field_validator("device")
    @classmethod
    def _check_device(cls, value: str) -> str:
        # A run's own rule: a name `bntui run` refuses must not be accepted here either.
        return check_device_name(value)

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

    A broken config file raises ConfigFileError naming the file; a bad value raises
    ConfigFileError (the value is in the file) or SettingsValueError (a flag or BNTUI_*
    variable), each problem named by where its value came from, all on one line."""
    given = {key: value for key, value in overrides.items() if value is not None}
    path = default_config_file()
    in_file: dict[str, Any] = {}
    if path.exists():
        try:
            in_file = tomllib.loads(path.read_text(encoding="utf-8"))
        except (OSError, UnicodeDecodeError, tomllib.TOMLDecodeError) as exc:
            raise ConfigFileError(f"config file {path}: not valid TOML ({exc})") from None
        except RecursionError:  # tomllib recurses per nesting level: a hostile file overflows it
            raise ConfigFileError(f"config file {path}: not usable TOML (nested too deeply)") from None
    try:
        return AppSettings(**given)
    except ValidationError as exc:
        problems = [_describe(item, given, in_file, path) for item in exc.errors()]
        from_file = any(problem.startswith("config file ") for problem in problems)
        raise (ConfigFileError if from_file else SettingsValueError)("; ".join(problems)) from None


# pydantic's wording for a wrong type names Python classes; say what to write instead.
_TYPE_MESSAGES = {
    "path_type": "must be a path (text)",
    "int_type": "must be a whole number",
    "int_parsing": "must be a whole number",
    "int_from_float": "must be a whole number",
    "bool_type": "must be true or false",
    "bool_parsing": "must be true or false",
    "string_type": "must be text",
}


def _describe(item: Any, given: dict[str, Any], in_file: dict[str, Any], path: Path) -> str:
    """`source: problem` for one validation error, the source found in precedence order."""
    key = str(item["loc"][0]) if item["loc"] else ""
    message = _TYPE_MESSAGES.get(item["type"]) or plain_message(item)
    if item["type"] == "extra_forbidden":
        message += f" (known: {', '.join(AppSettings.model_fields)})"
    if key == "slurm" and len(item["loc"]) > 1:  # a [slurm] key: --slurm-partition, slurm.partition
        inner = str(item["loc"][1])
        if inner in (given.get("slurm") or {}):
            return f"--slurm-{inner.replace('_', '-')}: {message}"
        return f"config file {path}: slurm.{inner}: {message}"
    if key in given:
        return f"--{key.replace('_', '-')}: {message}"
    variable = setting_variable(key)
    if variable is not None:
        return f"{variable}: {message}"
    if key in in_file:
        return f"config file {path}: {key}: {message}"
    return f"{key}: {message}" if key else message


def setting_variable(key: str) -> str | None:
    """The BNTUI_* environment variable that sets `key`, as written, or None when none is set
    (pydantic-settings matches the names ignoring case)."""
    return next((name for name in os.environ if name.lower() == f"bntui_{key}"), None)


def save_setting(key: str, value: Any) -> Path:
    """Set one top-level key in the TOML config file, keeping everything else the user wrote
    (comments, order, layout) as it is; the TUI saves its theme this way.

    Raises OSError when the file cannot be read, is not valid TOML (it is left untouched
    rather than replaced), or cannot be written."""
    path = default_config_file()
    if path.is_symlink():  # a linked config (a dotfiles repo) is updated where it lives
        path = path.resolve()
    if path.exists():
        try:
            # bytes, not read_text: keep the user's line endings as they are
            document = tomlkit.parse(path.read_bytes().decode("utf-8"))
        except (UnicodeDecodeError, TOMLKitError) as exc:
            raise OSError(f"config file {path}: not valid TOML, left unchanged ({exc})") from None
        except RecursionError:
            raise OSError(f"config file {path}: not usable TOML (nested too deeply), left unchanged") from None
    else:
        document = tomlkit.document()
    # tomlkit keeps a replaced value's trailing comment and puts a new key before any table
    document[key] = value
    path.parent.mkdir(parents=True, exist_ok=True)
    temp = path.with_suffix(".toml.tmp")
    try:
        temp.write_bytes(document.as_string().encode("utf-8"))
        os.replace(temp, path)  # atomic: a crash leaves the old file or the new one, never half
    finally:
        temp.unlink(missing_ok=True)
    return path
