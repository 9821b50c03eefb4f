"""Find the anywidget front ends (``widgets/*.js`` and ``*.css``) in a source checkout or an installed wheel.

In the repository they live in the top-level ``widgets/`` folder; the wheel force-includes that folder
as ``mnistkit/_widgets`` (see pyproject.toml), so both layouts are tried.
"""

from __future__ import annotations

from pathlib import Path

from mnistkit.errors import ConfigError

__all__ = ["asset_dir", "asset"]


def asset_dir() -> Path:
    package = Path(__file__).resolve().parent.parent  # .../mnistkit
    for candidate in (package / "_widgets", package.parent / "widgets"):
        if (candidate / "drawing_pad.js").exists():
            return candidate
    raise ConfigError(
        "the widget front ends are missing: neither mnistkit/_widgets nor the checkout's widgets/ folder "
        "holds drawing_pad.js; reinstall mnistkit",
        field="widgets",
        value=str(package),
    )


def asset(name: str) -> Path:
    """``asset("drawing_pad.js")`` -> its path (anywidget reads a ``Path`` and reloads it when it changes)."""
    return asset_dir() / name
