"""From a Pod's spec to the processes that run it: environment, volumes, ports and the local command.

What a container gets, as the kubelet would give it:

* **env**: ``value``; ``valueFrom.secretKeyRef`` (the rehearsal's Secret objects, ``data`` base64-decoded);
  ``configMapKeyRef``; ``fieldRef`` (``metadata.name``/``namespace``/``uid``/``labels['k']``/
  ``annotations['k']``, ``status.podIP`` = 127.0.0.1, ``spec.nodeName``, ``spec.serviceAccountName``). A
  missing Secret/ConfigMap or key (not ``optional``) is ``CreateContainerConfigError``, as in a cluster.
  The process does not inherit this shell's environment (credentials reach it only through the Secret):
  it gets ``PATH`` (this venv first), ``PYTHONPATH``, ``LANG``, a fresh ``HOME`` and the image's own variables.
* **volumes**: each ``emptyDir`` is a fresh temp dir; a ``mountPath`` that appears in the command, args or env
  values (``/models/mnist``, ``HOME=/tmp``) is rewritten to that dir, and a mount on ``/tmp`` sets ``TMPDIR``.
* **ports**: each ``containerPort`` is a free loopback port (``Addresses``); a flag whose value is a declared
  container port (``--port=6006``) gets the local one, and ``--host=0.0.0.0`` becomes ``127.0.0.1``.
* **program**: ``images.resolve`` (the one table of image -> local command).
"""

from __future__ import annotations

import base64
import json
import os
import re
import threading
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from mnistkit.embedded_s3 import free_port
from mnistkit.rehearsal.images import RehearsalError, resolve, venv_bin
from mnistkit.rehearsal.store import Obj, StoreBase

__all__ = ["PORTS_ANNOTATION", "Addresses", "ConfigError", "ProcessPlan", "plan_container"]

PORTS_ANNOTATION = "rehearsal.mnistkit.io/ports"
_FIELD_RE = re.compile(r"^metadata\.(labels|annotations)\['([^']+)'\]$")


class ConfigError(RehearsalError):
    """``CreateContainerConfigError``: a referenced Secret/ConfigMap/key is missing."""


class Addresses:
    """Cluster DNS for one machine: ``(namespace, host, port)`` -> a free port on 127.0.0.1, stable for the run.

    A TFJob replica's Service has its pod's name, so ``<job>-worker-0.<ns>.svc:2222`` in TF_CONFIG and the
    pod's ``containerPort: 2222`` meet at the same local port.
    """

    def __init__(self) -> None:
        self._ports: dict[tuple[str, str, int], int] = {}
        self._lock = threading.Lock()

    def local(self, namespace: str, host: str, port: int) -> int:
        host = host.split(".")[0]
        with self._lock:
            key = (namespace, host, int(port))
            if key not in self._ports:
                taken = set(self._ports.values())
                p = free_port()
                while p in taken:
                    p = free_port()
                self._ports[key] = p
            return self._ports[key]

    def service(self, store: StoreBase, namespace: str, name: str, port: int | str) -> int | None:
        """The local port behind ``Service <name>:<port>`` (its first running pod), or None."""
        svc = store.get("Service", namespace, name)
        if svc is None:
            return None
        spec = svc.get("spec", {})
        sp = next((p for p in spec.get("ports", []) if port in (p.get("port"), p.get("name"))), None)
        if sp is None:
            return None
        target = sp.get("targetPort", sp.get("port"))
        for pod in store.list("Pod", namespace, spec.get("selector") or {}):
            if pod.get("status", {}).get("phase") != "Running":
                continue
            if isinstance(target, str):
                ports = [p for c in pod["spec"].get("containers", []) for p in c.get("ports", [])]
                target = next((p["containerPort"] for p in ports if p.get("name") == target), None)
                if target is None:
                    return None
            return self.local(namespace, pod["metadata"]["name"], int(target))
        return None


@dataclass
class ProcessPlan:
    name: str
    argv: list[str]
    env: dict[str, str]
    cwd: str
    ports: dict[int, int]  # containerPort -> local port


def _decode(obj: Obj, key: str) -> str | None:
    if key in (obj.get("stringData") or {}):
        return str(obj["stringData"][key])
    if key in (obj.get("data") or {}):
        return base64.b64decode(obj["data"][key]).decode() if obj["kind"] == "Secret" else str(obj["data"][key])
    return None


