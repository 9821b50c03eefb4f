"""Security fixes of issue 16: key IDs masked, private temp files, no path escapes, bounded decompression,
workers that die with their owner. The workshop-isolation and publishing tests live in their own files."""

from __future__ import annotations

import json
from dataclasses import replace

import pytest

from mnistkit.config import S3Config, mask_key_id

KEY_ID = "AKIAIOSFODNN7EXAMPLE"


def test_access_key_id_is_masked_like_aws_configure_list() -> None:
    assert mask_key_id(KEY_ID) == "****************MPLE"
    assert mask_key_id("") == "" and mask_key_id("short-key") == "*" * 20  # a short key shows nothing
    cfg = S3Config(bucket="mnist", access_key_id=KEY_ID, secret_access_key="s")
    for text in (repr(cfg), str(cfg), f"{cfg}"):
        assert KEY_ID not in text and "AKIAIOSFODNN7" not in text and "MPLE" in text


def test_s3_panel_shows_the_key_id_masked_and_keeps_it(s3_env: S3Config, monkeypatch: pytest.MonkeyPatch) -> None:
    import ipywidgets as w

    from mnistkit.widgets import S3Panel

    monkeypatch.setenv("KUBECONFIG", "/nonexistent/kubeconfig")
    monkeypatch.delenv("KUBERNETES_SERVICE_HOST", raising=False)
    env = {k: v for k, v in s3_env.to_env(include_secrets=True).items()}
    env["AWS_ACCESS_KEY_ID"] = KEY_ID  # moto accepts any key
    panel = S3Panel(env=env)
    assert panel.fields["access_key_id"].value == "" and panel.fields["access_key_id"].placeholder.endswith("MPLE")
    panel.test_button.click()
    assert "connected" in panel.status.value
    assert panel.controller.config is not None and panel.controller.config.access_key_id == KEY_ID
    panel.fields["access_key_id"].value = "AKIAOTHERKEY00001234"  # typed: used, then cleared from the widget
    panel.validate_button.click()
    assert panel.controller.config is not None and panel.controller.config.access_key_id == "AKIAOTHERKEY00001234"
    state = json.dumps(w.Widget.get_manager_state(drop_defaults=False), default=str)
    for text in (state, panel.status.value, repr(panel)):
        assert KEY_ID not in text and "AKIAOTHERKEY0000" not in text
