"""Themes as data files: shipped themes, validation wording, search path, TUI/CLI helpers."""

from __future__ import annotations

import dataclasses
from itertools import combinations
from pathlib import Path

import pytest
from rich.console import Console
from textual.app import App
from textual.theme import BUILTIN_THEMES, Theme

from bntui.commands.themes_command import cmd_themes
from bntui.settings import AppSettings
from bntui.themes import (
    DEFAULT_THEME,
    PLOTEXT_MARKERS,
    ThemeFile,
    curve_style,
    install_themes,
    load_themes,
    no_color_requested,
    plot_theme_for,
    read_theme_file,
    register_all,
    resolve_theme,
    shipped_theme_dir,
    to_textual_theme,
)

REQUIRED_SHIPPED = {"bntui-dark", "bntui-light", "okabe-ito", "high-contrast"}
OKABE_ITO = ["#E69F00", "#56B4E9", "#009E73", "#F0E442", "#0072B2", "#D55E00", "#CC79A7", "#000000"]

GOOD = """\
name = "{name}"
primary = "#336699"
background = "#101010"
series = ["#ff0000", "#00ff00", "#0000ff", "#ffff00"]
"""


@pytest.fixture(autouse=True)
def _isolated(monkeypatch, tmp_path):
    """Keep the real user config and theme folder out of every test."""
    monkeypatch.setenv("BNTUI_CONFIG_FILE", str(tmp_path / "no-config.toml"))
    monkeypatch.setenv("BNTUI_THEME_DIR", str(tmp_path / "no-themes"))
    monkeypatch.delenv("BNTUI_THEME", raising=False)


def write(folder: Path, file_name: str, text: str) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / file_name
    path.write_text(text, encoding="utf-8")
    return path


def contrast(colour_a: str, colour_b: str) -> float:
    """WCAG 2 contrast ratio between two colours."""
    from textual.color import Color

    def luminance(value: str) -> float:
        channels = []
        for channel in Color.parse(value).rgb:
            c = channel / 255
            channels.append(c / 12.92 if c <= 0.03928 else ((c + 0.055) / 1.055) ** 2.4)
        red, green, blue = channels
        return 0.2126 * red + 0.7152 * green + 0.0722 * blue

    high, low = sorted((luminance(colour_a), luminance(colour_b)), reverse=True)
    return (high + 0.05) / (low + 0.05)


# --- shipped themes -------------------------------------------------------------------------


def test_every_shipped_theme_loads_and_validates(tmp_path):
    catalog = load_themes(tmp_path / "empty")
    assert catalog.problems == []
    assert REQUIRED_SHIPPED <= set(catalog.themes)
    shipped_files = sorted(shipped_theme_dir().glob("*.toml"))
    assert len(shipped_files) == len(catalog.themes)
    for path in shipped_files:
        theme, reason = read_theme_file(path)
        assert reason is None and theme is not None
        # Textual itself accepts it: building the full colour system does not fail.
        assert to_textual_theme(theme).to_color_system().generate()["primary"]


def test_shipped_light_and_dark_modes(tmp_path):
    themes = load_themes(tmp_path / "empty").themes
    assert themes["bntui-dark"].dark and not themes["bntui-light"].dark


def test_okabe_ito_theme_uses_the_okabe_ito_palette(tmp_path):
    series = [c.upper() for c in load_themes(tmp_path / "empty").themes["okabe-ito"].series]
    assert set(series) <= set(OKABE_ITO)
    # All seven chromatic colours are there (black may be dropped on a dark background).
    assert set(OKABE_ITO[:7]) <= set(series)


@pytest.mark.parametrize("name", sorted(REQUIRED_SHIPPED))
def test_shipped_series_read_against_their_background(tmp_path, name):
    theme = load_themes(tmp_path / "empty").themes[name]
    needed = 7.0 if name == "high-contrast" else 3.0
    assert theme.background is not None and theme.foreground is not None
    assert contrast(theme.foreground, theme.background) >= max(needed, 4.5)
    for colour in theme.series:
        assert contrast(colour, theme.background) >= needed, f"{name}: {colour}"


@pytest.mark.parametrize("name", sorted(REQUIRED_SHIPPED))
def test_shipped_series_colours_are_far_apart(tmp_path, name):
    from textual.color import Color, rgb_to_lab

    series = load_themes(tmp_path / "empty").themes[name].series
    for first, second in combinations(series, 2):
        a, b = rgb_to_lab(Color.parse(first)), rgb_to_lab(Color.parse(second))
        delta_e = sum((x - y) ** 2 for x, y in zip(a, b)) ** 0.5  # CIE76
        # 25 is just under Okabe-Ito's closest pair (sky blue / blue, 26).
        assert delta_e >= 25, f"{name}: {first} and {second} are too alike"


