"""Model versions: which ``<base>/<version>/`` folders hold a complete SavedModel, and the latest one.

The one owner of TF Serving's version layout for mnistkit (trainer, publish, serving, panels, workshop):
a version is a folder named by ASCII digits only (``'²'.isdigit()`` is true and ``int('²')`` raises;
``.staging`` and ``.tmp-*`` folders of a publish in progress never match) that holds ``saved_model.pb``,
which a publish writes last.
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterable
from pathlib import Path

__all__ = ["MARKER_FILE", "is_version_name", "local_versions", "latest_local", "versions_from_keys", "resolve_export"]

MARKER_FILE = "saved_model.pb"
_VERSION_RE = re.compile(r"[0-9]{1,18}", re.ASCII)


def is_version_name(name: str) -> bool:
    """``"12"`` yes; ``"²"``, ``"-1"``, ``"1.0"``, ``".staging"`` no."""
    return _VERSION_RE.fullmatch(name) is not None


def local_versions(base: str | os.PathLike[str], *, complete: bool = True) -> list[int]:
    """Version numbers under a local ``base``, ascending; with ``complete``, only those holding the marker."""
    try:
        entries = list(os.scandir(base))
    except (FileNotFoundError, NotADirectoryError):
        return []
    return sorted(
        int(e.name)
        for e in entries
        if is_version_name(e.name)
        and e.is_dir()
        and (not complete or os.path.isfile(os.path.join(e.path, MARKER_FILE)))
    )


def latest_local(base: str | os.PathLike[str]) -> int | None:
    """The highest complete version under ``base``, or None."""
    versions = local_versions(base)
    return versions[-1] if versions else None


def versions_from_keys(keys: Iterable[str], base_prefix: str) -> list[int]:
    """Complete versions among object keys under ``base_prefix`` (``<base>/<version>/saved_model.pb``)."""
    base = base_prefix.strip("/") + "/" if base_prefix.strip("/") else ""
    found = set()
    for key in keys:
        if not key.startswith(base):
            continue
        parts = key[len(base) :].split("/")
        if len(parts) == 2 and is_version_name(parts[0]) and parts[1] == MARKER_FILE:
            found.add(int(parts[0]))
    return sorted(found)


def resolve_export(path: str | os.PathLike[str]) -> tuple[Path, int] | None:
    """A SavedModel folder itself (version 0) or a base path's latest complete version; None if neither."""
    p = Path(path)
    if (p / MARKER_FILE).is_file():
        return p, 0
    latest = latest_local(p)
    return (p / str(latest), latest) if latest is not None else None
