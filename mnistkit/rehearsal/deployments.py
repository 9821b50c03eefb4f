"""Deployments as the rehearsal runs them: ``spec.replicas`` pods from the template, replaced when it changes.

No ReplicaSet layer: the pods are named ``<deployment>-<template hash>-<index>``, owned by the Deployment (so
deleting it removes them), labelled with ``pod-template-hash``. An ``apply`` that changes the template
replaces the pods (a rollout with ``maxSurge`` 0). ``status``: ``replicas``, ``updatedReplicas``,
``readyReplicas``, ``availableReplicas`` and the ``Available`` condition, from the pods' readiness.
Services need no controller: ``Addresses.service`` finds the pod behind a Service port.
"""

from __future__ import annotations

import hashlib
import json
from typing import Any

from mnistkit.rehearsal.jobs import create_pod
from mnistkit.rehearsal.pods import Addresses
from mnistkit.rehearsal.store import Obj, StoreBase, now_rfc3339

__all__ = ["DeploymentController"]


def _ready(pod: Obj) -> bool:
    st = pod.get("status", {})
    cs = st.get("containerStatuses", [])
    return st.get("phase") == "Running" and bool(cs) and all(c.get("ready") for c in cs)


class DeploymentController:
    kind = "Deployment"

    def __init__(self, store: StoreBase, addresses: Addresses) -> None:
        self.store, self.addresses = store, addresses

    def reconcile(self, dep: Obj) -> None:
        meta, spec = dep["metadata"], dep.get("spec", {})
        ns, name, uid = meta.get("namespace", ""), meta["name"], meta["uid"]
        template = spec.get("template", {})
        digest = hashlib.sha256(json.dumps(template, sort_keys=True).encode()).hexdigest()[:10]
        owned = [
            p
            for p in self.store.list("Pod", ns)
            if any(r.get("uid") == uid for r in p["metadata"].get("ownerReferences", []))
        ]
        current = [p for p in owned if p["metadata"].get("labels", {}).get("pod-template-hash") == digest]
        for p in owned:
            if p not in current:
                self.store.delete("Pod", ns, p["metadata"]["name"])
        want = int(spec.get("replicas", 1))
        names = {p["metadata"]["name"] for p in current}
        for i in range(want):
            pod_name = f"{name}-{digest}-{i}"
            if pod_name not in names:
                create_pod(
                    self.store,
                    dep,
                    pod_name,
                    template,
                    {"pod-template-hash": digest},
                    restart_policy=template.get("spec", {}).get("restartPolicy", "Always"),
                )
        ready = sum(_ready(p) for p in current)
        status: dict[str, Any] = {
            "observedGeneration": 1,
            "replicas": len(current),
            "updatedReplicas": len(current),
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
        old = dep.get("status") or {}
        if {k: v for k, v in old.items() if k != "lastUpdateTime"} != status:
            self.store.update(
                "Deployment", ns, name, lambda o: o.__setitem__("status", {**status, "lastUpdateTime": now_rfc3339()})
            )
