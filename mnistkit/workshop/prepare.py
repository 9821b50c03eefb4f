"""``mnistkit workshop prepare DIR``: one folder with everything a room needs when the Wi-Fi gives up.

Layout::

    DIR/
      README.txt             the install and start commands, for the room
      manifest.json          sha256 and size of every other file (``mnistkit workshop check DIR`` verifies)
      wheels/                mnistkit's wheel and all its dependencies (``pip download``)
      data/offline/          the offline sample as IDX gz (4,000 train / 1,000 test digits)
      data/t10k/             MNIST's official test set, when this machine has it
      notebooks/*.ipynb      the workshop notebooks

The wheels are for the platform pip runs on unless ``platform``/``python_version`` say otherwise (run
``prepare`` once per laptop platform into the same folder; pip skips what is there).
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
import subprocess
import sys
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path

from mnistkit.errors import ConfigError, MnistkitError

__all__ = [
    "PrepareReport",
    "prepare",
    "requirements_for",
    "pip_download_command",
    "write_manifest",
    "verify_manifest",
    "sha256_file",
    "DEFAULT_EXTRAS",
    "MANIFEST",
]

DEFAULT_EXTRAS = ("ml", "notebook")
MANIFEST = "manifest.json"
Runner = Callable[[Sequence[str]], int]


def sha256_file(path: Path) -> str:
    h = hashlib.sha256()
    with path.open("rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def requirements_for(extras: Sequence[str] = DEFAULT_EXTRAS) -> list[str]:
    """mnistkit's dependencies for ``extras``, from the installed package's metadata (no pyproject parsing)."""
    import importlib.metadata as md

    try:
        raw = md.requires("mnistkit") or []
    except md.PackageNotFoundError:
        raise ConfigError(
            "mnistkit is not installed (pip install -e .), so its dependencies are unknown", field="mnistkit"
        ) from None
    wanted = set(extras)
    out: list[str] = []
    for text in raw:
        spec, _, marker = text.partition(";")
        spec = spec.strip()
        if re.match(r"^mnistkit\b", spec):
            continue
        if marker.strip():
            try:
                from packaging.markers import Marker

                keep = any(Marker(marker).evaluate({"extra": e}) for e in wanted)
            except ImportError:  # packaging is nearly always there; if not, read the extra by hand
                found = re.search(r"extra\s*==\s*['\"]([^'\"]+)['\"]", marker)
                keep = found is not None and found.group(1) in wanted
            if not keep:
                continue
        if spec not in out:
            out.append(spec)
    return out


def pip_download_command(
    dest: Path,
    requirements: Path,
    *,
    platform: str | None = None,
    python_version: str | None = None,
    python: str | None = None,
) -> list[str]:
    """``pip download`` into ``dest``; for another platform pip needs ``--only-binary=:all:``."""
    cmd = [
        python or sys.executable,
        "-m",
        "pip",
        "download",
        "--dest",
        str(dest),
        "-r",
        str(requirements),
        "--disable-pip-version-check",
    ]
    if platform or python_version:
        cmd += ["--only-binary=:all:"]
        if platform:
            cmd += ["--platform", platform]
        if python_version:
            cmd += ["--python-version", python_version]
    return cmd


def _source_root() -> Path | None:
    root = Path(__file__).resolve().parent.parent.parent
    return root if (root / "pyproject.toml").exists() and (root / "mnistkit").is_dir() else None


def _run(cmd: Sequence[str]) -> int:
    return subprocess.call(list(cmd))


def write_manifest(directory: Path, extra: dict[str, object] | None = None) -> Path:
    """``manifest.json``: sha256 and size of every file under ``directory`` (but itself)."""
    files = {}
    for path in sorted(p for p in directory.rglob("*") if p.is_file()):
        rel = path.relative_to(directory).as_posix()
        if rel == MANIFEST or rel.endswith(".part"):
            continue
        files[rel] = {"sha256": sha256_file(path), "size": path.stat().st_size}
    from mnistkit import __version__

    doc = {
        "format": 1,
        "mnistkit": __version__,
        "created": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        **(extra or {}),
        "files": files,
    }
    target = directory / MANIFEST
    tmp = directory / f".{MANIFEST}.part"
    tmp.write_text(json.dumps(doc, indent=1, sort_keys=True))
    os.replace(tmp, target)
    return target


@dataclass(frozen=True)
class Verification:
    ok: bool
    checked: int
    missing: tuple[str, ...] = ()
    changed: tuple[str, ...] = ()
    problem: str = ""

    def __str__(self) -> str:
        if self.problem:
            return self.problem
        if self.ok:
            return f"all {self.checked} files intact"
        parts = []
        if self.missing:
            parts.append(
                f"{len(self.missing)} missing ({', '.join(self.missing[:3])}{'...' if len(self.missing) > 3 else ''})"
            )
        if self.changed:
            parts.append(
                f"{len(self.changed)} changed ({', '.join(self.changed[:3])}{'...' if len(self.changed) > 3 else ''})"
            )
        return "; ".join(parts)


def verify_manifest(directory: str | os.PathLike[str]) -> Verification:
    """Compare every file listed in ``manifest.json`` with its sha256 (extra files are fine)."""
    d = Path(directory)
    try:
        doc = json.loads((d / MANIFEST).read_text())
        files = doc["files"]
    except FileNotFoundError:
        return Verification(
            False, 0, problem=f"{d} has no {MANIFEST}: is it a folder from `mnistkit workshop prepare`?"
        )
    except (ValueError, KeyError, TypeError) as exc:
        return Verification(False, 0, problem=f"{d / MANIFEST} is unreadable ({exc})")
    missing, changed = [], []
    for rel, info in sorted(files.items()):
        path = d / rel
        if not path.is_file():
            missing.append(rel)
        elif path.stat().st_size != info.get("size") or sha256_file(path) != info.get("sha256"):
            changed.append(rel)
    return Verification(not missing and not changed, len(files), tuple(missing), tuple(changed))


@dataclass
class PrepareReport:
    directory: Path
    wheels: list[str] = field(default_factory=list)
    data: list[str] = field(default_factory=list)
    notebooks: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)

    def __str__(self) -> str:
        lines = [f"prepared {self.directory}"]
        lines.append(f"  wheels:    {len(self.wheels)} files" if self.wheels else "  wheels:    none (--no-wheels)")
        lines.append(f"  data:      {', '.join(self.data)}")
        lines.append(f"  notebooks: {', '.join(self.notebooks) or 'none found'}")
        lines += [f"  note: {n}" for n in self.notes]
        lines.append(f"  check a laptop with: mnistkit workshop check {self.directory}")
        return "\n".join(lines)


def _readme(extras: Sequence[str], has_wheels: bool, notebooks: list[str], has_t10k: bool) -> str:
    spec = f"mnistkit[{','.join(extras)}]" if extras else "mnistkit"
    install = (
        f'  python -m pip install --no-index --find-links wheels "{spec}"'
        if has_wheels
        else f'  python -m pip install "{spec}"      (this folder was made without wheels)'
    )
    nb = "\n".join(f"  notebooks/{n}" for n in notebooks) or "  (the notebooks are handed out separately)"
    t10k_note = ", plus the official test set in data/t10k/" if has_t10k else ""
    return f"""MNIST workshop: everything you need, offline
