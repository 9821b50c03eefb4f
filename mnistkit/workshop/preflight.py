"""``mnistkit workshop check``: on each laptop, say in plain words what is fine and what is missing.

One line per check: ``OK``, ``MISSING`` (an essential thing is absent or broken: the command exits 1)
or ``WARN`` (worth knowing, not blocking: a busy port, a skipped check), then what was found and, when
something is wrong, how to fix it. Everything runs without the network and, with ``quick``, without
importing TensorFlow (which alone takes several seconds on a laptop).
"""

from __future__ import annotations

import errno
import importlib.metadata as md
import importlib.util
import os
import shutil
import socket
import subprocess
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

__all__ = [
    "Check",
    "run_checks",
    "format_checks",
    "check_python",
    "check_disk",
    "check_port",
    "check_kernel",
    "check_widgets",
    "check_folder",
    "check_tensorflow",
    "PORTS",
    "MIN_FREE_GB",
]

PORTS = {8500: "model server gRPC", 8501: "model server REST", 6006: "TensorBoard"}
MIN_FREE_GB = 4.0
SUPPORTED_PYTHON = ((3, 10), (3, 13))


@dataclass(frozen=True)
class Check:
    name: str
    status: str  # "OK", "MISSING" or "WARN"
    detail: str
    fix: str = ""

    @property
    def essential_failure(self) -> bool:
        return self.status == "MISSING"

    def line(self) -> str:
        fix = f"  -> fix: {self.fix}" if self.fix and self.status != "OK" else ""
        return f"{self.status:<8}{self.name:<22}{self.detail}{fix}"


def check_python(version: Sequence[int] | None = None) -> Check:
    v = tuple((version or sys.version_info)[:3])
    text = ".".join(str(p) for p in v)
    lo, hi = SUPPORTED_PYTHON
    if lo <= v[:2] <= hi:
        return Check("python", "OK", f"Python {text}")
    return Check(
        "python",
        "MISSING",
        f"Python {text} is not supported (3.10 to 3.13)",
        "install Python 3.12 (python.org or `uv python install 3.12`) and make the venv with it",
    )


def check_disk(path: str | os.PathLike[str] = ".", min_free_gb: float = MIN_FREE_GB) -> Check:
    target = Path(path)
    while not target.exists() and target != target.parent:
        target = target.parent
    free = shutil.disk_usage(target).free / 1e9
    if free >= min_free_gb:
        return Check("disk", "OK", f"{free:.1f} GB free in {target}")
    return Check(
        "disk",
        "MISSING",
        f"only {free:.1f} GB free in {target}, need {min_free_gb:g} GB",
        "delete big files (old downloads, Docker images) or use a folder on another disk",
    )


def check_port(port: int, purpose: str = "", host: str = "127.0.0.1") -> Check:
    name = f"port {port}"
    what = f" ({purpose})" if purpose else ""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.settimeout(0.5)
        # Something answering is busy, whatever address it bound (macOS lets 127.0.0.1 bind beside 0.0.0.0).
        if probe.connect_ex((host, port)) == 0:
            return Check(
                name,
                "WARN",
                f"busy{what}: another program listens there",
                f"stop it (`lsof -i :{port}`), or pick another port (e.g. mnistkit serve --port {port + 1000})",
            )
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        try:
            s.bind((host, port))
        except OSError as exc:
            if exc.errno in (errno.EADDRINUSE, getattr(errno, "WSAEADDRINUSE", -1)):
                return Check(
                    name,
                    "WARN",
                    f"busy{what}: another program listens there",
                    f"stop it (`lsof -i :{port}`), or pick another port (e.g. mnistkit serve --port {port + 1000})",
                )
            return Check(name, "WARN", f"cannot be opened{what}: {exc.strerror}", "ask a helper")
    return Check(name, "OK", f"free{what}")


def _jupyter_paths(sub: str) -> list[Path]:
    try:
        from jupyter_core.paths import jupyter_path

        return [Path(p) for p in jupyter_path(sub)]
    except ImportError:
        return [Path(sys.prefix) / "share" / "jupyter" / sub]


def check_kernel() -> Check:
    try:
        from jupyter_client.kernelspec import KernelSpecManager

        specs = KernelSpecManager().find_kernel_specs()
    except ImportError:
        specs = {
            p.name: str(p)
            for d in _jupyter_paths("kernels")
            if d.is_dir()
            for p in d.iterdir()
            if (p / "kernel.json").exists()
        }
    if importlib.util.find_spec("ipykernel") is not None:
        specs.setdefault("python3", "(ipykernel, built in)")
    if specs:
        return Check("jupyter kernel", "OK", f"{', '.join(sorted(specs))}")
    return Check(
        "jupyter kernel",
        "MISSING",
        "no Jupyter kernel is installed",
        "python -m pip install ipykernel && python -m ipykernel install --user --name mnistkit",
    )


