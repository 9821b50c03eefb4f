"""An Argo Workflow interpreter for the templates mnistkit renders: steps, resources, containers, exit handler.

* **Parameters**: ``spec.arguments.parameters`` (``argo submit -p`` sets their values before the run), merged
  over a ``workflowTemplateRef``'s; ``{{workflow.name|namespace|uid|serviceAccountName|creationTimestamp}}``,
  ``{{workflow.parameters.X}}``, ``{{inputs.parameters.X}}`` (a step's ``arguments``, else the input's
  ``value``/``default``), ``{{steps.S.outputs.parameters.P}}``, ``{{steps.S.status}}``; in the exit handler also
  ``{{workflow.status}}`` and ``{{workflow.failures}}`` (JSON of the failed nodes). A template is substituted
  as a whole before it runs; an unresolved name fails the step.
* **steps**: groups in order; the steps of a group run in parallel; ``when`` (``expressions.evaluate_when``)
  skips a step (phase ``Skipped``); a failed step fails its group unless ``continueOn.failed``/``error``.
* **resource** templates: ``resource.run_resource``. **container** templates: a Pod ``<wf>-<template>-<n>``
  run by the rehearsal's kubelet, failed when the container exits non-zero (``Error (exit code N)``).
* **Deadlines**: ``spec.activeDeadlineSeconds`` fails every running step ("Step exceeded its deadline") and the
  workflow; a template's ``activeDeadlineSeconds`` fails that step ("Pod was active on the node longer than the
  specified deadline"); the exit handler still runs. ``retryStrategy.limit`` re-runs a failed template.
  ``spec.shutdown: Stop`` fails running steps and runs the exit handler; ``Terminate`` skips it too.
* **Phases**: the entrypoint's outcome; a failed exit handler fails a workflow that had succeeded (Argo's
  ``operator.go``). ``status.nodes`` (Steps, StepGroup, Pod, Skipped nodes with phase, message, times) is what
  ``argo get`` and ``mnistkit get`` print.
"""

from __future__ import annotations

import copy
import json
import threading
import time
import uuid
from collections.abc import Callable, Mapping
from typing import Any

from mnistkit.errors import ConfigError
from mnistkit.rehearsal.expressions import evaluate_when, substitute, substitute_all
from mnistkit.rehearsal.jobs import owner_reference
from mnistkit.rehearsal.resource import StepFailed, run_resource
from mnistkit.rehearsal.store import Obj, StoreBase, now_rfc3339

__all__ = ["DEADLINE_MESSAGE", "WorkflowRun"]

DEADLINE_MESSAGE = "Step exceeded its deadline"
_POD_DEADLINE_MESSAGE = "Pod was active on the node longer than the specified deadline"


class _Stop(Exception):
    def __init__(self, message: str, skip_exit: bool = False) -> None:
        super().__init__(message)
        self.skip_exit = skip_exit


