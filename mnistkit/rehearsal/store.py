"""The rehearsal's API server: Kubernetes objects in memory, with the semantics the controllers rely on.

``create`` (``generateName``, ``uid``, ``resourceVersion``, ``creationTimestamp``, 409 on a taken name),
``get``, ``apply`` (create, or merge into the existing object as ``kubectl apply`` does for fields it sets),
``patch`` (JSON merge patch, RFC 7386), ``update`` (a function of the object), ``delete`` with the garbage
collector's cascade (dependents whose ``ownerReferences`` name a deleted uid go too), ``list`` by kind,
namespace and labels, and ``wait_for`` a predicate (every change notifies a condition variable).
Objects are keyed by ``(kind, namespace, name)``: the kinds mnistkit renders never share a name across groups.
"""

from __future__ import annotations

import copy
import datetime as dt
import threading
import time
import uuid
from collections.abc import Callable, Iterator, Mapping
from typing import Any

from mnistkit.errors import MnistkitError

__all__ = ["ApiError", "Obj", "ObjectStore", "merge_patch", "now_rfc3339"]

Obj = dict[str, Any]
Key = tuple[str, str, str]


class ApiError(MnistkitError):
    """What the API server would answer with a status code (404 NotFound, 409 AlreadyExists, 422 Invalid)."""

    def __init__(self, code: int, message: str) -> None:
        super().__init__(message, field="object", value=code)
        self.code = code


