"""The code stays findable: no module in mnistkit/ or trainer/ grows past ~400 lines (one concept per module)."""

from __future__ import annotations

from helpers.paths import ROOT

MAX_LINES = 420  # "about 400": the margin lets a module take a small fix before it must be split


def test_no_module_is_over_420_lines() -> None:
    sizes = {
        str(path.relative_to(ROOT)): len(path.read_text().splitlines())
        for package in ("mnistkit", "trainer")
        for path in (ROOT / package).rglob("*.py")
    }
    assert len(sizes) > 50  # the walk found the packages
    too_long = {name: n for name, n in sizes.items() if n > MAX_LINES}
    assert too_long == {}, "split these by concept (one concept per module)"