class WorkflowRun:
    """Runs one Workflow object of the store to its end in a thread; every change is written to its status."""

    def __init__(self, store: StoreBase, namespace: str, name: str, *, poll: float = 1.0) -> None:
        self.store, self.ns, self.name, self.poll = store, namespace, name, poll
        self.lock = threading.RLock()
        self.thread = threading.Thread(target=self._main, daemon=True, name=f"workflow-{name}")
        self.started = 0.0
        self.finished = threading.Event()
        self.deadline: float | None = None
        self.templates: dict[str, dict[str, Any]] = {}
        self.failures: list[dict[str, str]] = []
        self.scope: dict[str, str] = {}

    def start(self) -> WorkflowRun:
        self.thread.start()
        return self

    # ---- status ------------------------------------------------------------------------------
    def _node(self, node_id: str, **fields: Any) -> None:
        def fn(o: Obj) -> None:
            nodes = o.setdefault("status", {}).setdefault("nodes", {})
            nodes.setdefault(node_id, {"id": node_id}).update(fields)

        self.store.update("Workflow", self.ns, self.name, fn)

    def _wf_status(self, **fields: Any) -> None:
        self.store.update("Workflow", self.ns, self.name, lambda o: o.setdefault("status", {}).update(fields))

    def _new_node(self, name: str, display: str, template: str, ntype: str, parent: str | None, **fields: Any) -> str:
        node_id = f"{self.name}-{uuid.uuid4().int % 10**10}"
        fields = {"phase": "Running", **fields}
        self._node(
            node_id,
            name=name,
            displayName=display,
            templateName=template,
            type=ntype,
            startedAt=now_rfc3339(),
            **fields,
        )
        if parent:

            def fn(o: Obj) -> None:
                children = o["status"]["nodes"][parent].setdefault("children", [])
                children.append(node_id)

            self.store.update("Workflow", self.ns, self.name, fn)
        return node_id

    def _end_node(self, node_id: str, phase: str, message: str = "", **extra: Any) -> None:
        self._node(node_id, phase=phase, finishedAt=now_rfc3339(), **({"message": message} if message else {}), **extra)

    # ---- checks ------------------------------------------------------------------------------
    def _check(self, step_deadline: float | None = None, exiting: bool = False) -> None:
        wf = self.store.get("Workflow", self.ns, self.name)
        if wf is None:
            raise _Stop("workflow deleted", skip_exit=True)
        shutdown = wf.get("spec", {}).get("shutdown", "")
        if shutdown == "Terminate":
            raise _Stop("Stopped with strategy 'Terminate'", skip_exit=True)
        if not exiting:
            if shutdown == "Stop":
                raise _Stop("Stopped with strategy 'Stop'")
            if self.deadline is not None and time.monotonic() >= self.deadline:
                raise _Stop(DEADLINE_MESSAGE)
        if step_deadline is not None and time.monotonic() >= step_deadline:
            raise StepFailed(_POD_DEADLINE_MESSAGE, field="activeDeadlineSeconds")

    # ---- templates ---------------------------------------------------------------------------
    def _template(self, name: str) -> dict[str, Any]:
        t = self.templates.get(name)
        if t is None:
            raise StepFailed(f"template {name!r} not found", field="template", value=name)
        return t

    def _run_template(
        self, tname: str, args: Mapping[str, str], node_name: str, display: str, parent: str | None, exiting: bool
    ) -> tuple[str, dict[str, str]]:
        """Run a template as a node; returns (phase, output parameters)."""
        raw = self._template(tname)
        is_steps = "steps" in raw
        node_id = self._new_node(node_name, display, tname, "Steps" if is_steps else "Pod", parent)
        limit = int((raw.get("retryStrategy") or {}).get("limit", 0))
        phase, message, outputs = "Failed", "", {}
        for attempt in range(limit + 1):
            try:
                scope = {**self.scope, **self._inputs(raw, args)}
                if is_steps:
                    phase, message = self._run_steps(raw, scope, node_id, node_name, exiting)
                else:
                    tmpl = substitute_all(raw, scope, where=tname)
                    outputs = self._run_leaf(tmpl, node_name, exiting)
                    phase, message = "Succeeded", ""
            except (StepFailed, ConfigError) as exc:
                phase, message = "Failed", str(exc)
            except _Stop as stop:
                self._end_node(node_id, "Failed", str(stop))
                raise
            except Exception as exc:  # noqa: BLE001 - an emulation bug is the step's Error, not a hung workflow
                phase, message = "Error", f"{type(exc).__name__}: {exc}"
            if phase == "Succeeded" or attempt == limit:
                break
            self._node(node_id, message=f"retrying after: {message}")
        self._end_node(
            node_id, phase, message, outputs={"parameters": [{"name": k, "value": v} for k, v in outputs.items()]}
        )
        if phase != "Succeeded" and not is_steps:
            with self.lock:
                self.failures.append(
                    {
                        "displayName": display,
                        "message": message,
                        "templateName": tname,
                        "phase": phase,
                        "podName": node_name,
                        "finishedAt": now_rfc3339(),
                    }
                )
        return phase, outputs

    def _inputs(self, tmpl: Mapping[str, Any], args: Mapping[str, str]) -> dict[str, str]:
        out = {}
        for p in (tmpl.get("inputs") or {}).get("parameters", []):
            value = args.get(p["name"], p.get("value", p.get("default")))
            if value is None:
                raise StepFailed(f"inputs.parameters.{p['name']} was not supplied", field="inputs", value=p["name"])
            out[f"inputs.parameters.{p['name']}"] = str(value)
        return out

    def _run_leaf(self, tmpl: dict[str, Any], node_name: str, exiting: bool) -> dict[str, str]:
        deadline = tmpl.get("activeDeadlineSeconds")
        step_deadline = time.monotonic() + float(deadline) if deadline is not None else None
        wf = self.store.get("Workflow", self.ns, self.name) or {}

        def check() -> None:
            self._check(step_deadline, exiting)

        if "resource" in tmpl:
            return run_resource(self.store, tmpl, wf, check, self.poll)
        if "container" in tmpl:
            return self._run_pod(tmpl, wf, check)
        raise StepFailed(
            f"template {tmpl.get('name')!r}: only steps, resource and container are emulated",
            field="template",
            value=tmpl.get("name"),
        )

    def _run_pod(self, tmpl: dict[str, Any], wf: Obj, check: Callable[[], None]) -> dict[str, str]:
        container = {**tmpl["container"], "name": "main"}
        spec = wf.get("spec", {})
        pod_name = f"{self.name}-{tmpl['name']}-{uuid.uuid4().int % 10**10}"
        pod = {
            "apiVersion": "v1",
            "kind": "Pod",
            "metadata": {
                "name": pod_name,
                "namespace": self.ns,
                "labels": {"workflows.argoproj.io/workflow": self.name},
                "annotations": dict((spec.get("podMetadata") or {}).get("annotations") or {}),
                "ownerReferences": [owner_reference(wf)],
            },
            "spec": {
                "restartPolicy": "Never",
                "containers": [container],
                "serviceAccountName": spec.get("serviceAccountName", "default"),
                "volumes": tmpl.get("volumes", []),
            },
        }
        self.store.create(pod)
        try:
            while True:
                check()
                phase = ((self.store.get("Pod", self.ns, pod_name) or {}).get("status") or {}).get("phase")
                if phase in ("Succeeded", "Failed"):
                    break
                self.store.wait_for(
                    lambda: (
                        (self.store.get("Pod", self.ns, pod_name) or {}).get("status", {}).get("phase")
                        in ("Succeeded", "Failed")
                    ),
                    self.poll,
                )
        except (StepFailed, _Stop):
            self.store.delete("Pod", self.ns, pod_name)
            raise
        final = self.store.get("Pod", self.ns, pod_name) or {}
        statuses = final.get("status", {}).get("containerStatuses", [])
        code = next((c["state"]["terminated"]["exitCode"] for c in statuses if "terminated" in c.get("state", {})), 1)
        if phase != "Succeeded":
            raise StepFailed(f"Error (exit code {code})", field="container", value=code)
        return {}

    def _run_step(
        self,
        results: dict[str, tuple[str, dict[str, str]]],
        step: dict[str, Any],
        args: dict[str, str],
        sname: str,
        group_id: str,
        exiting: bool,
    ) -> None:
        try:
            results[step["name"]] = self._run_template(step["template"], args, sname, step["name"], group_id, exiting)
        except _Stop as stop:
            results[step["name"]] = ("Stop", {"message": str(stop), "skip": str(stop.skip_exit)})

    def _run_steps(
        self, tmpl: dict[str, Any], scope: dict[str, str], node_id: str, node_name: str, exiting: bool
    ) -> tuple[str, str]:
        local = dict(scope)
        for gi, group in enumerate(tmpl["steps"]):
            group_name = f"{node_name}[{gi}]"
            group_id = self._new_node(group_name, f"[{gi}]", tmpl["name"], "StepGroup", node_id)
            results: dict[str, tuple[str, dict[str, str]]] = {}
            threads = []
            for step in group:
                when = substitute(step.get("when", ""), local, where=step["name"])
                sname = f"{group_name}.{step['name']}"
                if not evaluate_when(when):
                    self._new_node(
                        sname,
                        step["name"],
                        step["template"],
                        "Skipped",
                        group_id,
                        phase="Skipped",
                        message=f"when '{when}' evaluated false",
                        finishedAt=now_rfc3339(),
                    )
                    results[step["name"]] = ("Skipped", {})
                    continue
                args = {
                    p["name"]: substitute(str(p.get("value", "")), local, where=step["name"])
                    for p in (step.get("arguments") or {}).get("parameters", [])
                }
                threads.append(
                    threading.Thread(
                        target=self._run_step, daemon=True, args=(results, step, args, sname, group_id, exiting)
                    )
                )
            for t in threads:
                t.start()
            for t in threads:
                t.join()
            stopped = [r for r in results.values() if r[0] == "Stop"]
            if stopped:
                self._end_node(group_id, "Failed", stopped[0][1]["message"])
                raise _Stop(stopped[0][1]["message"], skip_exit=stopped[0][1]["skip"] == "True")
            failed = []
            for step in group:
                phase, outputs = results[step["name"]]
                local[f"steps.{step['name']}.status"] = phase
                for k, v in outputs.items():
                    local[f"steps.{step['name']}.outputs.parameters.{k}"] = v
                cont = step.get("continueOn") or {}
                if phase in ("Failed", "Error") and not cont.get("failed" if phase == "Failed" else "error"):
                    failed.append(step["name"])
            if failed:
                msg = f"child '{group_name}.{failed[0]}' failed"
                self._end_node(group_id, "Failed", msg)
                return "Failed", msg
            self._end_node(group_id, "Succeeded")
        return "Succeeded", ""

    # ---- the run ------------------------------------------------------------------------------
    def _load(self) -> Obj:
        wf = self.store.get("Workflow", self.ns, self.name)
        if wf is None:
            raise _Stop("workflow deleted", skip_exit=True)
        spec = copy.deepcopy(wf.get("spec", {}))
        ref = spec.get("workflowTemplateRef")
        if ref:
            wt = self.store.get("WorkflowTemplate", self.ns, ref.get("name", ""))
            if wt is None:
                raise StepFailed(f'workflowtemplates "{ref.get("name")}" not found', field="workflowTemplateRef")
            base = copy.deepcopy(wt["spec"])
            given = {p["name"]: p for p in (spec.get("arguments") or {}).get("parameters", [])}
            params = [{**p, **given.pop(p["name"], {})} for p in (base.get("arguments") or {}).get("parameters", [])]
            base["arguments"] = {"parameters": params + list(given.values())}
            spec = {**base, **{k: v for k, v in spec.items() if k not in ("workflowTemplateRef", "arguments")}}
        return {**wf, "spec": spec}

    def _main(self) -> None:
        self.started = time.monotonic()
        try:
            self._execute()
        finally:
            self.finished.set()

    def _execute(self) -> None:
        phase, message = "Failed", ""
        try:
            wf = self._load()
        except (StepFailed, _Stop) as exc:
            self._wf_status(phase="Error", message=str(exc), startedAt=now_rfc3339(), finishedAt=now_rfc3339())
            return
        spec, meta = wf["spec"], wf["metadata"]
        self.templates = {t["name"]: t for t in spec.get("templates", [])}
        deadline = spec.get("activeDeadlineSeconds")
        self.deadline = self.started + float(deadline) if deadline is not None else None
        self.scope = {
            "workflow.name": self.name,
            "workflow.namespace": self.ns,
            "workflow.uid": meta.get("uid", ""),
            "workflow.serviceAccountName": spec.get("serviceAccountName", "default"),
            "workflow.creationTimestamp": meta.get("creationTimestamp", ""),
        }
        for p in (spec.get("arguments") or {}).get("parameters", []):
            self.scope[f"workflow.parameters.{p['name']}"] = str(p.get("value", p.get("default", "")))
        self._wf_status(phase="Running", startedAt=now_rfc3339())
        skip_exit = False
        try:
            phase, _ = self._run_template(spec["entrypoint"], {}, self.name, self.name, None, exiting=False)
            message = self._first_message()
        except _Stop as stop:
            phase, message, skip_exit = "Failed", str(stop), stop.skip_exit
        except (StepFailed, ConfigError) as exc:
            phase, message = "Error", str(exc)
        if spec.get("onExit") and not skip_exit:
            self.scope["workflow.status"] = phase
            self.scope["workflow.failures"] = json.dumps(self.failures)
            try:
                exit_phase, _ = self._run_template(
                    spec["onExit"], {}, f"{self.name}.onExit", f"{self.name}.onExit", None, exiting=True
                )
            except _Stop:
                exit_phase = "Failed"
            if phase == "Succeeded" and exit_phase != "Succeeded":
                phase, message = "Failed", self._first_message()
        if self.store.get("Workflow", self.ns, self.name) is not None:
            self._wf_status(phase=phase, finishedAt=now_rfc3339(), **({"message": message} if message else {}))

    def _first_message(self) -> str:
        return self.failures[0]["message"] if self.failures else ""
