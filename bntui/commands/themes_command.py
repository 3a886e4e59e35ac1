"""`bntui themes`: list the themes found, their run colours, and the theme files that failed."""

from __future__ import annotations

from pathlib import Path

from rich.console import Console
from rich.table import Table
from rich.text import Text

from bntui.settings import AppSettings, default_theme_dir
from bntui.themes import ThemeCatalog, ThemeFile, load_themes, resolve_theme


def cmd_themes(settings: AppSettings, console: Console, *, user_dir: Path | None = None) -> int:
    """Print the theme table and any skipped files. Returns 1 when a theme file failed (so a
    theme author's script notices), else 0."""
    folder = default_theme_dir() if user_dir is None else user_dir
    catalog = load_themes(folder)
    current, note = resolve_theme(catalog, settings.theme)

    table = Table(title="Themes", title_justify="left", expand=False)
    table.add_column("", width=1, no_wrap=True)
    table.add_column("Name", no_wrap=True)
    table.add_column("Mode", no_wrap=True)
    plain = console.no_color or console.color_system is None
    table.add_column("Run markers" if plain else "Run colours", no_wrap=True)
    table.add_column("Source", overflow="fold")  # wraps only on very narrow terminals
    for name, theme in catalog.themes.items():
        table.add_row(
            "*" if name == current.name else "",
            name,
            "dark" if theme.dark else "light",
            _palette(theme, console),
            _source(catalog, name),
        )
    console.print(table)
    if note:
        console.print(Text(f"Note: {note}", style="yellow"))

    if catalog.problems:
        failures = Table(title="Skipped theme files", title_justify="left", title_style="bold red")
        failures.add_column("File", overflow="fold")
        failures.add_column("Problem", overflow="fold")
        for problem in catalog.problems:
            detail = problem.reason.removeprefix(f"{problem.path.name}: ")
            failures.add_row(_origin(catalog, problem.path), detail)
        console.print(failures)

    console.print(
        Text.assemble(
            ("* ", "bold"),
            "marks the configured theme.\nShipped themes: ",
            (str(catalog.shipped_dir), "bold"),
            "\nYour themes:   ",
            (str(folder), "bold"),
            " (BNTUI_THEME_DIR overrides; copy a shipped file there and change its name)",
        )
    )
    return 1 if catalog.problems else 0


def _palette(theme: ThemeFile, console: Console) -> Text:
    if console.no_color or console.color_system is None:  # see cmd_themes
        # Blocks would all look the same: show the characters the plots use instead.
        return Text(" ".join(theme.series_markers))
    text = Text()
    for red, green, blue in theme.series_rgb:
        text.append("██", style=f"rgb({red},{green},{blue})")
    return text


def _source(catalog: ThemeCatalog, name: str) -> str:
    return _origin(catalog, catalog.sources[name]) + (", replaces the shipped one" if name in catalog.replaced else "")


def _origin(catalog: ThemeCatalog, path: Path) -> str:
    # Full folders are printed once, below the tables, to keep rows on one line.
    if catalog.shipped_dir is not None and path.parent == catalog.shipped_dir:
        return f"shipped: {path.name}"
    if catalog.user_dir is not None and path.parent == catalog.user_dir:
        return f"yours: {path.name}"
    return str(path)
