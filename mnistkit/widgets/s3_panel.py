"""The S3 panel: where the data and models live, checked before anything is trained.

Fields come pre-filled from the seed's environment variables; the secret key is a password field and
never appears in the panel's messages or repr, and the access key ID shows only masked (its last four
characters). Buttons: Validate, Test connection (write, read back and delete a probe object), Upload
dataset (with a progress bar) and Create Kubernetes secret (only enabled when a cluster is configured).
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING

import ipywidgets as w

from mnistkit.config import mask_key_id
from mnistkit.widgets.s3_panel_controller import S3PanelController

if TYPE_CHECKING:
    from mnistkit.config import S3Config

__all__ = ["S3Panel"]

_LABELS = {
    "bucket": "Bucket",
    "endpoint_url": "Endpoint URL",
    "access_key_id": "Access key ID",
    "secret_access_key": "Secret key",
    "region": "Region",
    "verify_ssl": "Verify TLS",
}


class S3Panel(w.VBox):
    """``S3Panel()`` (reads the environment) or ``S3Panel(env={...})``; ``panel.config`` after Validate."""

    def __init__(
        self, env: Mapping[str, str] | None = None, *, namespace: str | None = None, data_prefix: str = "data/mnist"
    ) -> None:
        self.controller = S3PanelController(env)
        self.namespace, self.data_prefix = namespace, data_prefix
        v = self.controller.values
        style = {"description_width": "110px"}
        layout = w.Layout(width="460px")
        self.fields: dict[str, w.Widget] = {
            "bucket": w.Text(value=str(v["bucket"]), description=_LABELS["bucket"], style=style, layout=layout),
            "endpoint_url": w.Text(
                value=str(v["endpoint_url"]),
                placeholder="empty = AWS; e.g. http://minio:9000",
                description=_LABELS["endpoint_url"],
                style=style,
                layout=layout,
            ),
            # Never put the secret, nor the whole key ID, into a widget: a widget's value syncs to the browser and is
            # saved in the notebook's widget state (papermill outputs included). Empty means "keep the one we have";
            # the key ID is shown masked as `aws configure list` does.
            "access_key_id": w.Text(
                value="",
                placeholder=mask_key_id(str(v["access_key_id"])),
                description=_LABELS["access_key_id"],
                style=style,
                layout=layout,
            ),
            "secret_access_key": w.Password(
                value="",
                placeholder="(set: from the environment)" if v["secret_access_key"] else "",
                description=_LABELS["secret_access_key"],
                style=style,
                layout=layout,
            ),
            "region": w.Text(value=str(v["region"]), description=_LABELS["region"], style=style, layout=layout),
            "verify_ssl": w.Checkbox(value=bool(v["verify_ssl"]), description=_LABELS["verify_ssl"], indent=False),
        }
        self.validate_button = w.Button(description="Validate", icon="check")
        self.test_button = w.Button(description="Test connection", icon="plug", button_style="primary")
        self.upload_button = w.Button(description="Upload dataset", icon="upload")
        self.data_dir = w.Text(
            value="",
            placeholder="empty = the offline sample (5,000 digits)",
            description="Data dir",
            style=style,
            layout=layout,
        )
        cluster_ok, cluster_why = self.controller.cluster_status()
        self.secret_button = w.Button(
            description="Create Kubernetes secret",
            icon="key",
            disabled=not cluster_ok,
            tooltip=cluster_why,
            layout=w.Layout(width="auto"),
        )
        self.cluster_note = w.HTML(value="" if cluster_ok else f"<i>{_escape(cluster_why)}</i>")
        self.progress = w.FloatProgress(
            value=0.0,
            min=0.0,
            max=1.0,
            description="Upload",
            style=style,
            layout=w.Layout(width="460px", visibility="hidden"),
        )
        self.status = w.HTML()
        self.validate_button.on_click(lambda _b: self._run(self.controller.validate))
        self.test_button.on_click(lambda _b: self._run(self.controller.test_connection))
        self.upload_button.on_click(lambda _b: self._upload())
        self.secret_button.on_click(lambda _b: self._run(lambda: self.controller.create_secret(self.namespace)))
        super().__init__(
            [
                w.HTML("<b>S3 storage</b>"),
                *self.fields.values(),
                w.HBox([self.validate_button, self.test_button]),
                w.HBox([self.data_dir, self.upload_button]),
                self.progress,
                w.HBox([self.secret_button, self.cluster_note]),
                self.status,
            ]
        )
        self.add_class("mnistkit-s3-panel")
        self._show()

    @property
    def config(self) -> S3Config | None:
        """The validated ``S3Config`` (``None`` until the fields validate)."""
        return self.controller.config or self.controller.validate()

    def _read_fields(self) -> None:
        values = {name: field.value for name, field in self.fields.items()}
        for name in ("access_key_id", "secret_access_key"):
            if not values[name]:
                values.pop(name)  # keep the key the controller already has
        self.controller.update(**values)
        for name in ("access_key_id", "secret_access_key"):
            self.fields[name].value = ""  # typed once, kept only in the controller
        self.fields["access_key_id"].placeholder = mask_key_id(str(self.controller.values.get("access_key_id") or ""))

    def _run(self, action: Callable[[], object]) -> None:
        self._read_fields()
        self._busy(True)
        try:
            action()
        finally:
            self._busy(False)
            self._show()

    def _busy(self, busy: bool) -> None:
        for b in (self.validate_button, self.test_button, self.upload_button):
            b.disabled = busy
        if busy:
            self.status.value = "<span class='mnistkit-busy'>working…</span>"

    def _upload(self) -> None:
        self._read_fields()
        self._busy(True)
        self.progress.value = 0.0
        self.progress.layout.visibility = "visible"

        def progress(done: int, total: int) -> None:
            self.progress.value = done / total if total else 1.0

        def work() -> None:
            try:
                self.controller.upload_dataset(self.data_dir.value.strip() or None, self.data_prefix, progress)
            finally:
                if not self.controller.error:
                    self.progress.value = 1.0
                self._busy(False)
                self._show()

        # Off the kernel's message loop, so the progress bar moves while the files upload.
        threading.Thread(target=work, name="mnistkit-s3-upload", daemon=True).start()

    def _show(self) -> None:
        c = self.controller
        if c.error:
            self.status.value = f"<span class='mnistkit-error' style='color:#b00'>✗ {_escape(c.error)}</span>"
        elif c.message:
            self.status.value = f"<span class='mnistkit-ok' style='color:#2d6a2d'>✓ {_escape(c.message)}</span>"
        else:
            self.status.value = ""

    def __repr__(self) -> str:
        cfg = self.controller.config
        return f"S3Panel({cfg!r})" if cfg is not None else "S3Panel(not validated)"


def _escape(text: str) -> str:
    import html

    return html.escape(text)
