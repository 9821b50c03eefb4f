"""Who this process is in a worker group: ``TF_CONFIG`` as a TFJob or the local engine writes it."""

from __future__ import annotations

import json
import os
from dataclasses import dataclass

__all__ = ["ClusterInfo", "cluster_info"]


@dataclass(frozen=True)
class ClusterInfo:
    """What ``TF_CONFIG`` says about this process."""

    task_type: str
    task_index: int
    workers: list[str]
    has_chief: bool = False

    @property
    def num_workers(self) -> int:
        return max(1, len(self.workers))

    @property
    def is_chief(self) -> bool:
        if self.has_chief:
            return self.task_type == "chief"
        return self.task_type == "worker" and self.task_index == 0

    @property
    def address(self) -> str:
        """This task's own ``host:port`` (chief first, then workers, as in ``workers``)."""
        if not self.workers:
            return ""
        offset = 0 if self.task_type == "chief" else int(self.has_chief)
        return self.workers[offset + self.task_index]

    @property
    def multi_worker(self) -> bool:
        return len(self.workers) > 1


def cluster_info(tf_config: str | None = None) -> ClusterInfo:
    """Parse ``TF_CONFIG``. A TFJob with a Chief replica lists it under ``chief``; the chief trains too."""
    raw = os.environ.get("TF_CONFIG", "") if tf_config is None else tf_config
    if not raw:
        return ClusterInfo("worker", 0, [])
    try:
        cfg = json.loads(raw)
        cluster = cfg.get("cluster", {})
        task = cfg.get("task", {})
        addrs = list(cluster.get("chief", [])) + list(cluster.get("worker", []))
        chief = list(cluster.get("chief", []))
        return ClusterInfo(str(task.get("type", "worker")), int(task.get("index", 0)), addrs, bool(chief))
    except (ValueError, TypeError, AttributeError) as exc:
        raise SystemExit(f"trainer: TF_CONFIG is not valid JSON cluster spec: {exc}") from None
