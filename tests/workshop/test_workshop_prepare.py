"""``mnistkit workshop prepare`` and ``check``: the offline folder, its manifest, and the laptop checks."""

from __future__ import annotations

import json
import shutil
import socket
import subprocess
import sys
from collections import namedtuple
from collections.abc import Sequence
from pathlib import Path

import pytest

from mnistkit.cli import main
from mnistkit.data import FILES, read_data_dir
from mnistkit.errors import MnistkitError
from mnistkit.workshop import preflight
from mnistkit.workshop.prepare import (
    pip_download_command,
    prepare,
    requirements_for,
    verify_manifest,
)


@pytest.fixture
def notebooks(tmp_path: Path) -> Path:
    d = tmp_path / "nb-src"
    d.mkdir()
    (d / "01-workshop.ipynb").write_text(json.dumps({"cells": [], "nbformat": 4, "nbformat_minor": 5, "metadata": {}}))
    (d / "scratch.txt").write_text("not a notebook")
    return d


@pytest.fixture
def folder(tmp_path: Path, notebooks: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("MNISTKIT_T10K_DIR", str(tmp_path / "no-t10k"))
    out = tmp_path / "room"
    assert main(["workshop", "prepare", str(out), "--no-wheels", "--notebooks", str(notebooks), "--no-t10k"]) == 0
    return out


def test_prepare_without_wheels_writes_data_notebooks_readme_and_manifest(folder: Path) -> None:
    ds = read_data_dir(folder / "data" / "offline")
    assert (len(ds.y_train), len(ds.y_test)) == (4000, 1000)
    assert sorted(p.name for p in (folder / "notebooks").iterdir()) == ["01-workshop.ipynb"]
    readme = (folder / "README.txt").read_text()
    assert "mnistkit workshop check ." in readme and "notebooks/01-workshop.ipynb" in readme
    assert not (folder / "wheels").exists()
    manifest = json.loads((folder / "manifest.json").read_text())
    assert set(manifest["files"]) == {
        "README.txt", "notebooks/01-workshop.ipynb", *(f"data/offline/{f}" for f in FILES.values())
    }
    assert all(len(v["sha256"]) == 64 for v in manifest["files"].values())
    assert verify_manifest(folder).ok


def test_prepare_with_wheels_runs_pip_with_the_right_command(tmp_path: Path, notebooks: Path) -> None:
    calls: list[list[str]] = []

    def fake_pip(cmd: Sequence[str]) -> int:
        calls.append(list(cmd))
        dest = Path(cmd[cmd.index("--dest") + 1]) if "--dest" in cmd else Path(cmd[cmd.index("--wheel-dir") + 1])
        name = "numpy-2.0.0-cp311-none-any.whl" if "download" in cmd else "mnistkit-0.1.0-py3-none-any.whl"
        (dest / name).write_bytes(b"PK fake wheel")
        return 0

    report = prepare(tmp_path / "room", extras=("ml",), notebooks_dir=notebooks, include_t10k=False, runner=fake_pip,
                     platform="macosx_11_0_arm64", python_version="3.12")
    build, download = calls
    assert build[1:4] == ["-m", "pip", "wheel"] and "--no-deps" in build
    assert download[1:4] == ["-m", "pip", "download"]
    assert download[download.index("--platform") + 1] == "macosx_11_0_arm64" and "--only-binary=:all:" in download
    reqs = (tmp_path / "room" / "requirements.txt").read_text().split()
    assert any(r.startswith("tensorflow==") for r in reqs) and not any(r.startswith("jupyterlab") for r in reqs)
    assert report.wheels == ["mnistkit-0.1.0-py3-none-any.whl", "numpy-2.0.0-cp311-none-any.whl"]
    readme = (tmp_path / "room" / "README.txt").read_text()
    assert 'pip install --no-index --find-links wheels "mnistkit[ml]"' in readme
    assert "wheels/numpy-2.0.0-cp311-none-any.whl" in json.loads((tmp_path / "room" / "manifest.json").read_text())["files"]
    # A failing pip is an error that says so, not a half-made folder reported as done.
    with pytest.raises(MnistkitError, match="pip download .* failed"):
        prepare(tmp_path / "room2", include_t10k=False, notebooks_dir=notebooks, runner=lambda cmd: 1 if "download" in cmd else 0)


def test_requirements_follow_the_extras() -> None:
    core = requirements_for(())
    assert {r.split("<")[0].split(">")[0] for r in core} == {"numpy", "boto3", "pyyaml", "psutil"}
    notebook = requirements_for(("notebook",))
    assert any(r.startswith("anywidget") for r in notebook) and not any(r.startswith("tensorflow") for r in notebook)
    cmd = pip_download_command(Path("w"), Path("r.txt"))
    assert "--platform" not in cmd and "--only-binary=:all:" not in cmd


def test_prepare_copies_the_official_test_set_when_found(tmp_path: Path, t10k_dir: Path) -> None:
    report = prepare(tmp_path / "room", wheels=False, include_t10k=True, notebooks_dir=tmp_path / "none")
    assert "data/t10k" in report.data
    for key in ("test_images", "test_labels"):
        assert (tmp_path / "room" / "data" / "t10k" / FILES[key]).read_bytes() == (t10k_dir / FILES[key]).read_bytes()


@pytest.mark.slow
def test_prepare_downloads_a_tiny_wheel_from_pypi(tmp_path: Path) -> None:
    """The one test that needs the internet (PyPI): a real pip download of one small pure-Python package."""
    try:
        socket.create_connection(("pypi.org", 443), timeout=5).close()
    except OSError:
        pytest.skip("PyPI is not reachable from here")
    req = tmp_path / "req.txt"
    req.write_text("six==1.16.0\n")
    report = prepare(tmp_path / "room", requirements=req, include_t10k=False, notebooks_dir=tmp_path / "none")
    assert report.wheels == ["six-1.16.0-py2.py3-none-any.whl"]
    assert verify_manifest(tmp_path / "room").ok
    # The room's offline install works from that folder alone.
    target = tmp_path / "site"
    rc = subprocess.call([sys.executable, "-m", "pip", "install", "--no-index", "--find-links",
                          str(tmp_path / "room" / "wheels"), "--target", str(target), "six==1.16.0", "-q"])
    assert rc == 0 and (target / "six.py").exists()


# ---------------------------------------------------------------------------------------------- check


def _lines(out: str) -> dict[str, str]:
    return {line[8:30].strip(): line for line in out.splitlines() if line[:8].strip() in ("OK", "MISSING", "WARN")}


def test_check_reports_every_item_and_verifies_the_folder(folder: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["workshop", "check", str(folder), "--quick", "--min-free-gb", "0.001"]) == 0
    lines = _lines(capsys.readouterr().out)
    assert {"python", "disk", "port 8500", "port 8501", "port 6006", "jupyter kernel", "widgets", "workshop folder",
            "tensorflow"} <= set(lines)
    assert lines["python"].startswith("OK") and lines["workshop folder"].startswith("OK")
    assert lines["widgets"].startswith("OK") and "frontend extensions present" in lines["widgets"]
    assert lines["tensorflow"].startswith("WARN") and "--quick" in lines["tensorflow"]

    # A damaged folder: one data file changed, one notebook gone -> MISSING, exit 1, and the fix.
    (folder / "data" / "offline" / FILES["test_labels"]).write_bytes(b"corrupt")
    (folder / "notebooks" / "01-workshop.ipynb").unlink()
    assert main(["workshop", "check", str(folder), "--quick", "--min-free-gb", "0.001"]) == 1
    out = capsys.readouterr().out
    line = _lines(out)["workshop folder"]
    assert line.startswith("MISSING") and "1 missing (notebooks/01-workshop.ipynb)" in line
    assert f"1 changed (data/offline/{FILES['test_labels']})" in line and "fix:" in line
    assert "essential check(s) failed: workshop folder" in out


def test_check_without_a_folder_warns_and_a_stray_folder_fails(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    assert preflight.check_folder(None).status == "WARN"
    assert preflight.check_folder(tmp_path).status == "MISSING"
    (tmp_path / "manifest.json").write_text("{broken")
    assert "unreadable" in preflight.check_folder(None).detail


def test_python_disk_and_port_checks() -> None:
    assert preflight.check_python((3, 12, 1)).status == "OK"
    old = preflight.check_python((3, 9, 18))
    assert old.status == "MISSING" and "3.10 to 3.13" in old.detail and "3.12" in old.fix
    assert preflight.check_python((3, 14, 0)).status == "MISSING"
    assert preflight.check_disk(".", min_free_gb=1e9).status == "MISSING"
    with socket.socket() as server:
        server.bind(("127.0.0.1", 0))
        server.listen()
        port = server.getsockname()[1]
        busy = preflight.check_port(port, "test")
        assert busy.status == "WARN" and "busy" in busy.detail and str(port) in busy.fix
    assert preflight.check_port(port).status == "OK"


def test_low_disk_is_essential(monkeypatch: pytest.MonkeyPatch, folder: Path, capsys: pytest.CaptureFixture[str]) -> None:
    usage = namedtuple("usage", "total used free")
    monkeypatch.setattr(shutil, "disk_usage", lambda _p: usage(10**10, 10**10 - 10**9, 10**9))
    assert main(["workshop", "check", str(folder), "--quick"]) == 1
    line = _lines(capsys.readouterr().out)["disk"]
    assert line.startswith("MISSING") and "only 1.0 GB free" in line and "need 4 GB" in line


def test_missing_widgets_and_kernel_are_reported_with_fixes(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setattr(preflight, "_jupyter_paths", lambda sub: [tmp_path / sub])
    frontend = preflight.check_widgets()
    assert frontend.status == "MISSING" and "browser side" in frontend.detail and "--force-reinstall" in frontend.fix
    import importlib.metadata as md

    real = md.version
    monkeypatch.setattr(preflight.md, "version",
                        lambda d: (_ for _ in ()).throw(md.PackageNotFoundError(d)) if d == "anywidget" else real(d))
    assert "anywidget not installed" in preflight.check_widgets().detail

    from jupyter_client.kernelspec import KernelSpecManager

    monkeypatch.setattr(KernelSpecManager, "find_kernel_specs", lambda self: {})
    real_find = preflight.importlib.util.find_spec
    monkeypatch.setattr(preflight.importlib.util, "find_spec", lambda n, *a: None if n == "ipykernel" else real_find(n, *a))
    kernel = preflight.check_kernel()
    assert kernel.status == "MISSING" and "ipykernel install" in kernel.fix


def test_tensorflow_check_runs_in_a_child_process() -> None:
    assert preflight.check_tensorflow("json").status == "OK"
    missing = preflight.check_tensorflow("no_such_module_xyz")
    assert missing.status == "MISSING" and "No module named" in missing.detail and "--no-index" in missing.fix
    crash = preflight.check_tensorflow("os; os._exit(3)  #")
    assert crash.status == "MISSING" and "does not start" in crash.fix
