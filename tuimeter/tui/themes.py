"""Themes as user-editable TOML files (themes/ in the checkout, or any file given with --theme)."""

from __future__ import annotations

import tomllib
from pathlib import Path
from typing import Any

from textual.color import Color, ColorParseError
from textual.theme import Theme

THEMES_DIR = Path(__file__).resolve().parents[1] / "themes"  # a link to the repo's themes/
DEFAULT_THEME = "tuimeter-dark"
_COLOR_KEYS = ("primary", "secondary", "accent", "warning", "error", "success", "foreground", "background",
               "surface", "panel", "boost")
# variables the stylesheet uses; a theme file may leave them out
DEFAULT_VARIABLES = {"relay-on": "#52B788", "relay-off": "#8D99AE", "stale": "#5C6773"}


class ThemeError(ValueError):
    """A theme file that cannot be used; the message names the file and the problem."""


def load_theme_file(path: Path) -> Theme:
    try:
        doc = tomllib.loads(path.read_text(encoding="utf-8"))
    except OSError as exc:
        raise ThemeError(f"cannot read theme {path}: {exc.strerror}") from None
    except tomllib.TOMLDecodeError as exc:
        raise ThemeError(f"theme {path} is not valid TOML ({exc})") from None
    name, primary = doc.get("name"), doc.get("primary")
    if not isinstance(name, str) or not isinstance(primary, str):
        raise ThemeError(f"theme {path} needs at least 'name' and 'primary'")
    unknown = set(doc) - {"name", "dark", "variables", *_COLOR_KEYS}
    if unknown:
        raise ThemeError(f"theme {path}: unknown key(s) {', '.join(sorted(unknown))}")
    variables = doc.get("variables", {})
    if not isinstance(variables, dict):
        raise ThemeError(f"theme {path}: [variables] must be a table")
    colors: dict[str, Any] = {k: str(doc[k]) for k in _COLOR_KEYS if k in doc}
    for key, value in variables.items():
        try:
            Color.parse(str(value))
        except ColorParseError:
            raise ThemeError(f"theme {path}: variable {key} = {value!r} is not a colour") from None
    theme = Theme(
        name=name,
        dark=bool(doc.get("dark", True)),
        variables={**DEFAULT_VARIABLES, **{str(k): str(v) for k, v in variables.items()}},
        **colors,
    )
    try:
        theme.to_color_system()  # parses every colour now, not at the first repaint
    except Exception as exc:  # Textual raises several error types for bad colours
        raise ThemeError(f"theme {path}: {exc}") from None
    return theme


def shipped_themes() -> tuple[list[Theme], list[str]]:
    """The themes in themes/, and a message for each file that could not be loaded."""
    themes, problems = [], []
    for path in sorted(THEMES_DIR.glob("*.toml")) if THEMES_DIR.is_dir() else []:
        try:
            themes.append(load_theme_file(path))
        except ThemeError as exc:
            problems.append(str(exc))
    return themes, problems