def _env_value(store: StoreBase, pod: Obj, item: Mapping[str, Any]) -> str | None:
    if "valueFrom" not in item:
        return str(item.get("value", ""))
    src = item["valueFrom"]
    meta, ns = pod["metadata"], pod["metadata"].get("namespace", "")
    for kind, ref_key in (("Secret", "secretKeyRef"), ("ConfigMap", "configMapKeyRef")):
        if ref_key in src:
            ref = src[ref_key]
            obj = store.get(kind, ns, ref.get("name", ""))
            value = _decode(obj, ref.get("key", "")) if obj else None
            if value is None and not ref.get("optional"):
                what = (
                    f'{kind.lower()} "{ref.get("name")}" not found'
                    if obj is None
                    else f"couldn't find key {ref.get('key')} in {kind} {ns}/{ref.get('name')}"
                )
                raise ConfigError(f"env {item['name']}: {what}", field="env", value=item["name"])
            return value
    if "fieldRef" in src:
        path = src["fieldRef"].get("fieldPath", "")
        simple = {
            "metadata.name": meta.get("name"),
            "metadata.namespace": ns,
            "metadata.uid": meta.get("uid"),
            "status.podIP": "127.0.0.1",
            "status.hostIP": "127.0.0.1",
            "spec.nodeName": "rehearsal",
            "spec.serviceAccountName": pod["spec"].get("serviceAccountName", "default"),
        }
        if path in simple:
            return str(simple[path] or "")
        m = _FIELD_RE.match(path)
        if m:
            return str((meta.get(m.group(1)) or {}).get(m.group(2), ""))
        raise RehearsalError(f"env {item['name']}: fieldRef {path!r} is not emulated", field="env", value=path)
    raise RehearsalError(
        f"env {item['name']}: valueFrom {sorted(src)} is not emulated", field="env", value=item["name"]
    )


def _rewrite(text: str, mounts: list[tuple[str, str]]) -> str:
    """Every mount path in ``text`` (as a whole path component, longest first) -> its local dir, in one pass."""
    if not mounts:
        return text
    table = {m.rstrip("/") or "/": local for m, local in mounts}
    alternation = "|".join(re.escape(m) for m in sorted(table, key=len, reverse=True))
    return re.sub(rf"(?<![\w/])({alternation})(?=/|\b|$)", lambda m: table[m.group(1)], text)


def plan_container(
    store: StoreBase,
    addresses: Addresses,
    pod: Obj,
    container: Mapping[str, Any],
    volumes: Mapping[str, str],
    home: str,
) -> ProcessPlan:
    """How to run one container of ``pod``: ``volumes`` maps volume names to local dirs (emptyDirs)."""
    name, ns = container["name"], pod["metadata"].get("namespace", "")
    program, image_env = resolve(container.get("image", ""), list(container.get("command") or []))
    mounts = []
    for vm in container.get("volumeMounts", []):
        if vm["name"] not in volumes:
            raise RehearsalError(
                f"container {name}: volume {vm['name']!r} is not an emptyDir of the pod",
                field="volumeMounts",
                value=vm["name"],
            )
        mounts.append((vm["mountPath"], volumes[vm["name"]]))
    mounts.sort(key=lambda m: -len(m[0]))
    ports = {
        int(p["containerPort"]): addresses.local(ns, pod["metadata"]["name"], int(p["containerPort"]))
        for p in container.get("ports", [])
    }

    def args_of(words: list[str]) -> list[str]:
        out = []
        for w in words:
            w = _rewrite(str(w), mounts)
            m = re.match(r"^(--?[\w-]+)=(\d+)$", w)
            if m and int(m.group(2)) in ports:
                w = f"{m.group(1)}={ports[int(m.group(2))]}"
            if re.match(r"^--?(host|bind_all|address)=0\.0\.0\.0$", w):
                w = w.split("=")[0] + "=127.0.0.1"
            out.append(w)
        return out

    argv = program + args_of(list(container.get("command", []))[1:]) + args_of(list(container.get("args", [])))
    env = {
        "PATH": f"{venv_bin()}{os.pathsep}{os.environ.get('PATH', '/usr/bin:/bin')}",
        "LANG": os.environ.get("LANG", "C.UTF-8"),
        "HOME": home,
        "HOSTNAME": pod["metadata"]["name"],
        **({"PYTHONPATH": os.environ["PYTHONPATH"]} if os.environ.get("PYTHONPATH") else {}),
        **image_env,
    }
    for item in container.get("env", []):
        value = _env_value(store, pod, item)
        if value is not None:
            env[item["name"]] = _rewrite(value, mounts)
    tmp = dict(mounts).get("/tmp")
    if tmp:
        env["TMPDIR"] = tmp
    cwd = _rewrite(container.get("workingDir", home), mounts)
    return ProcessPlan(name, argv, env, cwd if Path(cwd).is_dir() else home, ports)


def ports_annotation(plans: list[ProcessPlan]) -> str:
    return json.dumps({str(k): v for p in plans for k, v in p.ports.items()}, sort_keys=True)