def check_widgets() -> Check:
    """The Python packages and their JupyterLab frontend extensions (without the latter, widgets render as text)."""
    missing_pkgs = []
    versions = []
    for dist in ("ipywidgets", "anywidget"):
        try:
            versions.append(f"{dist} {md.version(dist)}")
        except md.PackageNotFoundError:
            missing_pkgs.append(dist)
    if missing_pkgs:
        return Check(
            "widgets",
            "MISSING",
            f"{' and '.join(missing_pkgs)} not installed",
            'python -m pip install "mnistkit[notebook]" (from the wheels folder: add --no-index --find-links wheels)',
        )
    wanted = {"@jupyter-widgets/jupyterlab-manager": "ipywidgets", "anywidget": "anywidget"}
    dirs = _jupyter_paths("labextensions")
    absent = [ext for ext in wanted if not any((d / ext / "package.json").exists() for d in dirs)]
    if absent:
        return Check(
            "widgets",
            "MISSING",
            f"{', '.join(versions)} installed, but the browser side ({', '.join(absent)}) is not",
            "reinstall in the same environment as JupyterLab: "
            f"python -m pip install --force-reinstall {' '.join(wanted[a] for a in absent)}; restart jupyter lab",
        )
    return Check("widgets", "OK", f"{', '.join(versions)}, frontend extensions present")


def check_folder(directory: str | os.PathLike[str] | None) -> Check:
    from mnistkit.workshop.prepare import MANIFEST, verify_manifest

    if directory is None:
        here = Path.cwd()
        if not (here / MANIFEST).exists():
            return Check(
                "workshop folder",
                "WARN",
                "not checked (no folder given, none here)",
                "run `mnistkit workshop check <the workshop folder>`",
            )
        directory = here
    result = verify_manifest(directory)
    if result.ok:
        return Check("workshop folder", "OK", f"{directory}: {result}")
    return Check(
        "workshop folder",
        "MISSING",
        f"{directory}: {result}",
        "copy the folder again from the USB stick or the instructor's share",
    )


def check_tensorflow(module: str = "tensorflow", timeout: float = 120.0) -> Check:
    """Import TensorFlow in a child process (a crash such as a missing AVX instruction can't kill us)."""
    code = f"import {module} as m; print(getattr(m, '__version__', 'ok'))"
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"}
    try:
        proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=timeout, env=env)
    except subprocess.TimeoutExpired:
        return Check(
            "tensorflow",
            "MISSING",
            f"importing {module} took over {timeout:.0f} s",
            "close other programs and try again; ask a helper if it persists",
        )
    if proc.returncode == 0:
        return Check(
            "tensorflow",
            "OK",
            f"{module} {proc.stdout.strip().splitlines()[-1] if proc.stdout.strip() else ''}".strip(),
        )
    last = (proc.stderr.strip().splitlines() or [f"exit {proc.returncode}"])[-1]
    fix = (
        'python -m pip install --no-index --find-links wheels "mnistkit[ml]"'
        if "No module named" in last
        else "ask a helper: TensorFlow is installed but does not start on this machine (the cluster still works)"
    )
    return Check("tensorflow", "MISSING", f"{module} does not import: {last[:160]}", fix)


def run_checks(
    directory: str | os.PathLike[str] | None = None,
    *,
    quick: bool = False,
    min_free_gb: float = MIN_FREE_GB,
    ports: dict[int, str] | None = None,
) -> list[Check]:
    checks = [check_python(), check_disk(directory or Path.home(), min_free_gb)]
    checks += [check_port(port, purpose) for port, purpose in (PORTS if ports is None else ports).items()]
    checks += [check_kernel(), check_widgets(), check_folder(directory)]
    if quick:
        checks.append(Check("tensorflow", "WARN", "not checked (--quick)", "run again without --quick"))
    else:
        checks.append(check_tensorflow())
    return checks


def format_checks(checks: Sequence[Check]) -> str:
    bad = [c for c in checks if c.essential_failure]
    lines = [c.line() for c in checks]
    lines.append(
        "All essential checks passed: you are ready."
        if not bad
        else f"{len(bad)} essential check(s) failed: {', '.join(c.name for c in bad)}. Fix them, then run this again."
    )
    return "\n".join(lines)