=============================================

1. Make a fresh environment (Python 3.10 to 3.13), in this folder:

  python -m venv .venv
  source .venv/bin/activate          (Windows: .venv\\Scripts\\activate)

2. Install from the wheels here, without the internet:

{install}

3. Check your laptop (says what is missing and how to fix it):

  mnistkit workshop check .

4. Start Jupyter and open the workshop notebook:

  jupyter lab
{nb}

The data is in data/offline/ (4,000 training and 1,000 test digits{t10k_note}).
Train on it with --tf-data-dir=data/offline, or upload it to the room's bucket with
  mnistkit data upload --source data/offline

If something is red in step 3, raise your hand: the hint next to it usually fixes it.
"""


def prepare(
    directory: str | os.PathLike[str],
    *,
    wheels: bool = True,
    extras: Sequence[str] = DEFAULT_EXTRAS,
    requirements: str | os.PathLike[str] | None = None,
    platform: str | None = None,
    python_version: str | None = None,
    include_t10k: bool = True,
    notebooks_dir: str | os.PathLike[str] | None = None,
    runner: Runner = _run,
) -> PrepareReport:
    """Fill ``directory`` (created if needed; existing files are kept and overwritten where made again).

    ``requirements``: a requirements file to download instead of mnistkit's dependencies (and then
    mnistkit's own wheel is not built). ``runner`` runs pip (tests pass a fake).
    """
    from mnistkit import data

    d = Path(directory)
    for bad in extras:
        if not re.match(r"^[a-z0-9-]+$", bad):
            raise ConfigError(f"extra {bad!r} is not an extra name", field="extras", value=bad)
    d.mkdir(parents=True, exist_ok=True)
    report = PrepareReport(d)

    if wheels:
        wheel_dir = d / "wheels"
        wheel_dir.mkdir(exist_ok=True)
        if requirements is None:
            req_file = d / "requirements.txt"
            req_file.write_text("\n".join(requirements_for(extras)) + "\n")
            root = _source_root()
            if root is not None:
                rc = runner(
                    [
                        sys.executable,
                        "-m",
                        "pip",
                        "wheel",
                        "--no-deps",
                        "--wheel-dir",
                        str(wheel_dir),
                        "--disable-pip-version-check",
                        str(root),
                    ]
                )
                if rc != 0:
                    raise MnistkitError(
                        f"building mnistkit's wheel from {root} failed (pip exit {rc})", field="wheels", value=str(root)
                    )
            else:
                report.notes.append(
                    "mnistkit was not installed from a source checkout: its own wheel is not in wheels/ (copy it there)"
                )
        else:
            req_file = Path(requirements)
            if not req_file.is_file():
                raise ConfigError(
                    f"requirements file {req_file} does not exist", field="requirements", value=str(req_file)
                )
        rc = runner(pip_download_command(wheel_dir, req_file, platform=platform, python_version=python_version))
        if rc != 0:
            raise MnistkitError(
                f"pip download into {wheel_dir} failed (exit {rc}); see pip's output above",
                field="wheels",
                value=str(wheel_dir),
            )
        report.wheels = sorted(p.name for p in wheel_dir.iterdir() if p.is_file())

    from mnistkit.workshop.digits import offline_dataset

    data.write_data_dir(offline_dataset(), d / "data" / "offline")
    report.data.append("data/offline")
    official = data.find_official_test_set() if include_t10k else None
    if official is not None:
        target = d / "data" / "t10k"
        target.mkdir(parents=True, exist_ok=True)
        for key in ("test_images", "test_labels"):
            shutil.copyfile(official / data.FILES[key], target / data.FILES[key])
        report.data.append("data/t10k")
    elif include_t10k:
        report.notes.append("the official MNIST test set was not found (MNISTKIT_T10K_DIR): only the offline sample")

    src = Path(notebooks_dir) if notebooks_dir else (_source_root() or Path.cwd()) / "notebooks"
    if src.is_dir():
        (d / "notebooks").mkdir(exist_ok=True)
        for nb in sorted(src.glob("*.ipynb")):
            shutil.copyfile(nb, d / "notebooks" / nb.name)
            report.notebooks.append(nb.name)

    (d / "README.txt").write_text(_readme(extras, wheels, report.notebooks, official is not None))
    write_manifest(d, {"extras": list(extras), "platform": platform or "", "python_version": python_version or ""})
    return report
