"""A workflow's steps and phases printed as ``argo get`` prints them, from ``status.nodes``."""

from __future__ import annotations

import datetime as dt
from typing import Any

__all__ = ["ICONS", "format_pods", "format_workflow", "step_phases"]

ICONS = {"Succeeded": "✔", "Failed": "✖", "Error": "⚠", "Running": "●", "Pending": "◷", "Skipped": "○"}


def _seconds(node: dict[str, Any]) -> str:
    start, end = node.get("startedAt"), node.get("finishedAt")
    if not start:
        return ""
    fmt = "%Y-%m-%dT%H:%M:%SZ"
    t0 = dt.datetime.strptime(start, fmt)
    t1 = dt.datetime.strptime(end, fmt) if end else dt.datetime.now(dt.timezone.utc).replace(tzinfo=None)
    return f"{int((t1 - t0).total_seconds())}s"


def step_phases(wf: dict[str, Any]) -> list[tuple[str, str, str]]:
    """``(step, phase, message)`` of every step node (not the grouping nodes), in start order."""
    nodes = (wf.get("status") or {}).get("nodes") or {}
    rows = [n for n in nodes.values() if n.get("type") not in ("Steps", "StepGroup")]
    rows.sort(key=lambda n: (n.get("startedAt", ""), n.get("name", "")))
    return [(n.get("displayName", ""), n.get("phase", ""), n.get("message", "")) for n in rows]


def format_workflow(wf: dict[str, Any]) -> str:
    st = wf.get("status") or {}
    nodes = st.get("nodes") or {}
    lines = [
        f"Name:                {wf['metadata']['name']}",
        f"Namespace:           {wf['metadata'].get('namespace', '')}",
        f"Status:              {st.get('phase', 'Pending')}",
    ]
    if st.get("message"):
        lines.append(f"Message:             {st['message']}")
    lines += [
        f"Started:             {st.get('startedAt', '')}",
        f"Finished:            {st.get('finishedAt', '')}",
        "",
        f"{'STEP':<40} {'TEMPLATE':<22} {'PHASE':<10} {'DURATION':<9} MESSAGE",
    ]
    children = {c for n in nodes.values() for c in n.get("children", [])}
    roots = sorted((n for i, n in nodes.items() if i not in children), key=lambda n: n.get("startedAt", ""))

    def walk(node: dict[str, Any], depth: int) -> None:
        if node.get("type") != "StepGroup":
            icon = ICONS.get(node.get("phase", ""), " ")
            label = f"{'  ' * depth}{icon} {node.get('displayName', '')}"
            lines.append(
                f"{label:<40} {node.get('templateName', ''):<22} {node.get('phase', ''):<10} "
                f"{_seconds(node):<9} {node.get('message', '')}".rstrip()
            )
            depth += 1
        for child in node.get("children", []):
            if child in nodes:
                walk(nodes[child], depth)

    for root in roots:
        walk(root, 0)
    return "\n".join(lines)


def format_pods(pods: list[dict[str, Any]]) -> str:
    """``kubectl get pods``: name, phase, restarts and, when a pod could not start, why."""
    lines = [f"{'POD':<60} {'PHASE':<10} {'RESTARTS':<8} MESSAGE"]
    for pod in pods:
        st = pod.get("status") or {}
        restarts = sum(c.get("restartCount", 0) for c in st.get("containerStatuses", []))
        why = f"{st.get('reason', '')}: {st.get('message', '')}" if st.get("message") else ""
        lines.append(f"{pod['metadata']['name']:<60} {st.get('phase', ''):<10} {restarts:<8} {why}".rstrip())
    return "\n".join(lines)
