"""Themes as data: TOML files validated into `ThemeFile`, turned into Textual themes.

Search path: the shipped themes (package `bntui._themes` when installed, the repository's
`themes/` folder in a source checkout), then the user's theme folder
(`bntui.settings.default_theme_dir()`, overridden by BNTUI_THEME_DIR). A user theme with the
same name as a shipped one replaces it. A bad file is skipped and reported, never raised.

NO_COLOR (https://no-color.org): Textual already honours it — `App.__init__` sets
`app.no_color` and adds a Monochrome line filter (NoColor with native ANSI colours) when the
variable is present, so every colour on screen becomes a shade of grey. Series colours then
no longer tell runs apart, so plots must switch to shapes: `curve_style(..., no_color=True)`
gives every curve (run x train/val) its own character from the theme's `series_markers` and
no colour; the legend says which is which. Note Textual treats NO_COLOR set-but-empty as "no
colour" while no-color.org (and rich) require a non-empty value; in the TUI use
`app.no_color or no_color_requested()`.

This module may import textual (lazily, to keep `import bntui.themes` cheap); bntui.engine
must never import it.
"""

from __future__ import annotations

import difflib
import os
import re
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from bntui.present.words import counted
from bntui.settings import default_theme_dir

if TYPE_CHECKING:
    from textual.app import App
    from textual.theme import Theme

DEFAULT_THEME = "bntui-dark"
DEFAULT_LIGHT_THEME = "bntui-light"

# plotext 5.x marker names (plotext._dict.marker_codes + hd_symbols). Copied rather than
# imported because importing plotext costs ~50 ms; tests/unit/test_themes.py checks they agree.
PLOTEXT_MARKERS: tuple[str, ...] = (
    "hd", "fhd", "braille",
    "sd", "dot", "dollar", "euro", "bitcoin", "at", "heart", "smile", "gclef", "note",
    "shamrock", "atom", "snowflake", "star", "flower", "lightning", "queen", "king", "cross",
    "yinyang", "om", "osiris", "zero", "one", "two", "three", "four", "five", "six", "seven",
    "eight", "nine",
)  # fmt: skip

DEFAULT_SERIES_MARKERS: tuple[str, ...] = ("o", "x", "+", "*", "#", "@", "%", "=")

_NAME_PATTERN = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$")
# Textual CSS refers to theme variables as $name with this character set.
_VARIABLE_KEY_PATTERN = re.compile(r"^[A-Za-z0-9_-]+$")
# Variable values that are meant as colours; others ("bold", "auto 87%") pass through.
_COLOUR_LIKE = re.compile(r"^\s*(#|rgba?\(|hsla?\()", re.IGNORECASE)
_TRAILING_ALPHA = re.compile(r"\s+\d{1,3}(\.\d+)?%\s*$")

_COLOUR_HELP = 'use "#rrggbb", "rgb(r,g,b)", "hsl(h,s%,l%)" or a colour name such as "red"'


def _check_colour(value: str) -> str:
    from textual.color import Color, ColorParseError

    try:
        Color.parse(value)
    except ColorParseError as exc:
        hint = f"; did you mean {exc.suggested_color!r}?" if exc.suggested_color else ""
        raise ValueError(f"{value!r} is not a colour ({_COLOUR_HELP}){hint}") from None
    return value


def _check_marker(value: str) -> str:
    # plotext draws any single character as a marker, and knows these names.
    single_character = len(value) == 1 and value.isprintable() and not value.isspace()
    if value in PLOTEXT_MARKERS or single_character:
        return value
    close = difflib.get_close_matches(value, PLOTEXT_MARKERS, n=1)
    hint = f"; did you mean {close[0]!r}?" if close else ""
    raise ValueError(
        f"{value!r} is not a plotext marker (use braille, hd, fhd, sd, dot, another plotext "
        f"marker name, or a single character){hint}"
    )


def _check_unique(values: list[str], what: str) -> list[str]:
    seen: set[str] = set()
    for value in values:
        key = value.strip().lower()
        if key in seen:
            raise ValueError(f"{what} {value!r} appears twice; each run needs its own")
        seen.add(key)
    return values


