"""What ``mnistkit list``/``get`` and the training monitor show of one Argo workflow: phase, times, steps."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from mnistkit.manifests.common import JOB_LABEL

__all__ = ["WorkflowInfo", "TERMINAL_PHASES"]

TERMINAL_PHASES = ("Succeeded", "Failed", "Error")


@dataclass(frozen=True)
class WorkflowInfo:
    """What ``mnistkit list``/``get`` show for one workflow."""

    name: str
    namespace: str
    phase: str
    job_name: str
    started: str
    finished: str
    message: str
    nodes: tuple[tuple[str, str, str], ...]  # (step, phase, message)

    @classmethod
    def from_object(cls, wf: dict[str, Any]) -> WorkflowInfo:
        st = wf.get("status") or {}
        params = {p["name"]: p.get("value", "") for p in wf.get("spec", {}).get("arguments", {}).get("parameters", [])}
        # The steps a person cares about: pods and resource steps, not Argo's grouping nodes; in the order
        # they started (steps not started yet, e.g. skipped ones, last, by name).
        steps = sorted(
            (
                n.get("startedAt") or "~",
                n.get("displayName", n.get("name", "")),
                n.get("phase", ""),
                n.get("message", ""),
            )
            for n in (st.get("nodes") or {}).values()
            if n.get("type") not in ("Steps", "StepGroup", "DAG", "TaskGroup")
        )
        nodes = tuple((name, phase, message) for _started, name, phase, message in steps)
        return cls(
            name=wf["metadata"]["name"],
            namespace=wf["metadata"].get("namespace", ""),
            phase=st.get("phase") or "Pending",
            job_name=params.get("job-name", wf["metadata"].get("labels", {}).get(JOB_LABEL, "")),
            started=st.get("startedAt") or "",
            finished=st.get("finishedAt") or "",
            message=st.get("message") or "",
            nodes=nodes,
        )

    @property
    def done(self) -> bool:
        return self.phase in TERMINAL_PHASES