def test_marker_names_match_plotext():
    import contextlib
    import io

    import plotext

    table = io.StringIO()
    with contextlib.redirect_stdout(table):
        plotext.markers()  # plotext's own table of its markers: a row of names over their samples
    lines = plotext.uncolorize(table.getvalue()).splitlines()
    names = {word for line in lines if not any(box in line for box in "┌│└") for word in line.split()}
    # The table shows "fhd" but not "hd", the same blocks at half the resolution.
    assert set(PLOTEXT_MARKERS) == names | {"hd"}


def test_theme_file_mirrors_every_textual_theme_field():
    textual_fields = {f.name for f in dataclasses.fields(Theme)}
    assert textual_fields <= set(ThemeFile.model_fields)


# --- bad files: skipped with a one-line reason naming the file and the field ------------------


BAD_FILES = {
    "not-toml": ('name = "x"\nprimary = \n', "not valid TOML", "line 2"),
    "unknown-key": (
        GOOD.format(name="u") + 'primry = "#fff"\n',
        "primry",
        "did you mean 'primary'",
    ),
    "bad-colour": (
        GOOD.format(name="c").replace('"#336699"', '"#33669"'),
        "primary",
        "not a colour",
    ),
    "bad-series-colour": (
        GOOD.format(name="s").replace('"#0000ff"', '"blurple"'),
        "series",
        "colour 3: 'blurple' is not a colour",
    ),
    "missing-name": (GOOD.format(name="m").replace('name = "m"\n', ""), "name", "missing"),
    "bad-series-marker": (
        GOOD.format(name="k") + 'series_markers = ["o", "x", "+", "zigzag"]\n',
        "series_markers",
        "'zigzag' is not a plotext marker",
    ),
    "bad-train-marker": (
        GOOD.format(name="t") + 'train_marker = "brail"\n',
        "train_marker",
        "did you mean 'braille'",
    ),
    "same-markers": (
        GOOD.format(name="d") + 'train_marker = "dot"\nval_marker = "dot"\n',
        "val_marker",
        "differ from train_marker",
    ),
    "short-series": (
        GOOD.format(name="h").replace(', "#ffff00"', ""),
        "series",
        "at least 4",
    ),
    "bad-variable": (
        GOOD.format(name="v") + '[variables]\n"border" = "#12345 50%"\n',
        "variables",
        "border",
    ),
    "wrong-type": (GOOD.format(name="w") + 'dark = "yes"\n', "dark", "must be a valid boolean"),
    "bad-name": (GOOD.format(name="has space"), "name", "not a usable theme name"),
}


@pytest.mark.parametrize("case", sorted(BAD_FILES))
def test_bad_theme_file_is_skipped_with_its_reason(tmp_path, case):
    text, field, wording = BAD_FILES[case]
    user = tmp_path / "user"
    write(user, "fine.toml", GOOD.format(name="fine"))
    bad = write(user, f"{case}.toml", text)

    catalog = load_themes(user)

    assert "fine" in catalog.themes  # the good neighbour still loads
    assert REQUIRED_SHIPPED <= set(catalog.themes)
    assert [p.path for p in catalog.problems] == [bad]
    reason = catalog.problems[0].reason
    assert "\n" not in reason
    assert reason.startswith(f"{case}.toml: ")
    assert field in reason and wording in reason


def test_file_that_is_not_utf8_is_reported(tmp_path):
    user = tmp_path / "user"
    user.mkdir()
    (user / "latin1.toml").write_bytes(b'name = "caf\xe9"\n')
    catalog = load_themes(user)
    assert [p.reason for p in catalog.problems] == ["latin1.toml: cannot be read (not UTF-8 text)"]


def test_duplicate_name_in_one_folder_keeps_the_first_file(tmp_path):
    user = tmp_path / "user"
    first = write(user, "a.toml", GOOD.format(name="twin"))
    second = write(user, "b.toml", GOOD.format(name="twin").replace("#336699", "#993366"))

    catalog = load_themes(user)

    assert catalog.sources["twin"] == first
    assert catalog.themes["twin"].primary == "#336699"
    (problem,) = catalog.problems
    assert problem.path == second
    assert "b.toml" in problem.reason and "name" in problem.reason and "a.toml" in problem.reason


