"""``mnistkit delete``: tear down everything one job created, and list what is left.

A job's objects all carry its ``JOB_LABEL``: the ``model-train`` workflow (and its ``-deploy`` one), the TFJob or
TrainJob with their pods, and the TensorBoard and serving Deployments and Services. Exports on S3 stay.
``ClusterClient.delete`` and ``ClusterClient.leftovers`` are these functions.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, cast

from mnistkit.cluster.objects import name_of
from mnistkit.manifests.common import JOB_LABEL

if TYPE_CHECKING:
    from mnistkit.cluster.client import ClusterClient


__all__ = ["delete_job", "leftovers", "TRAINING_KINDS"]

KUBEFLOW = ("kubeflow.org", "v1")
TRAINER = ("trainer.kubeflow.org", "v1alpha1")
# (API group/version, plural, what `delete` counts it as): the training objects a job may have created.
TRAINING_KINDS = ((KUBEFLOW, "tfjobs"), (TRAINER, "trainjobs"))


def delete_job(c: ClusterClient, job_name: str) -> dict[str, int]:
    """Delete every object labelled with the job; returns how many objects of each kind were deleted."""
    import urllib3
    from kubernetes import client
    from kubernetes.client.exceptions import ApiException

    opts = client.V1DeleteOptions(propagation_policy="Background")
    selector = f"{JOB_LABEL}={job_name}"
    counts = {"workflows": 0, "tfjobs": 0, "trainjobs": 0, "deployments": 0, "services": 0}

    def gone(fn: Callable[..., object], *args: Any, **kw: Any) -> int:
        # DELETE is idempotent: a lost response is retried (urllib3 retries it too); a 404 on the
        # retry means it is gone, so counts are "confirmed by this call", not exact.
        for attempt in range(4):
            try:
                fn(*args, **kw)
                return 1
            except ApiException as exc:
                if exc.status == 404:
                    return 0
                raise c._api_error(exc, f"deleting {args[-1] if args else job_name}", "job_name", job_name) from None
            except (urllib3.exceptions.HTTPError, ConnectionError, OSError) as exc:
                if attempt == 3:
                    raise c._api_error(
                        exc, f"deleting job {job_name!r} (run delete again)", "job_name", job_name
                    ) from None
                time.sleep(0.1 * 2**attempt)
        return 0

    with c.explained(f"deleting job {job_name!r}", value=job_name):
        counts["workflows"] += gone(c._wf_call, "delete_namespaced_custom_object", job_name, body=opts)
        for wf in c._wf_call("list_namespaced_custom_object", label_selector=selector)["items"]:
            counts["workflows"] += gone(
                c._wf_call, "delete_namespaced_custom_object", wf["metadata"]["name"], body=opts
            )
        for api, plural in TRAINING_KINDS:
            for job in _training_objects(c, api, plural, selector):
                counts[plural] += gone(
                    c.custom.delete_namespaced_custom_object,
                    *api,
                    c.namespace,
                    plural,
                    job["metadata"]["name"],
                    body=opts,
                )
        for d in c.apps.list_namespaced_deployment(c.namespace, label_selector=selector).items:
            counts["deployments"] += gone(c.apps.delete_namespaced_deployment, name_of(d), c.namespace, body=opts)
        for s in c.core.list_namespaced_service(c.namespace, label_selector=selector).items:
            counts["services"] += gone(c.core.delete_namespaced_service, name_of(s), c.namespace, body=opts)
    return counts


def _training_objects(c: ClusterClient, api: tuple[str, str], plural: str, selector: str) -> list[dict[str, Any]]:
    """TFJobs or TrainJobs with these labels; none when the cluster lacks that CRD (a 404 on the list)."""
    from kubernetes.client.exceptions import ApiException

    try:
        found = cast(  # a dict (the client types custom objects as object)
            dict[str, Any], c.custom.list_namespaced_custom_object(*api, c.namespace, plural, label_selector=selector)
        )
    except ApiException as exc:
        if exc.status == 404:
            return []
        raise c._api_error(exc, f"listing {plural}", "job_name", selector) from None
    return list(found["items"])


def leftovers(c: ClusterClient, job_name: str) -> list[str]:
    """Objects still labelled with the job (pods included): empty after a complete teardown."""
    selector = f"{JOB_LABEL}={job_name}"
    with c.explained(f"listing what job {job_name!r} left", value=job_name):
        names = [
            f"workflow/{w['metadata']['name']}"
            for w in c._wf_call("list_namespaced_custom_object", label_selector=selector)["items"]
        ]
        names += [
            f"{plural[:-1]}/{j['metadata']['name']}"
            for api, plural in TRAINING_KINDS
            for j in _training_objects(c, api, plural, selector)
        ]
        names += [
            f"deployment/{name_of(d)}"
            for d in c.apps.list_namespaced_deployment(c.namespace, label_selector=selector).items
        ]
        names += [
            f"service/{name_of(s)}" for s in c.core.list_namespaced_service(c.namespace, label_selector=selector).items
        ]
        names += [f"pod/{name_of(p)}" for p in c.core.list_namespaced_pod(c.namespace, label_selector=selector).items]
    return names
