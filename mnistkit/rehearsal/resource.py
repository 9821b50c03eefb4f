"""Argo ``resource`` templates against the rehearsal's objects (what ``argoexec resource`` does with kubectl).

``action``: ``get``, ``create`` (a taken name fails the step: ``AlreadyExists``), ``apply``, ``patch``
(``mergeStrategy`` ``merge``; ``strategic`` is applied as a merge patch, which is the same for the maps
mnistkit patches; ``json`` is refused), ``delete`` (a missing object fails it, as kubectl does without
``--ignore-not-found``). A manifest without a namespace lands in the workflow's. ``setOwnerReference`` makes the
workflow the object's owner. Then ``successCondition``/``failureCondition`` are evaluated on every change of the
object (``mnistkit.manifests.conditions``, Argo's semantics) until one decides; a deleted object fails the step.
Output parameters: ``valueFrom.jsonPath`` (kubectl's ``{...}`` JSONPath, several matches joined by spaces).
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any

import yaml

from mnistkit.errors import MnistkitError
from mnistkit.manifests.conditions import resource_outcome
from mnistkit.rehearsal.jobs import owner_reference
from mnistkit.rehearsal.store import ApiError, Obj, StoreBase

if TYPE_CHECKING:
    from mnistkit._types import JsonValue

__all__ = ["StepFailed", "jsonpath", "run_resource"]


class StepFailed(MnistkitError):
    """A step's failure, with the message Argo would show for its node."""


def jsonpath(obj: JsonValue, expr: str) -> str:
    """kubectl's ``-o jsonpath={...}``: the matches' values, strings as-is, others as JSON, space-separated."""
    from jsonpath_ng.ext import parse

    inner = expr.strip()
    if inner.startswith("{") and inner.endswith("}"):
        inner = inner[1:-1]
    inner = "$" + inner if inner.startswith((".", "[")) else inner
    try:
        matches = [m.value for m in parse(inner).find(obj)]
    except Exception as exc:  # noqa: BLE001 - jsonpath-ng raises plain Exceptions for syntax errors
        raise StepFailed(f"jsonPath {expr!r}: {exc}", field="jsonPath", value=expr) from None
    return " ".join(m if isinstance(m, str) else json.dumps(m) for m in matches)


def _changed(store: StoreBase, kind: str, ns: str, name: str, rv: str | None) -> Callable[[], bool]:
    return lambda: (store.get(kind, ns, name) or {}).get("metadata", {}).get("resourceVersion") != rv


def run_resource(
    store: StoreBase, template: Mapping[str, Any], workflow: Obj, check: Callable[[], None], poll: float = 1.0
) -> dict[str, str]:
    """Run one (already substituted) resource template; returns its output parameters, or raises StepFailed.

    ``check`` raises when the step must stop (its deadline, the workflow's, a shutdown).
    """
    res = template["resource"]
    action = res.get("action", "")
    obj = yaml.safe_load(res.get("manifest", "")) or {}
    if not isinstance(obj, dict) or "kind" not in obj:
        raise StepFailed("resource manifest is not a Kubernetes object", field="manifest")
    meta = obj.setdefault("metadata", {})
    ns = meta.setdefault("namespace", workflow["metadata"].get("namespace", ""))
    kind, name = obj["kind"], meta.get("name", "")
    what = f'{kind.lower()}s "{name}"'
    if res.get("setOwnerReference") and action in ("create", "apply"):
        meta.setdefault("ownerReferences", []).append(owner_reference(workflow, controller=False))
    try:
        if action == "create":
            live = store.create(obj)
        elif action == "apply":
            live = store.apply(obj)
        elif action == "get":
            got = store.get(kind, ns, name)
            if got is None:
                raise ApiError(404, f"{what} not found")
            live = got
        elif action == "patch":
            if res.get("mergeStrategy", "strategic") == "json":
                raise StepFailed("patch mergeStrategy json is not emulated", field="mergeStrategy", value="json")
            live = store.patch(kind, ns, name, {k: v for k, v in obj.items() if k not in ("apiVersion", "kind")})
        elif action == "delete":
            if store.delete(kind, ns, name) is None:
                raise ApiError(404, f"{what} not found")
            return {}
        else:
            raise StepFailed(
                f"resource action {action!r} is not one of get, create, apply, patch, delete",
                field="action",
                value=action,
            )
    except ApiError as exc:
        reason = {404: "NotFound", 409: "AlreadyExists"}.get(exc.code, "Invalid")
        raise StepFailed(f"Error from server ({reason}): {exc}", field="resource", value=name) from None
    name = live["metadata"]["name"]
    success, failure = res.get("successCondition", ""), res.get("failureCondition", "")
    if success or failure:
        while True:
            check()
            current = store.get(kind, ns, name)
            if current is None:
                raise StepFailed(
                    "The resource has been deleted while its status was still being checked. Will not be retried",
                    field="resource",
                    value=name,
                )
            outcome = resource_outcome(current, success, failure)
            if outcome == "failed":
                raise StepFailed(
                    f"failure condition {failure!r} evaluated true", field="failureCondition", value=failure
                )
            if outcome == "succeeded":
                live = current
                break
            store.wait_for(_changed(store, kind, ns, name, current["metadata"].get("resourceVersion")), poll)
    outputs: dict[str, str] = {}
    for p in (template.get("outputs") or {}).get("parameters", []):
        source = p.get("valueFrom") or {}
        if "jsonPath" in source:
            outputs[p["name"]] = jsonpath(store.get(kind, ns, name) or live, source["jsonPath"])
        elif "jqFilter" in source:
            raise StepFailed("output jqFilter is not emulated; use jsonPath", field="jqFilter", value=p["name"])
    return outputs
