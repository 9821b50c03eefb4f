"""Inside a JupyterHub/Kubeflow notebook: who am I, which namespace, which room, is S3 set up.

Reuses what the cluster side already provides: the namespace comes from the pod's service-account
file (``mnistkit.cluster.identity.pod_namespace``, as ``mnistkit.cluster.connect`` reads it), the S3
keys from the environment the ``mnistkit-s3`` PodDefault injects from the ``aws-creds`` Secret (read by
``S3Config.from_env``). What this adds is the workshop's part: the participant name from
``JUPYTERHUB_USER`` and the room from ``MNISTKIT_WORKSHOP_ROOM`` (set by the hub for everyone).
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass

from mnistkit.errors import MnistkitError

__all__ = ["HubContext", "hub_context"]


@dataclass(frozen=True)
class HubContext:
    in_hub: bool  # JUPYTERHUB_USER is set
    in_cluster: bool  # a Kubernetes service account is mounted
    user: str
    participant: str  # "" when no valid name could be made
    namespace: str
    room: str
    s3_configured: bool  # the PodDefault (or the user) set the S3 variables
    problems: tuple[str, ...] = ()

    def __str__(self) -> str:
        lines = [
            f"user:        {self.user or '(unknown)'}{' (JupyterHub)' if self.in_hub else ''}",
            f"participant: {self.participant or '(none)'}",
            f"room:        {self.room or '(not set: MNISTKIT_WORKSHOP_ROOM)'}",
            f"namespace:   {self.namespace or '(not in a cluster)'}",
            f"S3:          {'configured' if self.s3_configured else 'not configured'}",
        ]
        return "\n".join(lines + [f"problem:     {p}" for p in self.problems])


def hub_context(env: Mapping[str, str] | None = None, namespace_file: str | None = None) -> HubContext:
    """Read the notebook's surroundings; never raises (problems are listed as sentences)."""
    from mnistkit.cluster.identity import pod_namespace
    from mnistkit.workshop.names import default_participant, validate_room

    env = os.environ if env is None else env
    namespace = pod_namespace(namespace_file)
    problems = []
    user = env.get("JUPYTERHUB_USER", "") or env.get("USER", "")
    try:
        participant = default_participant(env, namespace_file)
    except MnistkitError as exc:
        participant = ""
        problems.append(str(exc))
    room = env.get("MNISTKIT_WORKSHOP_ROOM", "")
    if room:
        try:
            validate_room(room)
        except MnistkitError as exc:
            problems.append(str(exc))
    s3_configured = (
        bool(env.get("BUCKET_NAME")) and bool(env.get("AWS_ACCESS_KEY_ID")) and bool(env.get("AWS_SECRET_ACCESS_KEY"))
    )
    if env.get("JUPYTERHUB_USER") and not s3_configured:
        problems.append(
            "the S3 variables are not set: tick the PodDefault 'mnistkit: S3 settings and the aws-creds "
            "keys' when creating the notebook, or fill in the S3 panel"
        )
    return HubContext(
        in_hub=bool(env.get("JUPYTERHUB_USER")),
        in_cluster=bool(env.get("KUBERNETES_SERVICE_HOST")) and bool(namespace),
        user=user,
        participant=participant,
        namespace=namespace,
        room=room,
        s3_configured=s3_configured,
        problems=tuple(problems),
    )
