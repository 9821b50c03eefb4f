"""Deployments as the rehearsal runs them: ``spec.replicas`` pods from the template, replaced when it changes.

No ReplicaSet layer: the pods are named ``<deployment>-<template hash>-<index>``, owned by the Deployment (so
deleting it removes them), labelled with ``pod-template-hash``. An ``apply`` that changes the template
replaces the pods (a rollout with ``maxSurge`` 0). ``status``: ``replicas``, ``updatedReplicas``,
``readyReplicas``, ``availableReplicas`` and the ``Available`` condition, from the pods' readiness.
Services need no controller: ``Addresses.service`` finds the pod behind a Service port.

KServe ``InferenceService``s with a *custom predictor* (``spec.predictor.containers``) run the same way, as
KServe's raw Deployment mode does: ``minReplicas`` pods (default 1) of the predictor's pod spec, labelled
``app: isvc.<name>-predictor``, and the Service ``<name>-predictor`` whose port 80 leads to the first container
port (further ports keep their number), as KServe creates it. ``status``: ``PredictorReady`` and ``Ready``
conditions and the in-cluster ``url``. KServe's model runtimes (``spec.predictor.model``: its storage
initializer, the runtime images) are not emulated: such a service gets ``Ready`` False saying so.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from typing import Any

from mnistkit.rehearsal.jobs import create_pod, owner_reference
from mnistkit.rehearsal.pods import Addresses
from mnistkit.rehearsal.store import Obj, StoreBase, now_rfc3339

__all__ = ["DeploymentController", "InferenceServiceController"]


def _ready(pod: Obj) -> bool:
    st = pod.get("status", {})
    cs = st.get("containerStatuses", [])
    return st.get("phase") == "Running" and bool(cs) and all(c.get("ready") for c in cs)


def _run_template(store: StoreBase, owner: Obj, prefix: str, template: Mapping[str, Any], want: int) -> tuple[int, int]:
    """Keep ``want`` pods of ``template`` owned by ``owner`` (others deleted); ``(pods, ready pods)``."""
    ns, uid = owner["metadata"].get("namespace", ""), owner["metadata"]["uid"]
    digest = hashlib.sha256(json.dumps(template, sort_keys=True).encode()).hexdigest()[:10]
    owned = [
        p for p in store.list("Pod", ns) if any(r.get("uid") == uid for r in p["metadata"].get("ownerReferences", []))
    ]
    current = [p for p in owned if p["metadata"].get("labels", {}).get("pod-template-hash") == digest]
    for p in owned:
        if p not in current:
            store.delete("Pod", ns, p["metadata"]["name"])
    names = {p["metadata"]["name"] for p in current}
    for i in range(want):
        pod_name = f"{prefix}-{digest}-{i}"
        if pod_name not in names:
            create_pod(
                store,
                owner,
                pod_name,
                template,
                {"pod-template-hash": digest},
                restart_policy=template.get("spec", {}).get("restartPolicy", "Always"),
            )
    return len(current), sum(_ready(p) for p in current)


def _set_status(store: StoreBase, obj: Obj, status: dict[str, Any], stamp: str) -> None:
    """Write ``status`` (with the time in ``stamp``) when it changed, so an unchanged object wakes no one."""
    old = obj.get("status") or {}
    if {k: v for k, v in old.items() if k != stamp} != status:
        meta = obj["metadata"]
        store.update(
            obj["kind"],
            meta.get("namespace", ""),
            meta["name"],
            lambda o: o.__setitem__("status", {**status, stamp: now_rfc3339()}),
        )


class DeploymentController:
    kind = "Deployment"

    def __init__(self, store: StoreBase, addresses: Addresses) -> None:
        self.store, self.addresses = store, addresses

    def reconcile(self, dep: Obj) -> None:
        spec = dep.get("spec", {})
        want = int(spec.get("replicas", 1))
        pods, ready = _run_template(self.store, dep, dep["metadata"]["name"], spec.get("template", {}), want)
        status: dict[str, Any] = {
            "observedGeneration": 1,
            "replicas": pods,
            "updatedReplicas": pods,
            "readyReplicas": ready,
            "availableReplicas": ready,
            "conditions": [
                {
                    "type": "Available",
                    "status": "True" if ready >= want else "False",
                    "reason": "MinimumReplicasAvailable" if ready >= want else "MinimumReplicasUnavailable",
                }
            ],
        }
        _set_status(self.store, dep, status, "lastUpdateTime")


# Fields of a KServe predictor that are not pod spec fields (the component extension and the model runtimes).
_PREDICTOR_ONLY = {
    "minReplicas", "maxReplicas", "scaleTarget", "scaleMetric", "scaleMetricType", "autoScaling",
    "containerConcurrency", "timeout", "canaryTrafficPercent", "logger", "batcher", "labels", "annotations",
    "deploymentStrategy", "storageUris", "storageContainerName", "workerSpec", "model",
    "tensorflow", "sklearn", "xgboost", "lightgbm", "onnx", "pytorch", "triton", "pmml", "paddle", "huggingface",
}  # fmt: skip


class InferenceServiceController:
    kind = "InferenceService"

    def __init__(self, store: StoreBase, addresses: Addresses) -> None:
        self.store, self.addresses = store, addresses

    def reconcile(self, isvc: Obj) -> None:
        meta = isvc["metadata"]
        ns, name = meta.get("namespace", ""), meta["name"]
        predictor = (isvc.get("spec") or {}).get("predictor") or {}
        url = f"http://{name}-predictor.{ns}.svc.cluster.local"
        if not predictor.get("containers"):
            message = "the rehearsal runs custom predictors (spec.predictor.containers) only; KServe's model runtimes "
            message += "need a cluster"
            cond = {"status": "False", "reason": "RehearsalError", "message": message}
            failed: dict[str, Any] = {"conditions": [{"type": "PredictorReady", **cond}, {"type": "Ready", **cond}]}
            _set_status(self.store, isvc, failed, "observedAt")
            return
        app = {"app": f"isvc.{name}-predictor"}
        template = {
            "metadata": {
                "labels": {**(meta.get("labels") or {}), **(predictor.get("labels") or {}), **app},
                "annotations": {**(meta.get("annotations") or {}), **(predictor.get("annotations") or {})},
            },
            "spec": {k: v for k, v in predictor.items() if k not in _PREDICTOR_ONLY},
        }
        self._service(isvc, f"{name}-predictor", app, predictor["containers"][0].get("ports") or [])
        want = int(predictor.get("minReplicas", 1) or 1)
        _, ready = _run_template(self.store, isvc, f"{name}-predictor", template, want)
        ok = {"status": "True"} if ready >= want else {"status": "False", "reason": "PredictorNotReady"}
        status: dict[str, Any] = {
            "url": url,
            "address": {"url": url},
            "components": {"predictor": {"url": url}},
            "conditions": [{"type": "PredictorReady", **ok}, {"type": "Ready", **ok}],
        }
        _set_status(self.store, isvc, status, "observedAt")

    def _service(self, isvc: Obj, name: str, selector: dict[str, str], ports: list[dict[str, Any]]) -> None:
        """The predictor's Service as KServe's raw mode makes it: port 80 -> the first container port."""
        ns = isvc["metadata"].get("namespace", "")
        if self.store.get("Service", ns, name) is not None:
            return
        first = ports[0]["containerPort"] if ports else 8080
        svc_ports = [{"name": (ports[0].get("name") if ports else None) or name, "port": 80, "targetPort": first}]
        svc_ports += [
            {"name": p.get("name", ""), "port": p["containerPort"], "targetPort": p["containerPort"]} for p in ports[1:]
        ]
        self.store.create(
            {
                "apiVersion": "v1",
                "kind": "Service",
                "metadata": {"name": name, "namespace": ns, "ownerReferences": [owner_reference(isvc)]},
                "spec": {"selector": selector, "ports": svc_ports},
            }
        )
