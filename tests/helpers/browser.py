"""Helpers for the browser tests: a JupyterLab server started for the test, headless Chromium via
playwright, and the strokes of a hand-drawn 7 (shared with the non-browser preprocessing test, so
what the browser draws has been checked without a browser first).
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import numpy as np
from helpers.paths import ROOT as REPO

__all__ = [
    "CANVAS_SIZE",
    "SEVEN_STROKES",
    "STROKE_WIDTH",
    "CHROMIUM",
    "CHROMIUM_ARGS",
    "render_strokes",
    "write_notebook",
    "jupyter_lab",
    "chromium_page",
    "run_all_cells",
    "KNOWN_CONSOLE_NOISE",
    "unexpected_errors",
]

CANVAS_SIZE = 280  # the drawing pad's canvas (CSS and bitmap pixels)
STROKE_WIDTH = 18  # the pad's pen width in canvas pixels
# A 7 the way people draw it: a thick bar along the top, then a diagonal down to the left.
SEVEN_STROKES: list[list[tuple[int, int]]] = [
    [(70, 60), (210, 60)],
    [(210, 60), (120, 230)],
]
CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]
# Console errors that have nothing to do with mnistkit's widgets, matched as substrings. Each entry says why.
KNOWN_CONSOLE_NOISE: dict[str, str] = {
    # JupyterLab asks the (offline) announcements/news endpoint and for a favicon; neither concerns widgets.
    "favicon.ico": "no favicon is served at the server root",
    "lab/api/news": "JupyterLab's news feed is unreachable offline",
    "api/translations": "no language packs installed",
}


def render_strokes(
    strokes: Sequence[Sequence[tuple[int, int]]], size: int = CANVAS_SIZE, width: int = STROKE_WIDTH
) -> np.ndarray:
    """What the pad's canvas holds after drawing ``strokes``: RGBA, black round-capped ink on white."""
    from PIL import Image, ImageDraw

    img = Image.new("RGBA", (size, size), (255, 255, 255, 255))
    draw = ImageDraw.Draw(img)
    for stroke in strokes:
        draw.line(list(stroke), fill=(0, 0, 0, 255), width=width, joint="curve")
        for x, y in (stroke[0], stroke[-1]):  # round caps, as the canvas' lineCap = "round"
            r = width / 2
            draw.ellipse((x - r, y - r, x + r, y + r), fill=(0, 0, 0, 255))
    return np.asarray(img)


def write_notebook(path: Path, cells: Sequence[str]) -> Path:
    """A minimal nbformat-4 notebook with the given code cells and a python3 kernel."""
    nb = {
        "cells": [
            {"cell_type": "code", "execution_count": None, "id": f"c{i}", "metadata": {}, "outputs": [], "source": src}
            for i, src in enumerate(cells)
        ],
        "metadata": {
            "kernelspec": {"display_name": "Python 3", "language": "python", "name": "python3"},
            "language_info": {"name": "python"},
        },
        "nbformat": 4,
        "nbformat_minor": 5,
    }
    path.write_text(json.dumps(nb, indent=1))
    return path


def _free_port() -> int:
    from mnistkit.embedded_s3 import free_port

    return free_port()


@contextlib.contextmanager
def jupyter_lab(root_dir: Path, workspaces_dir: Path, env: dict[str, str] | None = None) -> Iterator[str]:
    """Run ``jupyter lab`` on 127.0.0.1 (no token: loopback only, torn down after the test); yields its URL."""
    port = _free_port()
    jupyter = Path(sys.executable).parent / "jupyter"
    cmd = [
        str(jupyter),
        "lab",
        "--allow-root",
        "--no-browser",
        "--ServerApp.token=",
        "--ServerApp.password=",
        "--ServerApp.ip=127.0.0.1",
        "--ServerApp.port_retries=0",  # a taken port fails loudly instead of moving where nobody polls
        f"--port={port}",
        f"--LabApp.workspaces_dir={workspaces_dir}",
        "--LabApp.expose_app_in_browser=True",
        f"--ServerApp.root_dir={root_dir}",
    ]
    # No "get notified about Jupyter news?" toast over the panels (and no fetch of the news feed offline).
    settings = workspaces_dir.parent / "user-settings"
    notification = settings / "@jupyterlab" / "apputils-extension" / "notification.jupyterlab-settings"
    notification.parent.mkdir(parents=True, exist_ok=True)
    notification.write_text(json.dumps({"fetchNews": "false", "checkForUpdates": False}))
    cmd.append(f"--LabApp.user_settings_dir={settings}")
    log_path = root_dir.parent / "jupyter-lab.log"
    full_env = {**os.environ, **(env or {})}
    # The kernel must import this checkout's mnistkit (and trainer) even when it is not installed.
    full_env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(REPO), full_env.get("PYTHONPATH", "")]))
    with open(log_path, "wb") as log:
        proc = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT, env=full_env, cwd=root_dir)
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 90
        while True:
            try:
                with urllib.request.urlopen(f"{url}/api/status", timeout=2) as r:
                    if r.status == 200:
                        break
            except (urllib.error.URLError, OSError):
                pass
            if proc.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"jupyter lab did not start; log:\n{log_path.read_text()[-3000:]}")
            time.sleep(0.5)
        yield url
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


@contextlib.contextmanager
def chromium_page(viewport: tuple[int, int] = (1400, 1800)) -> Iterator[tuple[Any, list[str]]]:
    """A headless Debian Chromium page and the list its console errors are collected into."""
    from playwright.sync_api import sync_playwright

    if not Path(CHROMIUM).exists() or shutil.which(CHROMIUM) is None:
        raise FileNotFoundError(CHROMIUM)
    errors: list[str] = []
    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=CHROMIUM, headless=True, args=CHROMIUM_ARGS)
        try:
            page = browser.new_page(viewport={"width": viewport[0], "height": viewport[1]})
            page.on("console", lambda m: errors.append(f"{m.text} @ {m.location.get('url', '')}") if m.type == "error" else None)
            page.on("pageerror", lambda e: errors.append(f"uncaught: {e}"))
            yield page, errors
        finally:
            browser.close()


def run_all_cells(page: Any) -> None:
    """Run every cell of the open notebook through JupyterLab's command registry."""
    page.wait_for_function("() => window.jupyterapp && window.jupyterapp.commands.hasCommand('notebook:run-all-cells')")
    page.evaluate("() => window.jupyterapp.commands.execute('notebook:run-all-cells')")


def unexpected_errors(errors: Sequence[str]) -> list[str]:
    """Console errors that are not in ``KNOWN_CONSOLE_NOISE``."""
    return [e for e in errors if not any(noise in e for noise in KNOWN_CONSOLE_NOISE)]
