"""Typing stays honest: no bare ``Any``, no unexplained ``noqa`` or ``type: ignore`` in mnistkit/ and trainer/.

ruff's ANN401 catches ``Any`` as a parameter or return annotation; it does not see ``x: Any = ...``,
``list[Any]`` or ``Callable[..., Any]``, so this walks the syntax trees for every ``Any`` left. The
named stand-ins in ``mnistkit/_types.py`` (``TFModel``, ``JsonValue``...) say why a value is dynamic.
"""

from __future__ import annotations

import ast
import re
from pathlib import Path

from helpers.paths import ROOT

TYPES_MODULE = "mnistkit/_types.py"
MAPPINGS = {"dict", "Mapping", "MutableMapping"}  # dict[str, Any]: a JSON object, its values walked by shape


def _sources() -> dict[str, str]:
    files = {
        str(path.relative_to(ROOT)): path.read_text()
        for package in ("mnistkit", "trainer")
        for path in sorted((ROOT / package).rglob("*.py"))
    }
    assert len(files) > 50  # the walk found the packages
    return files


def _is_any(node: ast.AST) -> bool:
    return (isinstance(node, ast.Name) and node.id == "Any") or (isinstance(node, ast.Attribute) and node.attr == "Any")


def bare_any(source: str) -> list[int]:
    """Lines that use ``Any`` other than as ``dict[str, Any]`` or as the type of ``*args``/``**kwargs``."""
    tree = ast.parse(source)
    allowed: set[int] = set()  # ids of the Any nodes in an allowed shape
    for node in ast.walk(tree):
        if isinstance(node, ast.Subscript) and isinstance(node.slice, ast.Tuple) and len(node.slice.elts) == 2:
            name = node.value.attr if isinstance(node.value, ast.Attribute) else getattr(node.value, "id", "")
            key, value = node.slice.elts
            if name in MAPPINGS and isinstance(key, ast.Name) and key.id == "str" and _is_any(value):
                allowed.add(id(value))
        if isinstance(node, ast.arguments):
            for star in (node.vararg, node.kwarg):
                if star is not None and star.annotation is not None and _is_any(star.annotation):
                    allowed.add(id(star.annotation))
    return sorted({n.lineno for n in ast.walk(tree) if _is_any(n) and id(n) not in allowed})


def test_the_check_sees_bare_any() -> None:
    source = (
        "from typing import Any\n"
        "import typing\n"
        "x: Any = 1\n"  # 3
        "def f(a: dict[str, Any], *b: Any, **c: Any) -> list[Any]: ...\n"  # 4: the return only
        "y: typing.Any\n"  # 5
        "z: Mapping[str, Any]\n"
        "w: dict[int, Any]\n"  # 7
    )
    assert bare_any(source) == [3, 4, 5, 7]


def test_no_bare_any_outside_the_alias_module() -> None:
    found = {name: lines for name, source in _sources().items() if name != TYPES_MODULE and (lines := bare_any(source))}
    assert found == {}, f"use a real type or a named alias from {TYPES_MODULE} (or add one that says why)"


NOQA = re.compile(r"#\s*noqa\b(?P<rest>.*)")
NOQA_WITH_REASON = re.compile(r":\s*[A-Z]+[0-9]+(,\s*[A-Z]+[0-9]+)*\s+-\s+\S")
IGNORE = re.compile(r"#\s*type:\s*ignore(?P<rest>.*)")
IGNORE_WITH_REASON = re.compile(r"\[[a-z-]+(,\s*[a-z-]+)*\]\s+(#|-)\s*\S")


def unexplained(source: str) -> list[int]:
    """Lines whose ``noqa`` or ``type: ignore`` names no code or gives no reason after it."""
    bad = []
    for number, line in enumerate(source.splitlines(), 1):
        noqa, ignore = NOQA.search(line), IGNORE.search(line)
        if noqa and not NOQA_WITH_REASON.match(noqa["rest"]):
            bad.append(number)
        elif ignore and not IGNORE_WITH_REASON.match(ignore["rest"]):
            bad.append(number)
    return bad


def test_the_check_sees_unexplained_suppressions() -> None:
    source = (
        "a = 1  # noqa\n"
        "b = 1  # noqa: E731\n"
        "c = 1  # noqa: E731 - a reason\n"
        "d = 1  # type: ignore\n"
        "e = 1  # type: ignore[override]\n"
        "f = 1  # type: ignore[override]  # a reason\n"
        "g = 1  # noqa: F401, E402 - a reason\n"
    )
    assert unexplained(source) == [1, 2, 4, 5]


def test_every_noqa_and_type_ignore_says_why() -> None:
    found = {name: lines for name, source in _sources().items() if (lines := unexplained(source))}
    assert found == {}, "write `# noqa: CODE - why` / `# type: ignore[code]  # why`"


def test_lazy_packages_show_type_checkers_what_they_import() -> None:
    """A package's ``__getattr__`` imports ``_WHERE[name]`` on first use; its ``if TYPE_CHECKING:`` block
    imports the same names from the same modules, so ``from mnistkit.widgets import DrawingPad`` is typed."""
    checked = 0
    for name, source in _sources().items():
        tree = ast.parse(source)
        where = next(
            (
                ast.literal_eval(node.value)
                for node in tree.body
                if isinstance(node, ast.Assign) and any(getattr(t, "id", "") == "_WHERE" for t in node.targets)
            ),
            None,
        )
        if where is None:
            continue
        typed = {
            alias.asname or alias.name: node.module
            for block in tree.body
            if isinstance(block, ast.If) and getattr(block.test, "id", "") == "TYPE_CHECKING"
            for node in block.body
            if isinstance(node, ast.ImportFrom)
            for alias in node.names
        }
        assert typed == where, name
        checked += 1
    assert checked >= 3  # serving, widgets, workshop
