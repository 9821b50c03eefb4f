"""Where training runs: one interface (``base.Engine``), a local-process engine and a Kubernetes one.

The split follows kubeflow/sdk's backends: front ends (CLI, panels, notebooks) talk to ``Engine`` and
``Job`` only, so the local engine and the Argo/TFJob engine are interchangeable.
"""

from __future__ import annotations

from importlib import import_module

from mnistkit.engines.base import ENGINE_NAMES, Engine, EpochMetrics, Job, JobState

__all__ = ["Engine", "Job", "JobState", "EpochMetrics", "ENGINE_NAMES", "get_engine"]


def get_engine(name: str, **kwargs: object) -> Engine:
    """An engine by name (``ENGINE_NAMES``); the Argo engine needs the ``[cluster]`` extra and a cluster."""
    from mnistkit.errors import ConfigError

    if name not in ENGINE_NAMES:
        raise ConfigError(f"engine must be one of {', '.join(ENGINE_NAMES)}, got {name!r}", field="engine", value=name)
    module, cls = ENGINE_NAMES[name].split(":")
    engine: Engine = getattr(import_module(module), cls)(**kwargs)
    return engine
