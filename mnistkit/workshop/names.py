"""Names in a workshop: the room and each participant, as S3 prefixes and Kubernetes-friendly labels.

A participant's name becomes part of an S3 prefix (``workshop/<room>/<participant>/``) and of job
names, so it is a DNS-1123 label: lowercase letters, digits and ``-``. Hub user names are often not
(``Jane.Doe@example.org``); ``participant_from_user`` folds them into a label and, when folding
changed anything, appends a short hash of the original so that ``jane.doe`` and ``jane-doe`` never
share a prefix (and so never reset or overwrite each other's work).
"""

from __future__ import annotations

import hashlib
import os
import re
from collections.abc import Mapping

from mnistkit.config import validate_job_name
from mnistkit.errors import ConfigError

__all__ = [
    "validate_participant",
    "validate_room",
    "participant_from_user",
    "default_participant",
    "MAX_PARTICIPANT_LEN",
    "SHARED_DIR",
]

MAX_PARTICIPANT_LEN = 30  # leaves room in a 52-character job name for "mnist-" and the timestamp
SHARED_DIR = "_shared"  # the room's shared prefix: '_' can't start a participant name, so it never collides
_LABEL_RE = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$")


def _validate(name: str, field_name: str, max_len: int) -> str:
    # The same DNS-1123 rule as job names: a participant's name ends up in job names and S3 prefixes.
    return validate_job_name(name, field_name, max_len=max_len)


def validate_participant(name: str) -> str:
    """A participant name: a DNS-1123 label of at most ``MAX_PARTICIPANT_LEN`` characters."""
    return _validate(name, "participant", MAX_PARTICIPANT_LEN)


def validate_room(name: str) -> str:
    """A room name (e.g. ``pydata-2026``): same rules as participants, up to 40 characters."""
    return _validate(name, "room", 40)


def participant_from_user(user: str) -> str:
    """A hub user name -> a participant name; unchanged when it is valid already.

    ``"Jane.Doe@Example.org"`` -> ``"jane-doe-example-org-<4 hex>"``; the hash is of the original name,
    so two users whose names fold to the same label still get different prefixes.
    """
    if not user or not user.strip():
        raise ConfigError("the user name is empty: pass participant='your-name'", field="participant", value=user)
    if len(user) <= MAX_PARTICIPANT_LEN and _LABEL_RE.match(user):
        return user
    digest = hashlib.sha256(user.encode("utf-8")).hexdigest()[:4]
    label = re.sub(r"[^a-z0-9]+", "-", user.lower()).strip("-")
    label = label[: MAX_PARTICIPANT_LEN - 5].strip("-") or "user"
    return validate_participant(f"{label}-{digest}")


def default_participant(env: Mapping[str, str] | None = None, namespace_file: str | None = None) -> str:
    """``MNISTKIT_PARTICIPANT`` if set (validated as is), else the hub user: ``JUPYTERHUB_USER``, else the
    pod's namespace (a Kubeflow profile is one per person, and there every ``$USER`` is ``jovyan``),
    else ``$USER`` on a laptop. Reuses ``mnistkit.cluster.identity.current_user``."""
    from mnistkit.cluster.identity import current_user

    env = os.environ if env is None else env
    explicit = env.get("MNISTKIT_PARTICIPANT", "")
    if explicit:
        return validate_participant(explicit)
    user = current_user(env, namespace_file)
    if not user or (user == "user" and not env.get("USER")):  # current_user's last-resort placeholder
        raise ConfigError(
            "no participant name: set JUPYTERHUB_USER or MNISTKIT_PARTICIPANT, or pass participant='your-name'",
            field="participant",
        )
    if user == "jovyan":
        raise ConfigError(
            "every Kubeflow notebook runs as 'jovyan', which would put the whole room in one workspace: set "
            "MNISTKIT_PARTICIPANT or pass participant='your-name'",
            field="participant",
            value=user,
        )
    return participant_from_user(user)
