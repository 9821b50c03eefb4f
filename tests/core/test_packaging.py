"""The install files agree: environment.yml pins exactly what pyproject.toml's [all] extra pins."""

from __future__ import annotations

import tomllib
from pathlib import Path

import yaml
from helpers.paths import ROOT



def test_environment_yml_has_the_same_pins_as_pyproject() -> None:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    extras = project["optional-dependencies"]
    all_extras = extras["all"][0].split("[")[1].rstrip("]").split(",")
    wanted = list(project["dependencies"]) + [req for name in all_extras for req in extras[name]]
    env = yaml.safe_load((ROOT / "environment.yml").read_text())
    pip = next(d["pip"] for d in env["dependencies"] if isinstance(d, dict) and "pip" in d)
    listed = [p for p in pip if not p.startswith("-e")]
    assert len(listed) == len(set(listed)), "a requirement listed twice in environment.yml"
    assert set(listed) == set(wanted), set(listed) ^ set(wanted)  # extras may share a requirement
    assert "-e ." in pip
    # and conda's Python is one pyproject admits
    version = next(str(d) for d in env["dependencies"] if str(d).startswith("python=")).split("=", 1)[1]
    low, high = (s.strip().lstrip(">=<") for s in project["requires-python"].split(","))
    assert _v(low) <= _v(version) < _v(high), (version, project["requires-python"])


def _v(text: str) -> tuple[int, ...]:
    return tuple(int(x) for x in text.split("."))


def test_tests_live_in_area_folders_and_helpers_hold_no_tests() -> None:
    """A newcomer finds a feature's tests by folder: none at tests/ root, none hidden among the helpers."""
    tests = ROOT / "tests"
    assert sorted(p.name for p in tests.glob("test_*.py")) == []
    assert sorted(p.name for p in (tests / "helpers").glob("test_*.py")) == []
    areas = {p.parent.name for p in tests.glob("*/test_*.py")}
    assert areas == {
        "bench", "cluster", "core", "manifests", "notebooks", "rehearsal", "s3", "serving", "trainer", "widgets",
        "workshop",
    }
    documented = (tests / "README.md").read_text()
    assert all(f"`{area}/`" in documented for area in areas)