class ThemeFile(BaseModel):
    """One theme file. Mirrors every field of Textual 8.2's `textual.theme.Theme`, plus bntui's
    plot styling: the run-series palette and the train/validation markers."""

    model_config = ConfigDict(extra="forbid", strict=True, frozen=True)

    # --- textual.theme.Theme ---
    name: str = Field(description="theme name shown in the theme picker and used in config")
    primary: str = Field(description="main accent colour (required by Textual)")
    secondary: str | None = None
    warning: str | None = None
    error: str | None = None
    success: str | None = None
    accent: str | None = None
    foreground: str | None = None
    background: str | None = None
    surface: str | None = None
    panel: str | None = None
    boost: str | None = None
    dark: bool = True
    luminosity_spread: float = Field(0.15, ge=0, le=1)
    text_alpha: float = Field(0.95, ge=0, le=1)
    variables: dict[str, str] = Field(default_factory=dict)
    ansi: bool = False

    # --- bntui's plot styling ---
    series: list[str] = Field(min_length=4, max_length=32, description="run colours in plots, in order (then repeated)")
    train_marker: str = Field("braille", description="plotext marker for training curves")
    val_marker: str = Field("dot", description="plotext marker for validation curves")
    series_markers: list[str] = Field(
        default_factory=lambda: list(DEFAULT_SERIES_MARKERS),
        min_length=4,
        max_length=32,
        description="one marker per curve when colours are off (NO_COLOR)",
    )

    @field_validator("name")
    @classmethod
    def _check_name(cls, value: str) -> str:
        if not _NAME_PATTERN.match(value):
            raise ValueError(
                f"{value!r} is not a usable theme name (letters, digits, '-', '_' and '.', "
                "starting with a letter or digit, at most 64 characters)"
            )
        return value

    @field_validator(
        "primary", "secondary", "warning", "error", "success", "accent",
        "foreground", "background", "surface", "panel", "boost",
    )  # fmt: skip
    @classmethod
    def _check_theme_colour(cls, value: str | None) -> str | None:
        return None if value is None else _check_colour(value)

    @field_validator("series")
    @classmethod
    def _check_series(cls, values: list[str]) -> list[str]:
        for index, value in enumerate(values):
            try:
                _check_colour(value)
            except ValueError as exc:
                raise ValueError(f"colour {index + 1}: {exc}") from None
        return _check_unique(values, "colour")

    @field_validator("train_marker", "val_marker")
    @classmethod
    def _check_one_marker(cls, value: str) -> str:
        return _check_marker(value)

    @field_validator("series_markers")
    @classmethod
    def _check_series_markers(cls, values: list[str]) -> list[str]:
        for index, value in enumerate(values):
            try:
                _check_marker(value)
            except ValueError as exc:
                raise ValueError(f"marker {index + 1}: {exc}") from None
        return _check_unique(values, "marker")

    @field_validator("variables")
    @classmethod
    def _check_variables(cls, values: dict[str, str]) -> dict[str, str]:
        for key, value in values.items():
            if not _VARIABLE_KEY_PATTERN.match(key):
                raise ValueError(f"{key!r} is not a Textual variable name (letters, digits, '-' and '_')")
            if not value.strip():
                raise ValueError(f"{key}: must not be empty")
            if _COLOUR_LIKE.match(value):
                # Textual allows "colour NN%" (a colour at NN% opacity) in variables.
                try:
                    _check_colour(_TRAILING_ALPHA.sub("", value).strip())
                except ValueError as exc:
                    raise ValueError(f"{key}: {exc}") from None
        return values

    @model_validator(mode="after")
    def _check_markers_differ(self) -> ThemeFile:
        if self.train_marker == self.val_marker:
            raise ValueError(
                "val_marker: must differ from train_marker so training and validation curves can be told apart"
            )
        return self

    @property
    def series_rgb(self) -> list[tuple[int, int, int]]:
        """The series colours as RGB tuples (what plotext takes)."""
        from textual.color import Color

        return [Color.parse(value).rgb for value in self.series]


