"""Argo resource-step conditions, evaluated as Argo's executor does (``mnistkit rehearse`` and the tests use it).

Argo parses ``successCondition``/``failureCondition`` with ``labels.Parse`` (Kubernetes label-selector syntax,
k8s.io/apimachinery) and looks each key up as a gjson path in the resource's JSON (argo-workflows
``workflow/executor/resource.go``: ``gjsonLabels``, ``matchConditions``):

* the step **fails** as soon as ANY failure requirement matches;
* it **succeeds** when the number of matched success requirements reaches their count -- so a step with only
  a failureCondition succeeds at the first check where that does not match, and one with neither condition
  succeeds at once (``WaitResource`` returns immediately);
* otherwise it keeps waiting.

Requirements: ``key``, ``!key``, ``key = v``, ``key == v``, ``key != v``, ``key in (a, b)``,
``key notin (a, b)``, ``key > 3``, ``key < 3``, separated by commas. As in ``labels.Parse`` a key must be a
qualified name (at most 63 characters of ``[A-Za-z0-9._-]`` in its name part, an optional DNS prefix and
``/``), a value a label value, and ``>``/``<`` take one integer. The gjson lookup of such a key walks
objects by name and arrays by index; a missing path does not exist, ``null`` exists with value ``""``,
booleans read ``true``/``false``, objects and arrays their JSON text.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from mnistkit.errors import ConfigError

if TYPE_CHECKING:
    from mnistkit._types import JsonValue

__all__ = ["Requirement", "gjson_lookup", "parse_requirements", "requirement_matches", "resource_outcome"]

Requirement = tuple[str, str, tuple[str, ...]]  # (key, operator, values)

_TOKEN_RE = re.compile(r"\s*(?:(?P<op>==|!=|=|>|<|!|\(|\)|,)|(?P<word>[^\s,=!()<>]+))")
_NAME_RE = re.compile(r"^([A-Za-z0-9]([-A-Za-z0-9_.]*[A-Za-z0-9])?)$")
_DNS_SUBDOMAIN_RE = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$")
_VALUE_RE = re.compile(r"^(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])?$")
_INT_RE = re.compile(r"^[+-]?\d+$")


def _bad(expr: str, why: str) -> ConfigError:
    return ConfigError(f"cannot parse condition {expr!r}: {why}", field="condition", value=expr)


def _check_key(expr: str, key: str) -> str:
    prefix, _, name = key.rpartition("/")
    if "/" in key and (not prefix or len(prefix) > 253 or not _DNS_SUBDOMAIN_RE.match(prefix)):
        raise _bad(expr, f"key {key!r}: the prefix before '/' must be a lowercase DNS subdomain")
    if not name or len(name) > 63 or not _NAME_RE.match(name):
        raise _bad(expr, f"key {key!r} is not a qualified name (at most 63 of [A-Za-z0-9._-], alphanumeric ends)")
    return key


def _check_value(expr: str, value: str) -> str:
    if len(value) > 63 or not _VALUE_RE.match(value):
        raise _bad(expr, f"value {value!r} is not a label value (at most 63 of [A-Za-z0-9._-])")
    return value


def _tokens(expr: str) -> list[str]:
    out, pos = [], 0
    while pos < len(expr):
        if expr[pos:].strip() == "":
            break
        m = _TOKEN_RE.match(expr, pos)
        if not m or m.end() == pos:
            raise _bad(expr, f"unexpected character at {pos}")
        out.append(m["op"] or m["word"])
        pos = m.end()
    return out


def parse_requirements(expr: str) -> list[Requirement]:
    """``labels.Parse``: the requirements of a selector, or a ``ConfigError`` naming what is wrong."""
    toks, i = _tokens(expr), 0
    reqs: list[Requirement] = []

    def peek() -> str | None:
        return toks[i] if i < len(toks) else None

    while i < len(toks):
        negated = toks[i] == "!"
        i += negated
        key = peek()
        if key is None or key in "=!()<>,":
            raise _bad(expr, "expected a key")
        i += 1
        _check_key(expr, key)
        op = peek()
        if negated or op in (None, ","):
            reqs.append((key, "!" if negated else "exists", ()))
        elif op in ("=", "==", "!=", ">", "<"):
            i += 1
            value = peek()
            if value is None or value in ",()":
                value = ""  # `key=` selects an empty value
            else:
                i += 1
            if op in (">", "<") and not _INT_RE.match(value):
                raise _bad(expr, f"for '{op}' the value must be an integer, got {value!r}")
            reqs.append((key, "=" if op == "==" else op, (_check_value(expr, value),)))
        elif op in ("in", "notin"):
            i += 1
            if peek() != "(":
                raise _bad(expr, f"'{op}' needs a set in parentheses")
            i += 1
            values: list[str] = []
            while peek() not in (")", None):
                tok = toks[i]
                if tok != ",":
                    values.append(_check_value(expr, tok))
                i += 1
            if peek() != ")":
                raise _bad(expr, "missing ')'")
            i += 1
            reqs.append((key, op, tuple(values) or ("",)))
        else:
            raise _bad(expr, f"unexpected {op!r} after {key!r}")
        if peek() not in (None, ","):
            raise _bad(expr, f"expected ',' before {peek()!r}")
        i += 1
    return reqs


def gjson_lookup(obj: JsonValue, key: str) -> tuple[bool, str]:
    """``(exists, value)`` of a qualified-name key as a gjson path into ``obj`` (gjson's ``Result.String()``)."""
    cur = obj
    for part in key.split("."):
        if isinstance(cur, Mapping) and part in cur:
            cur = cur[part]
        elif isinstance(cur, list) and part.isdigit() and int(part) < len(cur):
            cur = cur[int(part)]
        else:
            return False, ""
    if cur is None:
        return True, ""
    if isinstance(cur, bool):
        return True, "true" if cur else "false"
    if isinstance(cur, float):
        return True, str(int(cur)) if cur.is_integer() and abs(cur) < 1e15 else repr(cur)
    if isinstance(cur, (dict, list)):
        return True, json.dumps(cur, separators=(",", ":"))
    return True, str(cur)


def requirement_matches(req: Requirement, obj: Mapping[str, Any]) -> bool:
    """``labels.Requirement.Matches`` with gjson lookups."""
    key, op, values = req
    has, value = gjson_lookup(obj, key)
    if op == "exists":
        return has
    if op == "!":
        return not has
    if op in ("=", "in"):
        return has and value in values
    if op in ("!=", "notin"):
        return not has or value not in values
    if op in (">", "<"):
        if not has or not _INT_RE.match(value):
            return False
        left, right = int(value), int(values[0])
        return left > right if op == ">" else left < right
    raise ConfigError(f"unknown operator {op!r}", field="condition", value=op)


def resource_outcome(obj: Mapping[str, Any], success: str = "", failure: str = "") -> str:
    """``"failed"``, ``"succeeded"`` or ``"waiting"``: what Argo's resource step decides for ``obj`` now."""
    fail_reqs = parse_requirements(failure) if failure else []
    success_reqs = parse_requirements(success) if success else []
    if any(requirement_matches(r, obj) for r in fail_reqs):
        return "failed"
    if sum(requirement_matches(r, obj) for r in success_reqs) >= len(success_reqs):
        return "succeeded"
    return "waiting"
