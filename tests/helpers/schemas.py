"""Strict validation against the official schemas (tests/manifests/schemas) and Argo's substitution, for tests.

The validation code follows the schemas' README (strict mode: no unknown fields anywhere).
"""

from __future__ import annotations

import functools
import json
import re
from typing import Any

import yaml

from helpers.paths import TESTS

SCHEMAS = TESTS / "manifests" / "schemas"
K8S_VERSION = "1.31.0"  # shipped by every kubernetes-validate the pyproject allows (>=1.31); Kubeflow 1.10 runs on 1.31-1.33


# ---- schema helpers (the code from the schemas' README, strict mode) ---------------------------
def _closed(s: Any) -> Any:
    if isinstance(s, list):
        return [_closed(x) for x in s]
    if not isinstance(s, dict):
        return s
    out = {k: ({n: _closed(v) for n, v in s[k].items()} if k in ("properties", "definitions") else _closed(v))
           for k, v in s.items()}
    if "properties" in s and "additionalProperties" not in s and not s.get("x-kubernetes-preserve-unknown-fields"):
        out["additionalProperties"] = False
    return out


@functools.cache
def _argo_defs() -> dict[str, Any]:
    defs = json.loads((SCHEMAS / "argo-workflows-v4.1.2.schema.json").read_text())["definitions"]
    for k in ("io.k8s.apimachinery.pkg.util.intstr.IntOrString", "io.k8s.apimachinery.pkg.api.resource.Quantity"):
        defs[k] = {"type": ["integer", "string"]}
    return _closed(defs)


@functools.cache
def crd_validator(name: str) -> Any:
    from jsonschema import Draft7Validator

    return Draft7Validator(_closed(json.loads((SCHEMAS / name).read_text())))


def argo_errors(m: dict[str, Any]) -> list[str]:
    from jsonschema import Draft202012Validator

    assert m["kind"] in ("Workflow", "WorkflowTemplate")
    schema = {"definitions": _argo_defs(), "$ref": f"#/definitions/io.argoproj.workflow.v1alpha1.{m['kind']}"}
    errs = [f"schema.json {e.json_path}: {e.message}" for e in Draft202012Validator(schema).iter_errors(m)]
    crd = crd_validator("argo-workflow-crd-v4.1.2.openapi.json")
    return errs + [f"CRD {e.json_path}: {e.message}" for e in crd.iter_errors(m)]


def tfjob_errors(m: dict[str, Any]) -> list[str]:
    errs = [f"{e.json_path}: {e.message}" for e in crd_validator("kubeflow-tfjob-crd-v1.9.4.openapi.json").iter_errors(m)]
    if (m.get("apiVersion"), m.get("kind")) != ("kubeflow.org/v1", "TFJob"):
        errs.append("apiVersion/kind must be kubeflow.org/v1 TFJob")
    return errs


def kserve_errors(m: dict[str, Any]) -> list[str]:
    """A KServe ``InferenceService`` against KServe's own CRD schema (v0.20.0), strict."""
    validator = crd_validator("kserve-inferenceservice-crd-v0.20.0.openapi.json")
    errs = [f"{e.json_path}: {e.message}" for e in validator.iter_errors(m)]
    if (m.get("apiVersion"), m.get("kind")) != ("serving.kserve.io/v1beta1", "InferenceService"):
        errs.append("apiVersion/kind must be serving.kserve.io/v1beta1 InferenceService")
    return errs


def core_errors(m: dict[str, Any]) -> list[str]:
    import kubernetes_validate

    try:
        kubernetes_validate.validate(m, K8S_VERSION, strict=True)
    except kubernetes_validate.ValidationError as exc:
        return [str(exc.message)]
    return []


def as_json(m: Any) -> Any:
    return json.loads(json.dumps(m))


def _expression(expr: str, params: dict[str, str]) -> str:
    """An Argo expression tag (``{{=...}}``, expr-lang) of the forms the manifests use: asInt, parameters, + - * ."""
    py = re.sub(r'workflow\.parameters\["([a-z0-9-]+)"\]', lambda m: repr(params[m.group(1)]), expr)
    py = py.replace("asInt(", "int(")
    assert re.fullmatch(r"[\sint()'a-z0-9.+*-]*", py), f"unsupported expression {expr!r}"
    return str(eval(py))  # noqa: S307 - test-only, restricted to the characters checked above


def substitute(text: str, params: dict[str, str], name: str = "model-train-abcde") -> str:
    """Do what Argo does to an inline manifest before it reaches kubectl."""
    text = text.replace("{{workflow.name}}", name).replace("{{workflow.namespace}}", params.get("namespace", "ns"))
    text = re.sub(r"\{\{=(.+?)\}\}", lambda m: _expression(m.group(1), params), text)
    return re.sub(r"\{\{(?:workflow|inputs)\.parameters\.([a-z0-9-]+)\}\}", lambda m: params[m.group(1)], text)


def argo_when(expr: str, params: dict[str, str]) -> bool:
    """A step's ``when`` as Argo's govaluate reads it: bare words are strings, ``&&``/``||`` join."""
    text = substitute(expr, params).replace("&&", " and ").replace("||", " or ")
    text = re.sub(r"\b(?!and\b|or\b)([A-Za-z][\w-]*)", lambda m: repr(m.group(1)), text)
    return bool(eval(text))  # noqa: S307 - test-only


def inline_manifests(wf: dict[str, Any], params: dict[str, str] | None = None) -> dict[str, dict[str, Any]]:
    params = params or {p["name"]: p["value"] for p in wf["spec"]["arguments"]["parameters"]}
    return {
        t["name"]: yaml.safe_load(substitute(t["resource"]["manifest"], params))
        for t in wf["spec"]["templates"] if "resource" in t
    }
