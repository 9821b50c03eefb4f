"""Local worker processes die with their owner (a notebook kernel, a script), never outliving it.

Workers start in their own process group (so a restart can SIGKILL a whole group at once), which also
means nothing kills them when their owner goes: a restarted kernel would leave them holding ports and
writing to the model dir. Two guards, because neither covers every way an owner goes:

* ``atexit``: an owner that exits (a kernel shut down or restarted cleanly, ``sys.exit``) SIGKILLs the
  groups it still runs;
* ``PR_SET_PDEATHSIG`` (Linux): the kernel SIGKILLs a worker when the thread that started it dies, which
  also covers an owner that is SIGKILLed or crashes. The supervisor thread that starts a group lives until
  the group has ended, so this fires only when the owner itself dies.
"""

from __future__ import annotations

import atexit
import ctypes
import os
import signal
import sys
import threading
import weakref
from collections.abc import Callable
from typing import Protocol

__all__ = ["die_with_owner", "kill_at_exit"]

_PR_SET_PDEATHSIG = 1


def _libc_prctl() -> Callable[..., int] | None:
    if not sys.platform.startswith("linux"):
        return None
    try:
        prctl: Callable[..., int] = ctypes.CDLL(None, use_errno=True).prctl
    except (OSError, AttributeError):
        return None
    return prctl


# Resolved once in the owner: the function runs in the forked child, where looking it up could take locks.
_PRCTL = _libc_prctl()


def die_with_owner() -> Callable[[], None] | None:
    """A ``preexec_fn`` that asks the kernel to SIGKILL the child when its starter goes (None off Linux)."""
    if _PRCTL is None:
        return None
    owner, prctl = os.getpid(), _PRCTL

    def preexec() -> None:
        prctl(_PR_SET_PDEATHSIG, int(signal.SIGKILL))
        if os.getppid() != owner:  # the owner died between fork and prctl: nobody would signal us
            os._exit(1)

    return preexec


class _Killable(Protocol):
    def _kill_group(self) -> None: ...


_live: weakref.WeakSet[_Killable] = weakref.WeakSet()
_lock = threading.Lock()


def kill_at_exit(job: _Killable) -> None:
    """Kill ``job``'s process group when this interpreter exits (a no-op for groups already gone)."""
    with _lock:
        _live.add(job)


@atexit.register
def _kill_all() -> None:
    with _lock:
        jobs = list(_live)
    for job in jobs:
        job._kill_group()