def test_warning_text_lists_each_bad_file(tmp_path):
    user = tmp_path / "user"
    write(user, "one.toml", "not = [toml")
    write(user, "two.toml", GOOD.format(name="two") + "extra = 1\n")
    text = load_themes(user).warning_text()
    assert text is not None
    assert "one.toml: not valid TOML" in text
    assert "two.toml: extra: unknown key" in text
    assert load_themes(tmp_path / "empty").warning_text() is None


def test_missing_user_folder_is_not_a_problem(tmp_path):
    catalog = load_themes(tmp_path / "does-not-exist")
    assert catalog.problems == [] and REQUIRED_SHIPPED <= set(catalog.themes)


# --- search path ----------------------------------------------------------------------------


def test_user_theme_replaces_shipped_theme_of_the_same_name(tmp_path):
    user = tmp_path / "user"
    mine = write(user, "my-dark.toml", GOOD.format(name="bntui-dark"))
    shipped_order = list(load_themes(tmp_path / "empty").themes)

    catalog = load_themes(user)

    assert catalog.themes["bntui-dark"].primary == "#336699"
    assert catalog.sources["bntui-dark"] == mine
    assert catalog.replaced["bntui-dark"].parent == shipped_theme_dir()
    assert list(catalog.themes) == shipped_order  # shipped first, replacement keeps its place


def test_user_themes_come_after_shipped_ones(tmp_path):
    user = tmp_path / "user"
    write(user, "aaa.toml", GOOD.format(name="aaa"))
    names = list(load_themes(user).themes)
    assert names[-1] == "aaa" and REQUIRED_SHIPPED <= set(names[:-1])


def test_broken_user_override_keeps_the_shipped_theme(tmp_path):
    user = tmp_path / "user"
    write(user, "bntui-dark.toml", GOOD.format(name="bntui-dark").replace("#336699", "nope"))
    catalog = load_themes(user)
    assert catalog.sources["bntui-dark"].parent == shipped_theme_dir()
    assert len(catalog.problems) == 1


def test_theme_dir_environment_variable_is_respected(tmp_path, monkeypatch):
    folder = tmp_path / "from-env"
    write(folder, "env.toml", GOOD.format(name="from-env"))
    monkeypatch.setenv("BNTUI_THEME_DIR", str(folder))
    catalog = load_themes()
    assert catalog.sources["from-env"] == folder / "env.toml"
    assert catalog.user_dir == folder


# --- choosing a theme -----------------------------------------------------------------------


def test_resolve_returns_the_configured_theme(tmp_path):
    catalog = load_themes(tmp_path / "empty")
    theme, note = resolve_theme(catalog, "okabe-ito")
    assert (theme.name, note) == ("okabe-ito", None)


def test_resolve_falls_back_to_the_default_with_a_note(tmp_path):
    catalog = load_themes(tmp_path / "empty")
    theme, note = resolve_theme(catalog, "solarised-nope")
    assert theme.name == DEFAULT_THEME
    assert note is not None and "solarised-nope" in note and DEFAULT_THEME in note
    assert resolve_theme(catalog, None) == (catalog.themes[DEFAULT_THEME], None)


def test_resolve_explains_a_configured_theme_whose_file_failed(tmp_path):
    user = tmp_path / "user"
    write(user, "mine.toml", GOOD.format(name="mine") + "oops = 1\n")
    theme, note = resolve_theme(load_themes(user), "mine")
    assert theme.name == DEFAULT_THEME
    assert note is not None and "could not be loaded" in note and "oops" in note


def test_plot_theme_for_textual_builtin_themes(tmp_path):
    catalog = load_themes(tmp_path / "empty")
    assert plot_theme_for(catalog, "okabe-ito").name == "okabe-ito"
    assert plot_theme_for(catalog, "nord", dark=BUILTIN_THEMES["nord"].dark).name == "bntui-dark"
    light = BUILTIN_THEMES["solarized-light"].dark
    assert plot_theme_for(catalog, "solarized-light", dark=light).name == "bntui-light"


# --- Textual and plots ----------------------------------------------------------------------


def test_to_textual_theme_keeps_every_value(tmp_path):
    for theme_file in load_themes(tmp_path / "empty").themes.values():
        theme = to_textual_theme(theme_file)
        assert isinstance(theme, Theme)
        for item in dataclasses.fields(Theme):
            assert getattr(theme, item.name) == getattr(theme_file, item.name), item.name


