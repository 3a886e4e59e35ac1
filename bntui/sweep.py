"""Grids: a comma list in a setting, or a sweep file, makes one run per combination.

`bntui run --lr 0.01,0.1 --bn both --seeds 2` is 2 x 2 x 2 = 8 runs in one group. The lists are
taken out of the flags (or form fields) before the settings are validated; each run's config
is then validated by RunConfig as any other, so a bad value is reported by its field's name.
Cheap to import (no torch): the CLI and the TUI form read it on every launch."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import tomllib
from pydantic import ConfigDict, Field, ValidationError, field_validator

from bntui.config import MAX_SEEDS, SEEDS_DESCRIPTION, BnChoice, TrainingFields, format_validation_error

# A launch of more runs than this asks first (the CLI: --yes, or a question on a terminal).
GRID_LIMIT = 500

# Settings a grid can vary: every training setting but the seed (--seeds varies it), the hidden
# sizes (their own value is a comma list) and the device (a launch trains on one).
NOT_SWEEPABLE = ("seed", "hidden_sizes", "device")
SWEEPABLE: tuple[str, ...] = tuple(name for name in TrainingFields.model_fields if name not in NOT_SWEEPABLE)


class GridError(ValueError):
    """A grid or a sweep file that cannot be used; the message is one line for the user."""


def split_list(name: str, text: str) -> list[str]:
    """The values of one comma list ("0.01, 0.1" -> ["0.01", "0.1"]), in the order typed,
    repeats dropped."""
    values = [part.strip() for part in text.split(",")]
    if any(not value for value in values):
        raise GridError(f"{name}: empty value in the list {text!r}; write values separated by commas, e.g. 0.01,0.1")
    return list(dict.fromkeys(values))


def take_grid(values: dict[str, Any]) -> tuple[dict[str, Any], dict[str, list[str]]]:
    """Split settings as typed into single values and the grid: each sweepable setting whose
    text holds a comma becomes a list (its first value stays in the settings, so that they
    validate as one run). Raises GridError for an empty value in a list."""
    single, grid = dict(values), {}
    for name, value in values.items():
        if name in SWEEPABLE and isinstance(value, str) and "," in value:
            grid[name] = split_list(name, value)
            single[name] = grid[name][0]
    return single, grid


def grid_size(grid: dict[str, list[Any]]) -> int:
    size = 1
    for values in grid.values():
        size *= len(values)
    return size


class SweepFile(TrainingFields):
    """A sweep in a TOML file: fixed settings at the top, lists of values under [grid].

    optimizer = "sgd"
    bn = "both"
    seeds = 3
    [grid]
    lr = [0.001, 0.01, 0.1, 1.0]
    """

    model_config = ConfigDict(extra="forbid", validate_assignment=True, allow_inf_nan=False)

    bn: BnChoice = Field("on", description="on, off, or both (paired runs per seed)")
    seeds: int | None = Field(None, ge=1, le=MAX_SEEDS, description=SEEDS_DESCRIPTION)
    grid: dict[str, list[Any]] = Field(default_factory=dict, description="setting -> values to sweep")

    @field_validator("grid")
    @classmethod
    def _check_grid(cls, grid: dict[str, list[Any]]) -> dict[str, list[Any]]:
        for name, values in grid.items():
            if name not in SWEEPABLE:
                raise ValueError(f"{name}: cannot be swept; sweepable: {', '.join(SWEEPABLE)}")
            if not values:
                raise ValueError(f"{name}: the list of values is empty")
            if any(isinstance(value, (list, dict)) for value in values):
                raise ValueError(f"{name}: values must be numbers or names, not lists or tables")
        return grid

    def fixed(self) -> dict[str, Any]:
        """The settings the file sets (not the grid), as written."""
        return {name: getattr(self, name) for name in self.model_fields_set if name != "grid"}


def load_sweep_file(path: Path) -> SweepFile:
    """The sweep file, or GridError with one line naming the file and the problem."""
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise GridError(f"--sweep: {path} does not exist") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise GridError(f"--sweep: cannot read {path}: {exc}") from None
    except tomllib.TOMLDecodeError as exc:
        raise GridError(f"--sweep: {path} is not valid TOML: {exc}") from None
    except RecursionError:
        raise GridError(f"--sweep: {path} is nested too deeply") from None
    try:
        return SweepFile.model_validate(data)
    except ValidationError as exc:
        raise GridError(f"--sweep: {path}: {format_validation_error(exc)}") from None


def varied_settings(configs: list[Any]) -> list[str]:
    """The sweepable settings that take more than one value among these configs."""
    return [name for name in SWEEPABLE if len({repr(getattr(c, name)) for c in configs}) > 1]