# Used only when even the shipped default is missing or broken, so the app can still start.
_EMERGENCY_THEME = ThemeFile(
    name=DEFAULT_THEME,
    primary="#5AA9E6",
    accent="#F2A65A",
    foreground="#DCE3EC",
    background="#10141A",
    series=["#5AA9E6", "#F2A65A", "#7BD389", "#E86A92"],
)


@dataclass(frozen=True)
class ThemeProblem:
    """A theme file that was skipped. `reason` is one line that names the file and the field."""

    path: Path
    reason: str


@dataclass
class ThemeCatalog:
    """Every usable theme (shipped first, then the user's), where each came from, what failed."""

    themes: dict[str, ThemeFile] = field(default_factory=dict)
    sources: dict[str, Path] = field(default_factory=dict)
    problems: list[ThemeProblem] = field(default_factory=list)
    # name -> the shipped file a user theme of the same name replaced
    replaced: dict[str, Path] = field(default_factory=dict)
    shipped_dir: Path | None = None
    user_dir: Path | None = None

    def is_shipped(self, name: str) -> bool:
        source = self.sources.get(name)
        return source is not None and source.parent == self.shipped_dir

    def warning_text(self) -> str | None:
        """One notification listing each skipped file and why, or None when all loaded."""
        if not self.problems:
            return None
        count = len(self.problems)
        lines = [f"{counted(count, 'theme file')} skipped:"]
        lines += [f"• {problem.reason}" for problem in self.problems]
        lines.append("Run `bntui themes` for the full list.")
        return "\n".join(lines)


def no_color_requested(environ: Mapping[str, str] | None = None) -> bool:
    """True when NO_COLOR is set to a non-empty value (https://no-color.org)."""
    env = os.environ if environ is None else environ
    return env.get("NO_COLOR", "") != ""


def shipped_theme_dir() -> Path:
    """The folder of shipped theme files: `bntui._themes` when installed, else ./themes."""
    # Same lookup as importlib.resources.files("bntui._themes"), but works for both a regular
    # and a namespace package (files() returns a MultiplexedPath there, not a Path).
    from importlib.util import find_spec

    try:
        spec = find_spec("bntui._themes")
    except (ImportError, ValueError):
        spec = None
    for location in (spec.submodule_search_locations or []) if spec else []:
        if Path(location).is_dir():
            return Path(location)
    return Path(__file__).resolve().parent.parent / "themes"


def load_themes(user_dir: Path | None = None) -> ThemeCatalog:
    """Load the shipped themes, then the user's (same name replaces). Never raises."""
    user_dir = default_theme_dir() if user_dir is None else Path(user_dir).expanduser()
    shipped_dir = shipped_theme_dir()
    catalog = ThemeCatalog(shipped_dir=shipped_dir, user_dir=user_dir)
    shipped = _load_folder(shipped_dir, catalog.problems, required=True)
    user: dict[str, tuple[ThemeFile, Path]] = {}
    if not _same_folder(user_dir, shipped_dir):
        user = _load_folder(user_dir, catalog.problems, required=False)
    for name, (theme, path) in shipped.items():
        catalog.themes[name] = theme
        catalog.sources[name] = path
    for name, (theme, path) in user.items():
        if name in shipped:
            catalog.replaced[name] = shipped[name][1]
        catalog.themes[name] = theme  # an existing key keeps its place: shipped order stays
        catalog.sources[name] = path
    return catalog


def _load_folder(folder: Path, problems: list[ThemeProblem], *, required: bool) -> dict[str, tuple[ThemeFile, Path]]:
    found: dict[str, tuple[ThemeFile, Path]] = {}
    try:
        if not folder.exists():
            if required:
                problems.append(ThemeProblem(folder, f"{folder}: shipped theme folder is missing"))
            return found
        paths = sorted(
            entry for entry in folder.iterdir()
            if entry.suffix.lower() == ".toml" and not entry.name.startswith(".")
        )  # fmt: skip
    except OSError as exc:
        reason = f"{folder}: cannot list theme folder ({_os_reason(exc)})"
        problems.append(ThemeProblem(folder, reason))
        return found
    for path in paths:
        theme, refusal = read_theme_file(path)
        if theme is None:
            problems.append(ThemeProblem(path, refusal or f"{path.name}: unusable"))
            continue
        if theme.name in found:
            first = found[theme.name][1].name
            problems.append(
                ThemeProblem(
                    path,
                    f"{path.name}: name: {theme.name!r} is already used by {first} in the same "
                    "folder; give one of them another name",
                )
            )
            continue
        found[theme.name] = (theme, path)
    return found


