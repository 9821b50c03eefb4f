"""Pieces both Argo workflows share (``model-train`` in ``workflow.py``, ``model-deploy`` in ``deploy.py``): resource
templates with inline manifests, the pods' security context, and the ``when`` of the two serving variants."""

from __future__ import annotations

import re
from typing import Any

import yaml

__all__ = ["inline_manifest", "resource_template", "pod_security", "TFSERVING_WHEN", "MNISTKIT_WHEN"]

# Argo executor's documented non-root user.
EXECUTOR_UID = 8737
# `when` of the two serving variants (Argo's govaluate reads bare words as strings).
TFSERVING_WHEN = "{{workflow.parameters.serving-server}} != mnistkit"
MNISTKIT_WHEN = "{{workflow.parameters.serving-server}} == mnistkit"
# Integer fields whose value is a placeholder: Argo substitutes text, so they must not be YAML-quoted.
_UNQUOTE_RE = re.compile(r"((?:replicas|numNodes): )'(\{\{[^']+\}\})'")


def inline_manifest(obj: dict[str, Any]) -> str:
    """YAML for a resource template's ``manifest`` (placeholders in integer fields left unquoted)."""
    text = yaml.safe_dump(obj, sort_keys=False, default_flow_style=False, width=1000)
    return _UNQUOTE_RE.sub(r"\1\2", text)


def resource_template(name: str, action: str, manifest: dict[str, Any], **extra: Any) -> dict[str, Any]:
    res: dict[str, Any] = {"action": action, "manifest": inline_manifest(manifest)}
    if action in ("create", "apply"):
        res["setOwnerReference"] = True
    res.update(extra.pop("resource", {}))
    return {"name": name, "resource": res, **extra}


def pod_security() -> dict[str, Any]:
    return {
        "runAsNonRoot": True,
        "runAsUser": EXECUTOR_UID,
        "runAsGroup": EXECUTOR_UID,
        "seccompProfile": {"type": "RuntimeDefault"},
    }
