"""The drawing pad: draw a digit in the browser, see the 28x28 the model saw, its answer and ten probability bars.

An ``anywidget.AnyWidget`` whose front end (``static/drawing_pad.js``) does the drawing; Python only
sees the finished canvas (a PNG data URL, once per stroke), hands it to ``DrawingPadController`` and
syncs the result back. With no browser (papermill), use ``pad.controller.submit(array)``.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import anywidget
import traitlets

from mnistkit.widgets._assets import asset
from mnistkit.widgets.drawing_pad_controller import DrawingPadController, PadResult

if TYPE_CHECKING:
    from mnistkit.drawing import Canvas

__all__ = ["DrawingPad"]


class DrawingPad(anywidget.AnyWidget):
    """``DrawingPad(client=ModelClient(...))``, ``DrawingPad(predict=callable)`` or ``DrawingPad(predict=export_dir)``
    (what ``mnistkit.predictor`` accepts); display it as the cell's value."""

    _esm = asset("drawing_pad.js")
    _css = asset("drawing_pad.css")

    image_data = traitlets.Unicode("").tag(sync=True)  # the canvas as a PNG data URL, set by the browser
    canvas_image = traitlets.Unicode("").tag(sync=True)  # a picture Python asks the browser to paint (test digits)
    preview = traitlets.Unicode("").tag(sync=True)  # the 28x28 the model saw, as a PNG data URL
    digit = traitlets.Int(-1).tag(sync=True)
    label = traitlets.Int(-1).tag(sync=True)
    probabilities = traitlets.List(traitlets.Float(), default_value=[]).tag(sync=True)
    status = traitlets.Unicode("draw a digit").tag(sync=True)
    error = traitlets.Unicode("").tag(sync=True)
    stroke_width = traitlets.Int(18).tag(sync=True)

    def __init__(
        self,
        predict: object = None,
        *,
        client: object = None,
        controller: DrawingPadController | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.controller = controller or DrawingPadController(predict, client=client)
        self.controller.on_change(self._show)
        self.observe(self._on_image, names="image_data")
        self.on_msg(self._on_msg)

    def _on_image(self, change: dict[str, Any]) -> None:
        if change["new"]:
            self.controller.submit(change["new"])

    def _on_msg(self, _widget: object, content: dict[str, Any], _buffers: object) -> None:
        event = content.get("event") if isinstance(content, dict) else None
        if event == "clear":
            self.controller.clear()
        elif event == "random":
            result = self.controller.random_digit()
            if result is not None:
                from mnistkit.drawing import to_data_url

                # Paint it big and dark-on-light, like a drawing, so the canvas shows what was classified.
                self.canvas_image = to_data_url(1.0 - result.image, scale=10)

    def _show(self, controller: DrawingPadController) -> None:
        from mnistkit.drawing import to_data_url

        result: PadResult | None = controller.result
        with self.hold_sync():
            self.error = controller.error
            if result is None:
                self.preview, self.digit, self.label, self.probabilities = "", -1, -1, []
                self.status = "" if controller.error else "draw a digit"
                return
            p = result.prediction
            self.preview = to_data_url(result.image, scale=2)
            self.probabilities = [float(v) for v in p.probabilities]
            self.digit = int(p.digit)
            self.label = -1 if result.label is None else int(result.label)
            version = f" (model version {p.model_version})" if p.model_version else ""
            truth = "" if result.label is None else f"; true label {result.label}"
            self.status = f"predicted {p.digit} with {max(p.probabilities):.0%}{version}{truth}"

    def submit(self, canvas: Canvas) -> PadResult | None:
        """Classify an array, PNG bytes or data URL without a browser; the pad shows the result too."""
        return self.controller.submit(canvas)