def now_rfc3339() -> str:
    return dt.datetime.now(dt.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


def merge_patch(base: Obj, patch: Mapping[str, Any]) -> Obj:
    """JSON merge patch (RFC 7386) of ``patch`` into ``base``, in place; ``None`` deletes a key."""
    for k, v in patch.items():
        if v is None:
            base.pop(k, None)
        elif isinstance(v, Mapping) and isinstance(base.get(k), dict):
            merge_patch(base[k], v)
        else:
            base[k] = copy.deepcopy(v)
    return base


def _key(obj: Mapping[str, Any]) -> Key:
    meta = obj.get("metadata") or {}
    return str(obj.get("kind", "")), str(meta.get("namespace", "")), str(meta.get("name", ""))


def labels_match(selector: Mapping[str, str], labels: Mapping[str, str]) -> bool:
    return all(labels.get(k) == v for k, v in selector.items())


class StoreBase:
    """What the controllers need from an API server; ``ObjectStore`` here, the test double's adapter in tests.

    Subclasses provide ``lock``/``changed`` (a Condition notified on every change), ``version``, ``create``,
    ``get``, ``update``, ``delete`` and ``list``; ``apply``, ``patch`` and ``wait_for`` are built on them.
    """

    lock: threading.RLock
    changed: threading.Condition

    @property
    def version(self) -> int:
        raise NotImplementedError

    def create(self, obj: Mapping[str, Any], namespace: str = "") -> Obj:
        raise NotImplementedError

    def get(self, kind: str, namespace: str, name: str) -> Obj | None:
        raise NotImplementedError

    def update(self, kind: str, namespace: str, name: str, fn: Callable[[Obj], object]) -> Obj | None:
        raise NotImplementedError

    def delete(self, kind: str, namespace: str, name: str) -> Obj | None:
        raise NotImplementedError

    def list(
        self, kind: str | None = None, namespace: str | None = None, labels: Mapping[str, str] | None = None
    ) -> list[Obj]:
        raise NotImplementedError

    def apply(self, obj: Mapping[str, Any], namespace: str = "") -> Obj:
        """Create, or merge the given fields into the existing object (``kubectl apply`` for new/changed fields)."""
        with self.lock:
            meta = dict(obj.get("metadata") or {})
            kind, ns, name = str(obj.get("kind", "")), meta.get("namespace") or namespace, meta.get("name", "")
            if self.get(kind, ns, name) is None:
                return self.create(obj, namespace)
            body = {k: v for k, v in obj.items() if k != "status"}
            return self.patch(kind, ns, name, body)

    def patch(self, kind: str, namespace: str, name: str, patch: Mapping[str, Any]) -> Obj:
        out = self.update(kind, namespace, name, lambda o: merge_patch(o, patch))
        if out is None:
            raise ApiError(404, f'{kind} "{name}" not found in namespace {namespace!r}')
        return out

    def wait_for(self, predicate: Callable[[], bool], timeout: float, poll: float = 0.5) -> bool:
        """Block until ``predicate()`` holds (re-checked on every change, and every ``poll`` s for clocks)."""
        deadline = time.monotonic() + timeout
        with self.changed:
            while not predicate():
                left = deadline - time.monotonic()
                if left <= 0:
                    return False
                self.changed.wait(min(poll, left))
            return True


class ObjectStore(StoreBase):
    """The rehearsal's own in-memory API server."""

    def __init__(self) -> None:
        self._objects: dict[Key, Obj] = {}
        self._rv = 1000
        self.lock = threading.RLock()
        self.changed = threading.Condition(self.lock)
        self.listeners: list[Callable[[str, Obj], None]] = []  # (ADDED|MODIFIED|DELETED, object)

    def _touch(self, event: str, obj: Obj) -> None:
        self._rv += 1
        obj["metadata"]["resourceVersion"] = str(self._rv)
        for listener in self.listeners:
            listener(event, copy.deepcopy(obj))
        self.changed.notify_all()

    # ---- writes --------------------------------------------------------------------------------
    def create(self, obj: Mapping[str, Any], namespace: str = "") -> Obj:
        with self.lock:
            new = copy.deepcopy(dict(obj))
            meta = new.setdefault("metadata", {})
            if namespace and not meta.get("namespace"):
                meta["namespace"] = namespace
            if not meta.get("name") and meta.get("generateName"):
                meta["name"] = meta["generateName"] + uuid.uuid4().hex[:5]
            kind, ns, name = _key(new)
            if not kind or not name:
                raise ApiError(422, f"{kind or 'object'} without kind or metadata.name")
            if (kind, ns, name) in self._objects:
                raise ApiError(409, f'{kind} "{name}" already exists in namespace {ns!r}')
            meta.update(uid=str(uuid.uuid4()), creationTimestamp=now_rfc3339())
            self._objects[(kind, ns, name)] = new
            self._touch("ADDED", new)
            return copy.deepcopy(new)

    def update(self, kind: str, namespace: str, name: str, fn: Callable[[Obj], object]) -> Obj | None:
        with self.lock:
            obj = self._objects.get((kind, namespace, name))
            if obj is None:
                return None
            fn(obj)
            self._touch("MODIFIED", obj)
            return copy.deepcopy(obj)

    def delete(self, kind: str, namespace: str, name: str) -> Obj | None:
        """Delete an object and, as the garbage collector does, everything it owns (recursively)."""
        with self.lock:
            obj = self._objects.pop((kind, namespace, name), None)
            if obj is None:
                return None
            self._touch("DELETED", obj)
            uid = obj["metadata"]["uid"]
            for key, dep in list(self._objects.items()):
                if any(r.get("uid") == uid for r in dep["metadata"].get("ownerReferences", [])):
                    self.delete(*key)
            return obj

    # ---- reads ---------------------------------------------------------------------------------
    @property
    def version(self) -> int:
        """Grows with every change (deletes too)."""
        return self._rv

    def get(self, kind: str, namespace: str, name: str) -> Obj | None:
        with self.lock:
            obj = self._objects.get((kind, namespace, name))
            return copy.deepcopy(obj) if obj is not None else None

    def list(
        self, kind: str | None = None, namespace: str | None = None, labels: Mapping[str, str] | None = None
    ) -> list[Obj]:
        with self.lock:
            return [
                copy.deepcopy(o)
                for (k, ns, _), o in sorted(self._objects.items())
                if (kind is None or k == kind)
                and (namespace is None or ns == namespace)
                and labels_match(labels or {}, o["metadata"].get("labels") or {})
            ]

    def __iter__(self) -> Iterator[Obj]:
        return iter(self.list())