async def test_register_all_makes_themes_selectable(tmp_path):
    user = tmp_path / "user"
    write(user, "mine.toml", GOOD.format(name="mine"))
    catalog = load_themes(user)
    app: App[None] = App()
    names = register_all(app, catalog)
    assert set(names) == set(catalog.themes)
    assert set(names) <= set(app.available_themes)
    async with app.run_test():
        assert install_themes(app, catalog, "mine") is None
        assert app.current_theme.name == "mine"
        assert app.current_theme.primary == "#336699"
        note = install_themes(app, catalog, "gone")
        assert note is not None and app.theme == DEFAULT_THEME
        # Textual's own themes are offered by the command palette, and saved when picked.
        assert install_themes(app, catalog, "nord") is None
        assert app.theme == "nord"


async def test_a_textual_theme_whose_user_file_failed_falls_back_with_the_files_reason(tmp_path):
    user = tmp_path / "user"
    write(user, "nord.toml", "name = 'nord'\nprimary = 'not a colour'\n")
    catalog = load_themes(user)
    app: App[None] = App()
    async with app.run_test():
        note = install_themes(app, catalog, "nord")
        assert note is not None and "could not be loaded" in note
        assert app.theme == DEFAULT_THEME


def test_resolve_names_the_plot_colours_a_textual_theme_borrows(tmp_path):
    catalog = load_themes(tmp_path / "none")
    light, note = resolve_theme(catalog, "textual-light")
    assert light.name == "bntui-light" and note is not None and "Textual's own" in note
    assert resolve_theme(catalog, "nord")[0].name == DEFAULT_THEME


def test_curve_styles_with_colour(tmp_path):
    theme = load_themes(tmp_path / "empty").themes["okabe-ito"]
    train, val = curve_style(theme, 0, "train"), curve_style(theme, 0, "val")
    assert train.color == val.color == theme.series_rgb[0]
    assert (train.marker, val.marker) == (theme.train_marker, theme.val_marker)
    assert curve_style(theme, 1, "train").color != train.color
    wrapped = curve_style(theme, len(theme.series), "train")
    assert wrapped.color == train.color


def test_curve_styles_without_colour_use_distinct_markers(tmp_path):
    theme = load_themes(tmp_path / "empty").themes["bntui-dark"]
    styles = [curve_style(theme, run, split, no_color=True) for run in range(4) for split in ("train", "val")]
    assert all(style.color is None for style in styles)
    assert len({style.marker for style in styles}) == len(styles)


@pytest.mark.parametrize(("value", "expected"), [(None, False), ("", False), ("1", True), ("yes", True)])
def test_no_color_requested(value, expected):
    environ = {} if value is None else {"NO_COLOR": value}
    assert no_color_requested(environ) is expected


# --- bntui themes ---------------------------------------------------------------------------


def test_cmd_themes_lists_themes_and_failures(tmp_path):
    user = tmp_path / "user"
    write(user, "mine.toml", GOOD.format(name="mine"))
    write(user, "broken.toml", GOOD.format(name="broken").replace("#336699", "#zzzzzz"))
    console = Console(record=True, width=120, color_system="truecolor")

    code = cmd_themes(AppSettings(theme="okabe-ito"), console, user_dir=user)

    text = console.export_text(clear=False)
    assert code == 1
    for name in REQUIRED_SHIPPED | {"mine"}:
        assert name in text
    assert "light" in text and "dark" in text
    assert "yours: mine.toml" in text and str(user) in text
    assert "shipped: okabe-ito.toml" in text
    assert "yours: broken.toml" in text and "primary" in text and "not a colour" in text
    # The palette is drawn as blocks in each series colour.
    html = console.export_html(inline_styles=True)
    assert "#e69f00" in html.lower()


def test_cmd_themes_clean_run_and_unknown_configured_theme(tmp_path, monkeypatch):
    monkeypatch.setenv("BNTUI_THEME_DIR", str(tmp_path / "empty"))
    console = Console(record=True, width=120)
    code = cmd_themes(AppSettings(theme="gone"), console)
    text = console.export_text()
    assert code == 0
    assert "Skipped" not in text
    assert "'gone' not found" in text and "using bntui-dark" in text
    assert str(tmp_path / "empty") in text  # tells the user where their own themes go


def test_cmd_themes_without_colour_shows_plot_markers(tmp_path):
    console = Console(record=True, width=120, no_color=True)
    cmd_themes(AppSettings(), console, user_dir=tmp_path / "empty")
    text = console.export_text()
    assert "Run markers" in text and "o x + * # @ % =" in text


def test_theme_folder_that_is_a_file_is_reported_not_raised(tmp_path):
    not_a_folder = write(tmp_path, "themes", "just a file")
    catalog = load_themes(not_a_folder)
    assert REQUIRED_SHIPPED <= set(catalog.themes)
    assert [p.path for p in catalog.problems] == [not_a_folder]
    assert "cannot list theme folder" in catalog.problems[0].reason