def _same_folder(first: Path, second: Path) -> bool:
    try:
        return first.resolve() == second.resolve()
    except (OSError, RuntimeError):  # RuntimeError: a symlink loop
        return False


def read_theme_file(path: Path) -> tuple[ThemeFile | None, str | None]:
    """Parse and validate one theme file: (theme, None) or (None, one-line reason)."""
    label = path.name
    if not path.is_file():
        return None, f"{label}: not a regular file"
    try:
        text = path.read_text(encoding="utf-8")
    except UnicodeDecodeError:
        return None, f"{label}: cannot be read (not UTF-8 text)"
    except OSError as exc:
        return None, f"{label}: cannot be read ({_os_reason(exc)})"
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        return None, f"{label}: not valid TOML ({exc})"
    except RecursionError:  # tomllib recurses per nesting level
        return None, f"{label}: not usable TOML (nested too deeply)"
    return parse_theme(data, label)


def parse_theme(data: dict[str, Any], label: str) -> tuple[ThemeFile | None, str | None]:
    """Validate already-parsed TOML data; `label` (the file name) starts the reason."""
    try:
        return ThemeFile.model_validate(data), None
    except ValidationError as exc:
        return None, f"{label}: {_describe(exc)}"


def _describe(error: ValidationError) -> str:
    """The first problems as `field: what is allowed`, on one line."""
    parts = []
    for item in error.errors()[:3]:
        location = _location(item["loc"])
        message = str(item["msg"]).removeprefix("Value error, ")
        kind = item["type"]
        if kind == "extra_forbidden":
            key = str(item["loc"][-1])
            close = difflib.get_close_matches(key, list(ThemeFile.model_fields), n=1)
            message = (
                f"unknown key; did you mean {close[0]!r}?"
                if close
                else ("unknown key (allowed: " + ", ".join(ThemeFile.model_fields) + ")")
            )
        elif kind == "missing":
            message = "required key is missing"
        elif kind == "too_short":
            message = f"needs at least {item.get('ctx', {}).get('min_length', 1)} entries"
        elif kind == "too_long":
            message = f"allows at most {item.get('ctx', {}).get('max_length', 1)} entries"
        elif kind.endswith("_type") or kind.endswith("_parsing"):
            message = message.replace("Input should be", "must be")
        parts.append(f"{location}: {message}" if location else message)
    extra = len(error.errors()) - len(parts)
    if extra > 0:
        parts.append(f"and {extra} more")
    return "; ".join(parts)


def _location(loc: tuple[Any, ...]) -> str:
    text = ""
    for part in loc:
        if isinstance(part, int):
            text += f"[{part + 1}]"  # 1-based, like the line a person counts to
        else:
            text += f".{part}" if text else str(part)
    return text


def _os_reason(exc: OSError) -> str:
    return exc.strerror or type(exc).__name__


def textual_theme_dark(name: str) -> bool | None:
    """Whether Textual's own theme `name` is dark; None when Textual has no theme of that name.
    The app offers these too (the command palette lists them), so a saved one must work."""
    from textual.theme import BUILTIN_THEMES

    theme = BUILTIN_THEMES.get(name)
    return None if theme is None else theme.dark


def _file_failed(catalog: ThemeCatalog, name: str) -> bool:
    return any(problem.path.stem == name for problem in catalog.problems)


