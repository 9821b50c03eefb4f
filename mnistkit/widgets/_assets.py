"""The anywidget front ends (``static/*.js`` and ``*.css``), package data beside the views that load them."""

from __future__ import annotations

from pathlib import Path

__all__ = ["STATIC", "asset"]

STATIC = Path(__file__).resolve().parent / "static"


def asset(name: str) -> Path:
    """``asset("drawing_pad.js")`` -> its path (anywidget reads a ``Path`` and reloads it when it changes)."""
    return STATIC / name
