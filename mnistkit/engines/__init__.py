"""Where training runs: one interface (``base.Engine``), a local-process engine and a Kubernetes one.

The split follows kubeflow/sdk's backends: front ends (CLI, panels, notebooks) talk to ``Engine`` and
``Job`` only, so the local engine and the Argo/TFJob engine are interchangeable.
"""

from __future__ import annotations

from mnistkit.engines.base import Engine, EpochMetrics, Job, JobState

__all__ = ["Engine", "Job", "JobState", "EpochMetrics", "get_engine"]


def get_engine(name: str, **kwargs: object) -> Engine:
    """``"local"`` or ``"argo"``; the Argo engine needs the ``[cluster]`` extra and a reachable cluster."""
    from mnistkit.errors import ConfigError

    if name == "local":
        from mnistkit.engines.local import LocalEngine

        return LocalEngine(**kwargs)  # type: ignore[arg-type]
    if name in ("argo", "kubernetes", "cluster"):
        from mnistkit.engines.argo import ArgoEngine  # type: ignore[import-not-found]

        return ArgoEngine(**kwargs)  # type: ignore[no-any-return]
    raise ConfigError(f"engine must be 'local' or 'argo', got {name!r}", field="engine", value=name)
