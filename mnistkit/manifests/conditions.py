"""Evaluate Argo resource-step conditions the way Argo's executor does, to test them without a cluster.

Argo parses ``successCondition``/``failureCondition`` as Kubernetes label selectors whose keys are
gjson paths into the resource's JSON (argo-workflows ``workflow/executor/resource.go``: ``gjsonLabels``
and ``matchConditions``). The step fails when ANY failure requirement matches, and succeeds when ALL
success requirements match. Supported here: dotted paths (``status.replicaStatuses.Chief.failed``;
numeric parts index lists) and the operators ``=``, ``==``, ``!=``, ``in``, ``notin``, ``>``, ``<``,
``key`` (exists) and ``!key`` -- everything a label selector allows. Like ``labels.Parse``, keys must be valid
label keys (``[prefix/]name``, name at most 63 of ``[A-Za-z0-9._-]``), so gjson queries such as
``status.conditions.#(type=="Failed")`` are refused here as Argo refuses them.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from typing import Any

from mnistkit.errors import ConfigError

__all__ = ["Requirement", "parse_requirements", "requirement_matches", "resource_outcome"]

_REQ_RE = re.compile(
    r"^\s*(?P<neg>!)?\s*(?P<key>[A-Za-z0-9_./-]+)\s*"
    r"(?:(?P<op>==|!=|=|>|<|\s+notin\s+|\s+in\s+)\s*(?P<val>\([^)]*\)|[^,()\s]*))?\s*$"
)

Requirement = tuple[str, str, tuple[str, ...]]  # (key, operator, values)
# apimachinery's IsQualifiedName (what labels.Parse checks a key against) and IsValidLabelValue.
_NAME_RE = re.compile(r"^([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]$")
_PREFIX_RE = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$")


def _check_key(key: str, expr: str) -> None:
    prefix, _, name = key.rpartition("/")
    if len(name) > 63 or not _NAME_RE.match(name) or (prefix and (len(prefix) > 253 or not _PREFIX_RE.match(prefix))):
        raise ConfigError(f"condition key {key!r} is not a valid label key, so Argo cannot parse it", field="condition",
                          value=expr)


def _split(expr: str) -> list[str]:
    parts, depth, cur = [], 0, ""
    for ch in expr:
        if ch == "(":
            depth += 1
        elif ch == ")":
            depth -= 1
        if ch == "," and depth == 0:
            parts.append(cur)
            cur = ""
        else:
            cur += ch
    if cur.strip():
        parts.append(cur)
    return parts


def parse_requirements(expr: str) -> list[Requirement]:
    reqs: list[Requirement] = []
    for part in _split(expr):
        m = _REQ_RE.match(part)
        if not m:
            raise ConfigError(f"cannot parse condition {part.strip()!r}", field="condition", value=expr)
        key, op, val = m["key"], (m["op"] or "").strip(), (m["val"] or "").strip()
        _check_key(key, expr)
        if m["neg"]:
            reqs.append((key, "!", ()))
        elif not op:
            reqs.append((key, "exists", ()))
        else:
            values = tuple(v.strip() for v in val.strip("()").split(",")) if op in ("in", "notin") else (val,)
            reqs.append((key, "=" if op == "==" else op, values))
    return reqs


def _lookup(obj: Any, key: str) -> tuple[bool, str]:
    cur = obj
    for part in key.split("."):
        if isinstance(cur, Mapping) and part in cur:
            cur = cur[part]
        elif isinstance(cur, list) and part.isdigit() and int(part) < len(cur):
            cur = cur[int(part)]
        else:
            return False, ""
    if isinstance(cur, bool):
        return True, "true" if cur else "false"
    if isinstance(cur, (dict, list)):
        return True, json.dumps(cur, separators=(",", ":"))
    return True, "" if cur is None else str(cur)


def requirement_matches(req: Requirement, obj: Mapping[str, Any]) -> bool:
    """One requirement against a resource, with ``k8s.io/apimachinery/pkg/labels`` semantics."""
    key, op, values = req
    has, value = _lookup(obj, key)
    if op == "exists":
        return has
    if op == "!":
        return not has
    if op in ("=", "in"):
        return has and value in values
    if op in ("!=", "notin"):
        return not has or value not in values
    if op in (">", "<"):
        if not has:
            return False
        try:
            left, right = int(value), int(values[0])
        except ValueError:
            return False
        return left > right if op == ">" else left < right
    raise ConfigError(f"unknown operator {op!r}", field="condition", value=op)


def resource_outcome(obj: Mapping[str, Any], success: str = "", failure: str = "") -> str:
    """``"failed"``, ``"succeeded"`` or ``"waiting"``: what Argo's resource step decides for ``obj`` now."""
    if failure and any(requirement_matches(r, obj) for r in parse_requirements(failure)):
        return "failed"
    if success and all(requirement_matches(r, obj) for r in parse_requirements(success)):
        return "succeeded"
    return "waiting"