def resolve_theme(catalog: ThemeCatalog, wanted: str | None) -> tuple[ThemeFile, str | None]:
    """The theme called `wanted`, or the default with a note saying why it was not used. For
    one of Textual's own themes: the theme its plots borrow, and a note saying so."""
    if wanted and wanted in catalog.themes:
        return catalog.themes[wanted], None
    dark = textual_theme_dark(wanted) if wanted else None
    if wanted and dark is not None and not _file_failed(catalog, wanted):
        stand_in = plot_theme_for(catalog, wanted, dark=dark)
        return stand_in, f"theme {wanted!r} is one of Textual's own; its plots use {stand_in.name}'s colours"
    fallback = catalog.themes.get(DEFAULT_THEME) or next(iter(catalog.themes.values()), None)
    if fallback is None:
        fallback = _EMERGENCY_THEME
    if not wanted or wanted == fallback.name:
        return fallback, None
    failed = [p for p in catalog.problems if p.path.stem == wanted]
    if failed:
        why = f"theme {wanted!r} could not be loaded ({failed[0].reason})"
    else:
        names = ", ".join(catalog.themes) or "none"
        why = f"theme {wanted!r} not found (available: {names})"
    return fallback, f"{why}; using {fallback.name}"


def plot_theme_for(catalog: ThemeCatalog, name: str, *, dark: bool = True) -> ThemeFile:
    """The plot styling for the active Textual theme `name`. Textual's own themes (nord,
    gruvbox, ...) have no series palette: they get bntui-dark's or bntui-light's."""
    if name in catalog.themes:
        return catalog.themes[name]
    stand_in = DEFAULT_THEME if dark else DEFAULT_LIGHT_THEME
    return catalog.themes.get(stand_in) or resolve_theme(catalog, stand_in)[0]


@dataclass(frozen=True)
class CurveStyle:
    """How to draw one plot curve: `color` is a plotext RGB tuple or None (terminal default)."""

    color: tuple[int, int, int] | None
    marker: str


def curve_style(
    theme: ThemeFile, run_index: int, split: Literal["train", "val"], *, no_color: bool = False
) -> CurveStyle:
    """Colour tells runs apart and the marker tells train from validation; without colour,
    each curve (run x split) gets its own marker from `series_markers` instead."""
    if no_color:
        slot = 2 * run_index + (1 if split == "val" else 0)
        return CurveStyle(None, theme.series_markers[slot % len(theme.series_markers)])
    colour = theme.series_rgb[run_index % len(theme.series)]
    return CurveStyle(colour, theme.train_marker if split == "train" else theme.val_marker)


def to_textual_theme(theme_file: ThemeFile) -> Theme:
    """The Textual `Theme` for a theme file (same colours, same options)."""
    from textual.theme import Theme

    return Theme(
        name=theme_file.name,
        primary=theme_file.primary,
        secondary=theme_file.secondary,
        warning=theme_file.warning,
        error=theme_file.error,
        success=theme_file.success,
        accent=theme_file.accent,
        foreground=theme_file.foreground,
        background=theme_file.background,
        surface=theme_file.surface,
        panel=theme_file.panel,
        boost=theme_file.boost,
        dark=theme_file.dark,
        luminosity_spread=theme_file.luminosity_spread,
        text_alpha=theme_file.text_alpha,
        variables=dict(theme_file.variables),
        ansi=theme_file.ansi,
    )


def register_all(app: App[Any], catalog: ThemeCatalog) -> list[str]:
    """Register every catalog theme with the app (the command palette's picker lists them)."""
    for theme_file in catalog.themes.values():
        app.register_theme(to_textual_theme(theme_file))
    return list(catalog.themes)


def install_themes(app: App[Any], catalog: ThemeCatalog, wanted: str | None) -> str | None:
    """Register all themes and switch the app to `wanted` (or the default). Returns the note
    to show the user when the configured theme could not be used, else None."""
    register_all(app, catalog)
    textual_own = wanted not in catalog.themes and wanted in app.available_themes
    if wanted and textual_own and not _file_failed(catalog, wanted):
        app.theme = wanted  # one of Textual's own, e.g. picked in the command palette and saved
        return None
    chosen, note = resolve_theme(catalog, wanted)
    if chosen.name not in catalog.themes:  # the emergency stand-in
        app.register_theme(to_textual_theme(chosen))
    app.theme = chosen.name
    return note
