"""The panels in a real JupyterLab, in headless Chromium: they render without console errors, the S3
panel's "Test connection" succeeds against an embedded S3, and a 7 drawn with the mouse comes back as 7
from a tiny CNN trained here. Screenshots of each panel go to ``test-artifacts/``.
"""

from __future__ import annotations

import textwrap
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from helpers.browser import (
    CHROMIUM,
    REPO,
    SEVEN_STROKES,
    chromium_page,
    jupyter_lab,
    render_strokes,
    run_all_cells,
    unexpected_errors,
    write_notebook,
)

pytestmark = [pytest.mark.slow, pytest.mark.browser]

ARTIFACTS = REPO / "test-artifacts"


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A small CNN trained for 3 epochs on the offline sample with mild augmentation, exported as version 1."""
    pytest.importorskip("tensorflow")
    from mnistkit import data
    from trainer.export import export_saved_model
    from trainer.model import build_model, keras

    keras.utils.set_random_seed(0)
    ds = data.offline_sample()
    model = build_model("small", 0.005, augment=True)
    model.fit(ds.x_train.astype(np.float32) / 255.0, ds.y_train, epochs=3, batch_size=64, verbose=0)
    base = tmp_path_factory.mktemp("models") / "mnist"
    export_saved_model(model, base / "1")
    return base


def test_trained_model_reads_the_synthetic_seven(model_dir: Path) -> None:
    """Before any browser: the strokes the browser will draw, rendered and preprocessed, are a 7 to this model."""
    from mnistkit.drawing import preprocess
    from mnistkit.predictor import saved_model_predictor

    predict = saved_model_predictor(model_dir)
    (prediction,) = predict(preprocess(render_strokes(SEVEN_STROKES))[None])
    assert prediction.digit == 7, prediction.probabilities
    assert prediction.model_version == 1


def _notebook_cells(model_dir: Path) -> list[str]:
    setup = f"""
        import os
        from mnistkit.embedded_s3 import EmbeddedS3
        s3_server = EmbeddedS3(bucket="browser-test").start()
        os.environ.update(s3_server.config.to_env())
        MODEL_DIR = {str(model_dir)!r}
        from mnistkit.widgets import DrawingPad, S3Panel, TrainingPanel
    """
    predictor = """
        # The real server and client: a server that does not start fails the test (no in-kernel fallback).
        from mnistkit.serving import ModelClient, ModelServer
        model_server = ModelServer(MODEL_DIR, port=0, rest_api_port=None).start()
        assert model_server.wait_for_version(1, timeout=60)
        pad = DrawingPad(client=ModelClient("127.0.0.1", model_server.grpc_port, protocol="grpc"))
        print("predictor: ModelServer + ModelClient (gRPC)")
        pad
    """
    return [
        textwrap.dedent(setup).strip(),
        "s3_panel = S3Panel()\ns3_panel",
        textwrap.dedent(predictor).strip(),
        "training = TrainingPanel()\ntraining",
    ]


@pytest.fixture(scope="module")
def lab_page(model_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Any, list[str]]]:
    pytest.importorskip("playwright")
    if not Path(CHROMIUM).exists():
        pytest.skip(f"{CHROMIUM} is missing: run `make browser` (apt-get install chromium)")
    root = tmp_path_factory.mktemp("lab")
    notebooks, workspaces = root / "notebooks", root / "workspaces"
    notebooks.mkdir()
    workspaces.mkdir()
    write_notebook(notebooks / "panels.ipynb", _notebook_cells(model_dir))
    ARTIFACTS.mkdir(exist_ok=True)
    # The kernel gets no cluster: the Argo engine and the k8s secret button must say "not configured".
    env = {"KUBECONFIG": str(root / "no-kubeconfig"), "TF_CPP_MIN_LOG_LEVEL": "2"}
    with jupyter_lab(notebooks, workspaces, env) as url, chromium_page() as (page, errors):
        page.set_default_timeout(60_000)
        page.goto(f"{url}/lab?reset")
        page.wait_for_function("() => window.jupyterapp && window.jupyterapp.commands.hasCommand('docmanager:open')")
        page.evaluate("() => window.jupyterapp.commands.execute('docmanager:open', {path: 'panels.ipynb'})")
        page.wait_for_selector(".jp-Notebook .jp-Cell", state="visible")
        page.wait_for_selector(".jp-Notebook-ExecutionIndicator[data-status='idle']", timeout=60_000)
        run_all_cells(page)
        page.wait_for_selector(".mnistkit-training-panel", state="visible", timeout=120_000)
        yield page, errors


def test_panels_render(lab_page: tuple[Any, list[str]]) -> None:
    page, _ = lab_page
    s3 = page.locator(".mnistkit-s3-panel")
    pad = page.locator(".mnistkit-pad")
    training = page.locator(".mnistkit-training-panel")
    for panel in (s3, pad, training):
        panel.wait_for(state="visible")
    # the pad reads the real server (the cell has no fallback that would predict in the kernel)
    assert page.locator(".jp-OutputArea-output").filter(
        has_text="predictor: ModelServer + ModelClient (gRPC)"
    ).count() == 1  # in the cell's output, not only in its source
    assert page.locator(".mnistkit-s3-panel input[type='password']").count() == 1
    assert pad.locator("canvas").bounding_box()["width"] == pytest.approx(280, abs=1)
    assert pad.locator(".mnistkit-pad-bar-row").count() == 10
    engines = [t.replace("\xa0", " ") for t in training.get_by_label("Engine").locator("option").all_inner_texts()]
    # With no kubeconfig the Argo engine can't start; exactly how it says so is the unit tests' business.
    assert engines[0] == "local" and engines[1] in ("argo (not configured)", "argo"), engines
    assert page.locator(".jp-OutputArea-output[data-mime-type='application/vnd.jupyter.stderr']").filter(
        has_text="Traceback"
    ).count() == 0
    # The embedded S3's secret is in the password field's value only, never in any output's text.
    assert "mnistkit-local-secret" not in page.locator(".jp-Notebook").inner_text()
    s3.screenshot(path=str(ARTIFACTS / "s3-panel.png"))
    training.screenshot(path=str(ARTIFACTS / "training-panel.png"))


def test_s3_panel_test_connection_succeeds(lab_page: tuple[Any, list[str]]) -> None:
    page, _ = lab_page
    s3 = page.locator(".mnistkit-s3-panel")
    s3.get_by_role("button", name="Test connection").click()
    ok = s3.locator(".mnistkit-ok")
    ok.wait_for(state="visible", timeout=30_000)
    assert "connected: s3://browser-test is reachable and writable" in ok.inner_text()
    s3.screenshot(path=str(ARTIFACTS / "s3-panel-connected.png"))
    # Upload the offline sample: the progress bar fills and the panel names the four files' place.
    s3.get_by_role("button", name="Upload dataset").click()
    page.wait_for_function(
        "() => (document.querySelector('.mnistkit-s3-panel .mnistkit-ok')?.textContent ?? '').includes('uploaded 4 files')",
        timeout=60_000,
    )
    assert "to s3://browser-test/data/mnist" in s3.locator(".mnistkit-ok").inner_text()
    assert s3.locator(".widget-hprogress .progress-bar").evaluate("b => b.style.width") == "100%"
    s3.screenshot(path=str(ARTIFACTS / "s3-panel-uploaded.png"))


def _draw(page: Any, canvas: Any, strokes: list[list[tuple[int, int]]], steps: int = 12) -> None:
    box = canvas.bounding_box()
    scale = box["width"] / 280.0
    for stroke in strokes:
        x0, y0 = stroke[0]
        page.mouse.move(box["x"] + x0 * scale, box["y"] + y0 * scale)
        page.mouse.down()
        for x1, y1 in stroke[1:]:
            page.mouse.move(box["x"] + x1 * scale, box["y"] + y1 * scale, steps=steps)
        page.mouse.up()


def test_drawing_a_seven_gets_seven_and_ten_bars(lab_page: tuple[Any, list[str]]) -> None:
    page, _ = lab_page
    pad = page.locator(".mnistkit-pad")
    canvas = pad.locator("canvas")
    canvas.scroll_into_view_if_needed()
    _draw(page, canvas, SEVEN_STROKES)
    page.wait_for_selector(".mnistkit-pad[data-digit='7']", timeout=30_000)
    assert pad.locator(".mnistkit-pad-answer").inner_text().strip() == "7"
    # The bars animate their width (0.15 s CSS transition): wait for them to settle on the answer.
    page.wait_for_function(
        """() => { const w = [...document.querySelectorAll('.mnistkit-pad .mnistkit-pad-bar')]
                     .map(b => b.getBoundingClientRect().width);
                   return w.length === 10 && w[7] > 0 && Math.max(...w) === w[7]; }""",
        timeout=10_000,
    )
    widths = pad.locator(".mnistkit-pad-bar").evaluate_all("bars => bars.map(b => b.getBoundingClientRect().width)")
    assert len(widths) == 10 and max(widths) == widths[7] > 0
    assert pad.locator(".mnistkit-pad-best").get_attribute("data-digit") == "7"
    assert pad.locator(".mnistkit-pad-preview").evaluate("img => img.naturalWidth") == 56
    assert pad.locator(".mnistkit-pad-error").inner_text() == ""
    pad.screenshot(path=str(ARTIFACTS / "drawing-pad-seven.png"))
    # Clear empties the answer; the random test digit button classifies a labelled digit.
    pad.get_by_role("button", name="Clear").click()
    page.wait_for_selector(".mnistkit-pad[data-digit='-1']")
    pad.get_by_role("button", name="Random test digit").click()
    page.wait_for_function(
        "() => (document.querySelector('.mnistkit-pad-status')?.textContent ?? '').includes('true label')", timeout=30_000
    )
    pad.screenshot(path=str(ARTIFACTS / "drawing-pad-random.png"))


_POINTER_STROKES_JS = """
(canvas, [strokes, pointerType]) => {
  // Pen and touch input arrive as the same Pointer Events as the mouse, with another pointerType.
  const box = canvas.getBoundingClientRect();
  const scale = box.width / 280;
  const fire = (type, x, y, pressure) => canvas.dispatchEvent(new PointerEvent(type, {
    pointerId: 7, pointerType, isPrimary: true, bubbles: true, cancelable: true, button: 0,
    buttons: type === "pointerup" ? 0 : 1, pressure,
    clientX: box.left + x * scale, clientY: box.top + y * scale,
  }));
  for (const stroke of strokes) {
    fire("pointerdown", stroke[0][0], stroke[0][1], 0.5);
    for (let i = 1; i < stroke.length; i++) {
      const [x0, y0] = stroke[i - 1], [x1, y1] = stroke[i];
      for (let k = 1; k <= 12; k++) fire("pointermove", x0 + ((x1 - x0) * k) / 12, y0 + ((y1 - y0) * k) / 12, 0.5);
    }
    const last = stroke[stroke.length - 1];
    fire("pointerup", last[0], last[1], 0);
  }
}
"""


@pytest.mark.parametrize("pointer_type", ["pen", "touch"])
def test_pen_and_touch_draw_too(lab_page: tuple[Any, list[str]], pointer_type: str) -> None:
    page, _ = lab_page
    pad = page.locator(".mnistkit-pad")
    pad.get_by_role("button", name="Clear").click()
    page.wait_for_selector(".mnistkit-pad[data-digit='-1']")
    assert pad.locator("canvas").evaluate("c => getComputedStyle(c).touchAction") == "none"
    pad.locator("canvas").evaluate(_POINTER_STROKES_JS, [SEVEN_STROKES, pointer_type])
    page.wait_for_selector(".mnistkit-pad[data-digit='7']", timeout=30_000)


def test_no_console_errors(lab_page: tuple[Any, list[str]]) -> None:
    """Runs last: everything above happened without a console error beyond the listed, unrelated noise."""
    _, errors = lab_page
    assert unexpected_errors(errors) == [], "\n".join(errors)
