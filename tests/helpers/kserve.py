"""What KServe (v0.20.0) does with an InferenceService's metadata, for tests that check the rendered ones.

Predictor pods' labels: ``pkg/controller/v1beta1/inferenceservice/components/predictor.go`` ``buildObjectMeta``
unions the ServingRuntime's labels, the InferenceService's labels (all of them), ``spec.predictor.labels``, and
``serving.kserve.io/inferenceservice: <name>`` and ``component: predictor``; the raw Deployment adds
``app: isvc.<name>-predictor`` (``reconcilers/deployment``). mnistkit renders no ServingRuntime labels.
"""

from __future__ import annotations

from typing import Any

__all__ = ["predictor_pod_labels"]


def predictor_pod_labels(isvc: dict[str, Any]) -> dict[str, str]:
    name = isvc["metadata"]["name"]
    predictor = isvc["spec"]["predictor"]
    return {
        **(isvc["metadata"].get("labels") or {}),
        **(predictor.get("labels") or {}),
        "serving.kserve.io/inferenceservice": name,
        "component": "predictor",
        "app": f"isvc.{name}-predictor",
    }
