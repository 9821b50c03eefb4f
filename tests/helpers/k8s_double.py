"""An in-process Kubernetes API server double on 127.0.0.1, for driving the real ``kubernetes`` client.

What it emulates (only what ``mnistkit.cluster`` uses), over real HTTP (``http.server`` in a thread):

* CRUD (POST/GET/PUT/PATCH merge/DELETE) and list of namespaced objects under ``/api/v1`` (pods,
  services, secrets, serviceaccounts) and ``/apis/<group>/<version>`` (workflows, workflowtemplates,
  tfjobs, deployments, ...); ``generateName``; ``uid``/``resourceVersion``/``creationTimestamp``;
  ``409 AlreadyExists``, ``404 NotFound``; ``labelSelector`` (``k=v``, ``k!=v``, ``k``) and
  ``fieldSelector=metadata.name=...``.
* Garbage collection: deleting an object deletes the objects whose ``ownerReferences`` name its uid.
* Watch (``?watch=true``): chunked JSON lines ``{"type": ADDED|MODIFIED|DELETED, "object": ...}`` from a
  ``resourceVersion``; a version older than the retained history gets an ``ERROR`` event with a 410
  ``Gone`` Status, as etcd compaction causes (``compact()``).
* Port-forward (``/pods/<name>/portforward``): a WebSocket with the kubelet's ``v4.channel.k8s.io`` framing to the
  loopback port the rehearsal's kubelet gave the container port (``helpers.k8s_portforward``).
* Pod logs (``/pods/<name>/log``, ``tailLines``), ``SelfSubjectAccessReview`` (allowed unless listed in
  ``denied``), CRDs (``/apis/apiextensions.k8s.io/v1/customresourcedefinitions/<name>``; with ``enforce_crds``,
  custom resources whose CRD is not in ``crds`` answer 404).
* Authorization, as far as a test needs it: a request whose (group, resource, verb) is in ``denied``, or
  missing from ``allowed`` when that is set (a Role's rules), gets ``403 Forbidden``; ``reject`` answers
  every request with one status (401: credentials refused; 403: no permissions at all; 404: the
  resource type or namespace is not there, as on a cluster without the CRDs).
* Faults: ``drop_responses`` (perform a request, then close the connection without answering: a lost
  response), ``cut_watches_after`` (end watch streams abruptly after N events).

What it does not: authentication, admission, schema validation, strategic-merge patch, field managers.
Tests play the controllers with ``FakeArgo`` (Argo + training-operator + kube-controller, as far as
the mnistkit workflow needs): it creates the TFJob and pods a workflow would, sets phases, and decides
the workflow's outcome by evaluating the workflow's own success/failure conditions on the TFJob.
"""

from __future__ import annotations

import copy
import datetime as dt
import json
import re
import threading
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlparse

import yaml

from mnistkit.rehearsal.store import ApiError, StoreBase
from mnistkit.rehearsal.store import merge_patch as _merge

__all__ = ["DoubleStore", "FakeArgo", "Fault", "K8sDouble"]

Key = tuple[str, str]  # (group, plural); group "" for the core API

_PATH_RE = re.compile(
    r"^/(?:api/(?P<cv>v1)|apis/(?P<group>[^/]+)/(?P<version>[^/]+))"
    r"(?:/namespaces/(?P<ns>[^/]+))?/(?P<plural>[^/]+)(?:/(?P<name>[^/]+))?(?:/(?P<sub>[^/]+))?$"
)
_KINDS = {
    "pods": "Pod", "services": "Service", "secrets": "Secret", "serviceaccounts": "ServiceAccount",
    "deployments": "Deployment", "workflows": "Workflow", "workflowtemplates": "WorkflowTemplate",
    "tfjobs": "TFJob", "roles": "Role", "rolebindings": "RoleBinding", "configmaps": "ConfigMap",
}


def _now() -> str:
    return dt.datetime.now(dt.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


def _string_data(obj: dict[str, Any]) -> None:
    """Secrets: the API server folds write-only ``stringData`` into base64 ``data``."""
    if obj.get("kind") == "Secret" and "stringData" in obj:
        import base64

        obj.setdefault("data", {}).update(
            {k: base64.b64encode(v.encode()).decode() for k, v in obj.pop("stringData").items()})


def _selector_matches(selector: str, labels: dict[str, str]) -> bool:
    for req in filter(None, (r.strip() for r in selector.split(","))):
        if "!=" in req:
            k, v = req.split("!=", 1)
            if labels.get(k.strip()) == v.strip():
                return False
        elif "=" in req:
            k, v = req.replace("==", "=").split("=", 1)
            if labels.get(k.strip()) != v.strip():
                return False
        elif req.startswith("!"):
            if req[1:] in labels:
                return False
        elif req not in labels:
            return False
    return True


@dataclass
class Fault:
    method: str
    path_re: str
    remaining: int = 1


@dataclass
class _Event:
    rv: int
    key: Key
    ns: str
    type: str
    obj: dict[str, Any]


@dataclass
class _State:
    objects: dict[Key, dict[tuple[str, str], dict[str, Any]]] = field(default_factory=dict)
    events: list[_Event] = field(default_factory=list)
    rv: int = 1000
    compacted_rv: int = 0


class K8sDouble:
    """``with K8sDouble() as k8s: k8s.configuration()`` -> a ``kubernetes.client.Configuration`` for it."""

    def __init__(self) -> None:
        self.state = _State()
        self.lock = threading.RLock()
        self.changed = threading.Condition(self.lock)
        self.logs: dict[tuple[str, str], str] = {}
        # With a rehearsal behind the double, pod logs come from the pods' real output.
        self.log_source: Callable[[str, str], str] | None = None
        self.crds: set[str] = {"workflows.argoproj.io", "tfjobs.kubeflow.org", "workflowtemplates.argoproj.io"}
        self.denied: set[tuple[str, str, str]] = set()  # (group, resource[/sub], verb)
        self.allowed: set[tuple[str, str, str]] | None = None  # None: everything not denied
        self.reject: int | None = None  # answer every request with this status
        self.refused: list[tuple[str, str, str]] = []  # what got a 403 from denied/allowed
        # True: a custom resource whose CRD is not in `crds` answers 404, as a real API server does.
        self.enforce_crds = False
        self.drop_responses: list[Fault] = []
        self.cut_watches_after: int | None = None
        self.requests: list[tuple[str, str]] = []
        self.watch_410s = 0
        self.gc = True  # garbage-collect dependents (ownerReferences) on delete
        self.portforwards = 0  # port-forward WebSockets accepted
        self._tunnels: set[Any] = set()  # their client sockets, shut at stop()
        self._server: ThreadingHTTPServer | None = None
        self._stopping = False

    # ---- lifecycle -------------------------------------------------------------------------------
    def start(self) -> K8sDouble:
        double = self

        class Handler(_Handler):
            k8s = double

        self._server = _Server(("127.0.0.1", 0), Handler)
        self._server.daemon_threads = True
        threading.Thread(target=self._server.serve_forever, daemon=True, name="k8s-double").start()
        return self

    def stop(self) -> None:
        with self.lock:
            self._stopping = True
            self.changed.notify_all()
        for sock in list(self._tunnels):
            try:
                sock.shutdown(2)
            except OSError:
                pass
        if self._server:
            self._server.shutdown()
            self._server.server_close()

    def __enter__(self) -> K8sDouble:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    @property
    def url(self) -> str:
        assert self._server
        return f"http://127.0.0.1:{self._server.server_address[1]}"

    def kubeconfig(self, path: Path, namespace: str, server: str | None = None) -> Path:
        """Write a kubeconfig for this double (or ``server``) with ``namespace`` as its context's; returns ``path``."""
        path.write_text(yaml.safe_dump({
            "apiVersion": "v1", "kind": "Config", "current-context": "double",
            "clusters": [{"name": "double", "cluster": {"server": server or self.url}}],
            "users": [{"name": "me", "user": {"token": "not-a-secret"}}],
            "contexts": [{"name": "double", "context": {"cluster": "double", "user": "me", "namespace": namespace}}],
        }))
        return path

    def configuration(self) -> Any:
        from kubernetes import client

        cfg = client.Configuration()
        cfg.host = self.url
        return cfg

    # ---- store -----------------------------------------------------------------------------------
    def _bump(self) -> int:
        self.state.rv += 1
        return self.state.rv

    def _record(self, key: Key, ns: str, type_: str, obj: dict[str, Any]) -> None:
        self.state.events.append(_Event(int(obj["metadata"]["resourceVersion"]), key, ns, type_, copy.deepcopy(obj)))
        self.changed.notify_all()

    def create(self, key: Key, ns: str, obj: dict[str, Any]) -> tuple[int, dict[str, Any]]:
        with self.lock:
            obj = copy.deepcopy(obj)
            meta = obj.setdefault("metadata", {})
            if not meta.get("name") and meta.get("generateName"):
                meta["name"] = meta["generateName"] + uuid.uuid4().hex[:5]
            name = meta.get("name", "")
            if not name:
                return 422, self.status(422, "Invalid", "metadata.name: Required value")
            coll = self.state.objects.setdefault(key, {})
            if (ns, name) in coll:
                kind = _KINDS.get(key[1], key[1])
                return 409, self.status(409, "AlreadyExists", f'{key[1]}.{key[0]} "{name}" already exists',
                                        details={"name": name, "kind": key[1], "group": key[0]}, kind_=kind)
            meta.update(namespace=ns, uid=str(uuid.uuid4()), resourceVersion=str(self._bump()),
                        creationTimestamp=_now())
            _string_data(obj)
            coll[(ns, name)] = obj
            self._record(key, ns, "ADDED", obj)
            return 201, copy.deepcopy(obj)

    def get(self, key: Key, ns: str, name: str) -> dict[str, Any] | None:
        with self.lock:
            obj = self.state.objects.get(key, {}).get((ns, name))
            return copy.deepcopy(obj) if obj else None

    def update(self, key: Key, ns: str, name: str, fn: Callable[[dict[str, Any]], None]) -> dict[str, Any] | None:
        with self.lock:
            obj = self.state.objects.get(key, {}).get((ns, name))
            if obj is None:
                return None
            fn(obj)
            obj["metadata"]["resourceVersion"] = str(self._bump())
            self._record(key, ns, "MODIFIED", obj)
            return copy.deepcopy(obj)

    def delete(self, key: Key, ns: str, name: str) -> dict[str, Any] | None:
        with self.lock:
            obj = self.state.objects.get(key, {}).pop((ns, name), None)
            if obj is None:
                return None
            obj["metadata"]["resourceVersion"] = str(self._bump())
            self._record(key, ns, "DELETED", obj)
            uid = obj["metadata"]["uid"]
            if not self.gc:
                return obj
            # Garbage collector: dependents go with their owner.
            for k2, coll in list(self.state.objects.items()):
                for (ns2, n2), dep in list(coll.items()):
                    if any(r.get("uid") == uid for r in dep["metadata"].get("ownerReferences", [])):
                        self.delete(k2, ns2, n2)
            return obj

    def list(self, key: Key, ns: str | None = None, label_selector: str = "", name: str = "") -> list[dict[str, Any]]:
        with self.lock:
            out = []
            for (ons, oname), obj in sorted(self.state.objects.get(key, {}).items()):
                if ns and ons != ns or name and oname != name:
                    continue
                if label_selector and not _selector_matches(label_selector, obj["metadata"].get("labels", {})):
                    continue
                out.append(copy.deepcopy(obj))
            return out

    def all_objects(self, label_selector: str = "") -> list[tuple[Key, dict[str, Any]]]:
        with self.lock:
            return [(k, copy.deepcopy(o)) for k, coll in self.state.objects.items() for o in coll.values()
                    if _selector_matches(label_selector, o["metadata"].get("labels", {}))]

    def compact(self) -> None:
        """Forget the watch history (as etcd compaction does): older resourceVersions now get 410 Gone."""
        with self.lock:
            self.state.compacted_rv = self.state.rv
            self.state.events.clear()

    @staticmethod
    def status(code: int, reason: str, message: str, details: dict[str, Any] | None = None,
               kind_: str = "") -> dict[str, Any]:
        del kind_
        return {"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure", "message": message,
                "reason": reason, "code": code, **({"details": details} if details else {})}

    def events_since(self, key: Key, ns: str | None, rv: int) -> list[_Event]:
        return [e for e in self.state.events if e.key == key and e.rv > rv and (not ns or e.ns == ns)]

    def set_log(self, ns: str, pod: str, text: str) -> None:
        with self.lock:
            self.logs[(ns, pod)] = text


_VERBS = {"POST": "create", "PUT": "update", "PATCH": "patch", "DELETE": "delete"}
_REJECT = {401: ("Unauthorized", "Unauthorized"),
           403: ("Forbidden", 'User "jane" cannot {verb} resource "{res}" in the namespace "{ns}"'),
           404: ("NotFound", "the server could not find the requested resource")}


class _Server(ThreadingHTTPServer):
    daemon_threads = True

    def handle_error(self, request: Any, client_address: Any) -> None:
        pass  # connections the faults cut on purpose end in resets; not worth a traceback


class _Handler(BaseHTTPRequestHandler):
    k8s: K8sDouble
    protocol_version = "HTTP/1.1"

    def log_message(self, *args: Any) -> None:  # quiet
        pass

    # ---- plumbing --------------------------------------------------------------------------------
    _raw: bytes = b""

    def _body(self) -> Any:
        return json.loads(self._raw) if self._raw else {}

    def _send(self, code: int, obj: Any, ctype: str = "application/json") -> None:
        data = obj.encode() if isinstance(obj, str) else json.dumps(obj).encode()
        self.send_response(code)
        self.send_header("Content-Type", ctype)
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def _dropped(self) -> bool:
        for f in self.k8s.drop_responses:
            if f.remaining > 0 and f.method == self.command and re.search(f.path_re, self.path):
                f.remaining -= 1
                return True
        return False

    def _handle(self) -> None:
        self.k8s.requests.append((self.command, self.path))
        # Always consume the body (DELETE carries DeleteOptions), or keep-alive requests run together.
        n = int(self.headers.get("Content-Length") or 0)
        self._raw = self.rfile.read(n) if n else b""
        drop = self._dropped()
        url = urlparse(self.path)
        q = {k: v[-1] for k, v in parse_qs(url.query).items()}
        m = _PATH_RE.match(url.path)
        if not m:
            return self._send(404, K8sDouble.status(404, "NotFound", f"no route {url.path}"))
        group = m["group"] or ""
        key: Key = (group, m["plural"])
        ns, name, sub = m["ns"], m["name"], m["sub"]
        if key == PODS and sub == "portforward" and name and self.command == "GET":
            return self._portforward(key, ns or "", name, q)
        code, body = self._route(key, ns, name, sub, q)
        if drop:
            # The server did the work; the client never hears about it (a lost response).
            self.close_connection = True
            self.connection.shutdown(2)
            return
        if code == -1:
            return  # streamed
        if isinstance(body, str):
            return self._send(code, body, "text/plain")
        self._send(code, body)

    do_GET = do_POST = do_PUT = do_PATCH = do_DELETE = _handle

    def _portforward(self, key: Key, ns: str, name: str, q: dict[str, str]) -> None:
        """``pods/<name>/portforward``: a WebSocket to the pod's ports (``helpers.k8s_portforward``)."""
        from helpers import k8s_portforward

        if refused := self._refused(key, ns, name, "portforward", q):
            return self._send(*refused)
        if not k8s_portforward.is_upgrade(self.headers):
            return self._send(400, K8sDouble.status(400, "BadRequest", "Upgrade request required"))
        pod = self.k8s.get(key, ns, name)
        if pod is None:
            return self._send(404, K8sDouble.status(404, "NotFound", f'pods "{name}" not found'))
        try:
            ports = k8s_portforward.requested_ports(self.path)
        except ValueError as exc:
            return self._send(400, K8sDouble.status(400, "BadRequest", str(exc)))
        self.k8s.portforwards += 1
        k8s_portforward.serve(self, pod, ports, self.k8s._tunnels.add)

    # ---- routes ----------------------------------------------------------------------------------
    def _refused(self, key: Key, ns: str | None, name: str | None, sub: str | None,
                 q: dict[str, str]) -> tuple[int, Any] | None:
        """The 401/403/404 an API server would answer instead of doing the request, if any."""
        k8s, (group, plural) = self.k8s, key
        verb = _VERBS.get(self.command) or ("get" if name else "watch" if q.get("watch") in ("true", "1")
                                                 else "list")
        verbs = [verb]
        if sub in ("portforward", "exec", "attach") and verb == "get" and "websocket" in str(
                self.headers.get("Upgrade", "")).lower():
            # a WebSocket upgrade is a GET, authorized as get; since Kubernetes 1.35
            # (AuthorizePodWebsocketUpgradeCreatePermission, beta, on by default) also as create
            verbs.append("create")
        res = plural + (f"/{sub}" if sub and sub != "status" else "")
        code = k8s.reject
        always_allowed = key in (("authorization.k8s.io", "selfsubjectaccessreviews"),
                                 ("apiextensions.k8s.io", "customresourcedefinitions"))
        for verb in verbs if code is None and not always_allowed else ():
            if (group, res, verb) in k8s.denied or (k8s.allowed is not None and (group, res, verb) not in k8s.allowed):
                code = 403
                k8s.refused.append((group, res, verb))
                break
        if code is None:
            return None
        reason, message = _REJECT[code]
        return code, k8s.status(code, reason, message.format(verb=verb, res=res, ns=ns))

    def _route(self, key: Key, ns: str | None, name: str | None, sub: str | None, q: dict[str, str]) -> tuple[int, Any]:
        k8s, method = self.k8s, self.command
        group, plural = key
        if refused := self._refused(key, ns, name, sub, q):
            return refused
        if key == ("authorization.k8s.io", "selfsubjectaccessreviews") and method == "POST":
            review = self._body()
            attrs = review.get("spec", {}).get("resourceAttributes", {})
            res = attrs.get("resource", "") + ("/" + attrs["subresource"] if attrs.get("subresource") else "")
            allowed = (attrs.get("group", ""), res, attrs.get("verb", "")) not in k8s.denied
            review["status"] = {"allowed": allowed, **({} if allowed else {"reason": "denied by the test double"})}
            return 201, review
        if key == ("apiextensions.k8s.io", "customresourcedefinitions"):
            if name in k8s.crds:
                return 200, {"apiVersion": "apiextensions.k8s.io/v1", "kind": "CustomResourceDefinition",
                             "metadata": {"name": name}, "spec": {"group": name.split(".", 1)[1]}}
            return 404, k8s.status(404, "NotFound", f'customresourcedefinitions "{name}" not found')
        if (self.k8s.enforce_crds and "." in group and not group.endswith(".k8s.io")
                and f"{plural}.{group}" not in k8s.crds):
            return 404, k8s.status(404, "NotFound", "the server could not find the requested resource")
        if sub == "log" and plural == "pods" and method == "GET":
            if k8s.get(key, ns or "", name or "") is None:
                return 404, k8s.status(404, "NotFound", f'pods "{name}" not found')
            text = k8s.logs.get((ns or "", name or ""), "")
            if k8s.log_source is not None:
                text = k8s.log_source(ns or "", name or "")
            if q.get("tailLines"):
                n = int(q["tailLines"])
                text = "".join(text.splitlines(keepends=True)[-n:]) if n else ""
            return 200, text
        if sub == "status" and method in ("PATCH", "PUT"):
            sub = None
        if name is None:
            if method == "POST":
                return k8s.create(key, ns or "", self._body())
            if method == "GET":
                fsel = q.get("fieldSelector", "")
                only = fsel.split("=", 1)[1] if fsel.startswith("metadata.name=") else ""
                if q.get("watch") in ("true", "1", "True"):
                    self._watch(key, ns, q, only)
                    return -1, None
                items = k8s.list(key, ns, q.get("labelSelector", ""), only)
                kind = _KINDS.get(plural, plural.capitalize())
                return 200, {"apiVersion": f"{group}/v1" if group else "v1", "kind": f"{kind}List",
                             "metadata": {"resourceVersion": str(k8s.state.rv)}, "items": items}
            return 405, k8s.status(405, "MethodNotAllowed", method)
        if method == "GET":
            obj = k8s.get(key, ns or "", name)
        elif method == "DELETE":
            obj = k8s.delete(key, ns or "", name)
            if obj is not None:
                return 200, obj
        elif method in ("PATCH", "PUT"):
            body = self._body()

            def apply(o: dict[str, Any]) -> None:
                if method == "PUT":
                    keep = {k: o["metadata"][k] for k in ("uid", "creationTimestamp", "namespace")}
                    o.clear()
                    o.update(copy.deepcopy(body))
                    o.setdefault("metadata", {}).update(keep)
                    _string_data(o)
                else:
                    _merge(o, body)

            obj = k8s.update(key, ns or "", name, apply)
        else:
            return 405, k8s.status(405, "MethodNotAllowed", method)
        if obj is None:
            return 404, k8s.status(404, "NotFound", f'{plural}.{group or "core"} "{name}" not found',
                                   details={"name": name, "kind": plural})
        return 200, obj

    def _chunk(self, data: bytes) -> None:
        self.wfile.write(f"{len(data):x}\r\n".encode() + data + b"\r\n")
        self.wfile.flush()

    def _watch(self, key: Key, ns: str | None, q: dict[str, str], only: str) -> None:
        k8s = self.k8s
        timeout = float(q.get("timeoutSeconds") or 30)
        label_selector = q.get("labelSelector", "")
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Transfer-Encoding", "chunked")
        self.end_headers()
        rv_text = q.get("resourceVersion", "")
        sent = 0

        def matches(obj: dict[str, Any]) -> bool:
            meta = obj["metadata"]
            return (not only or meta["name"] == only) and _selector_matches(label_selector, meta.get("labels", {}))

        with k8s.lock:
            if rv_text in ("", "0"):
                rv = k8s.state.rv
                initial = [o for o in k8s.list(key, ns) if matches(o)]
            else:
                rv, initial = int(rv_text), []
                if rv < k8s.state.compacted_rv:
                    k8s.watch_410s += 1
                    gone = K8sDouble.status(410, "Expired", f"too old resource version: {rv} ({k8s.state.compacted_rv})")
                    self._chunk(json.dumps({"type": "ERROR", "object": gone}).encode() + b"\n")
                    self._chunk(b"")
                    return
        for obj in initial:
            self._chunk(json.dumps({"type": "ADDED", "object": obj}).encode() + b"\n")
        deadline = threading.Event()
        timer = threading.Timer(timeout, deadline.set)
        timer.daemon = True
        timer.start()
        try:
            while not deadline.is_set():
                with k8s.lock:
                    if k8s._stopping:
                        break
                    if rv < k8s.state.compacted_rv:
                        break  # history gone under us: end the stream; the client resumes and gets 410
                    events = [e for e in k8s.events_since(key, ns, rv) if matches(e.obj)]
                    if not events:
                        k8s.changed.wait(0.2)
                        continue
                for e in events:
                    rv = e.rv
                    self._chunk(json.dumps({"type": e.type, "object": e.obj}).encode() + b"\n")
                    sent += 1
                    if k8s.cut_watches_after is not None and sent >= k8s.cut_watches_after:
                        self.close_connection = True
                        self.connection.shutdown(2)  # abrupt: no terminating chunk
                        return
            self._chunk(b"")
        except (BrokenPipeError, ConnectionResetError, OSError):
            self.close_connection = True
        finally:
            timer.cancel()


# ---- controllers, played by tests ------------------------------------------------------------------
WF: Key = ("argoproj.io", "workflows")
TFJOB: Key = ("kubeflow.org", "tfjobs")
PODS: Key = ("", "pods")
_KEYS = {"Deployment": ("apps", "deployments"), "Service": ("", "services"), "TFJob": TFJOB}


class FakeArgo:
    """Plays Argo, the training operator and the kubelet for the mnistkit ``model-train`` workflow."""

    def __init__(self, k8s: K8sDouble) -> None:
        self.k8s = k8s

    def _wf(self, ns: str, name: str) -> dict[str, Any]:
        wf = self.k8s.get(WF, ns, name)
        assert wf is not None, f"no workflow {ns}/{name}"
        return wf

    def _params(self, wf: dict[str, Any]) -> dict[str, str]:
        return {p["name"]: str(p.get("value", "")) for p in wf["spec"]["arguments"]["parameters"]}

    def _template(self, wf: dict[str, Any], name: str) -> dict[str, Any]:
        return next(t for t in wf["spec"]["templates"] if t["name"] == name)

    def _render(self, wf: dict[str, Any], template: str) -> dict[str, Any]:
        params = self._params(wf)
        text = self._template(wf, template)["resource"]["manifest"]
        text = text.replace("{{workflow.name}}", wf["metadata"]["name"])
        text = text.replace("{{workflow.namespace}}", wf["metadata"]["namespace"])
        text = re.sub(r"\{\{workflow\.parameters\.([a-z0-9-]+)\}\}", lambda m: params[m.group(1)], text)
        return yaml.safe_load(text)

    def _train_step(self, wf: dict[str, Any]) -> str:
        """The train step whose ``when`` holds (Argo evaluates ``tf-worker != 0`` / ``== 0``)."""
        return "train-model-single" if self._params(wf)["tf-worker"] == "0" else "train-model"

    def _owned(self, wf: dict[str, Any], obj: dict[str, Any]) -> dict[str, Any]:
        obj["metadata"]["ownerReferences"] = [{"apiVersion": "argoproj.io/v1alpha1", "kind": "Workflow",
                                               "name": wf["metadata"]["name"], "uid": wf["metadata"]["uid"]}]
        return obj

    def _apply_step(self, wf: dict[str, Any], template: str) -> dict[str, Any]:
        obj = self._owned(wf, self._render(wf, template))
        key = _KEYS[obj["kind"]]
        code, out = self.k8s.create(key, obj["metadata"]["namespace"], obj)
        assert code in (201, 409), out
        return out

    def _phase(self, ns: str, name: str, phase: str, message: str = "") -> None:
        def fn(o: dict[str, Any]) -> None:
            st = o.setdefault("status", {})
            st["phase"] = phase
            st.setdefault("startedAt", _now())
            if phase in ("Succeeded", "Failed", "Error"):
                st["finishedAt"] = _now()
            if message:
                st["message"] = message

        self.k8s.update(WF, ns, name, fn)

    def start(self, ns: str, name: str, logs: dict[str, str] | None = None) -> dict[str, Any]:
        """Run the workflow up to a Running TFJob with Chief/Worker pods (and TensorBoard)."""
        wf = self._wf(ns, name)
        self._phase(ns, name, "Running")
        for step in ("tensorboard", "tensorboard-service"):
            self._apply_step(wf, step)
        job = self._apply_step(wf, self._train_step(wf))
        jns, jname = job["metadata"]["namespace"], job["metadata"]["name"]
        for rtype, spec in job["spec"]["tfReplicaSpecs"].items():
            for i in range(int(spec["replicas"])):
                pod_name = f"{jname}-{rtype.lower()}-{i}"
                labels = {**spec["template"]["metadata"]["labels"], "training.kubeflow.org/job-name": jname,
                          "training.kubeflow.org/replica-type": rtype.lower(),
                          "training.kubeflow.org/replica-index": str(i)}
                pod = {"apiVersion": "v1", "kind": "Pod",
                       "metadata": {"name": pod_name, "labels": labels,
                                    "ownerReferences": [{"apiVersion": "kubeflow.org/v1", "kind": "TFJob",
                                                         "name": jname, "uid": job["metadata"]["uid"]}]},
                       "spec": spec["template"]["spec"], "status": {"phase": "Running"}}
                self.k8s.create(PODS, jns, pod)
                self.k8s.set_log(jns, pod_name, (logs or {}).get(pod_name, f"[trainer] {rtype} {i} ready\n"))
        self.k8s.update(TFJOB, jns, jname, lambda o: o.__setitem__("status", {
            "conditions": [{"type": "Created", "status": "True"}, {"type": "Running", "status": "True"}],
            "replicaStatuses": {r: {"active": int(s["replicas"])} for r, s in job["spec"]["tfReplicaSpecs"].items()}}))
        return job

    def finish_tfjob(self, ns: str, name: str, succeeded: bool, failed_replica: str = "Chief") -> str:
        """End the TFJob as training-operator v1 does, then let the workflow's conditions decide its phase."""
        wf = self._wf(ns, name)
        job_manifest = self._render(wf, self._train_step(wf))
        jns, jname = job_manifest["metadata"]["namespace"], job_manifest["metadata"]["name"]
        job = self.k8s.get(TFJOB, jns, jname)
        assert job is not None
        specs = job["spec"]["tfReplicaSpecs"]
        if succeeded:
            rs = {r: {"succeeded": int(s["replicas"])} for r, s in specs.items()}
            cond = "Succeeded"
        else:
            rs = {r: ({"failed": 1} if r == failed_replica else {"active": int(s["replicas"])}) for r, s in specs.items()}
            cond = "Failed"
        self.k8s.update(TFJOB, jns, jname, lambda o: o.__setitem__("status", {
            "conditions": [{"type": "Created", "status": "True"}, {"type": cond, "status": "True"}],
            "replicaStatuses": rs}))
        for pod in self.k8s.list(PODS, jns, f"training.kubeflow.org/job-name={jname}"):
            rtype = pod["metadata"]["labels"]["training.kubeflow.org/replica-type"]
            phase = "Succeeded" if succeeded else ("Failed" if rtype == failed_replica.lower() else "Running")
            self.k8s.update(PODS, jns, pod["metadata"]["name"], lambda o, p=phase: o["status"].__setitem__("phase", p))
        return self.step_train_model(ns, name)

    def step_train_model(self, ns: str, name: str) -> str:
        """Evaluate ``train-model``'s successCondition/failureCondition on the TFJob, as Argo's executor does."""
        from mnistkit.manifests.conditions import resource_outcome

        wf = self._wf(ns, name)
        step = self._train_step(wf)
        tmpl = self._template(wf, step)["resource"]
        job_manifest = self._render(wf, step)
        job = self.k8s.get(TFJOB, job_manifest["metadata"]["namespace"], job_manifest["metadata"]["name"])
        outcome = resource_outcome(job or {}, tmpl.get("successCondition", ""), tmpl.get("failureCondition", ""))
        if outcome == "failed":
            self._phase(ns, name, "Running", "train-model: failure condition matched")
            self._exit_handler(wf, ok=False)
            self._phase(ns, name, "Failed", "child 'train-model' failed: failure condition matched")
        elif outcome == "succeeded":
            if self._params(wf).get("model-serving") == "true":
                for step in ("serve-model", "serve-model-service"):
                    self._apply_step(wf, step)
            self._exit_handler(wf, ok=True)
            self._phase(ns, name, "Succeeded")
        return outcome

    def _exit_handler(self, wf: dict[str, Any], ok: bool) -> None:
        if ok:
            return
        # The `cleanup` step patches the TFJob's deadline; the operator then fails it and deletes its
        # running pods (cleanPodPolicy: Running); failed and succeeded pods stay.
        ref = self._render(wf, "cleanup")
        jns, jname = ref["metadata"]["namespace"], ref["metadata"]["name"]
        job = self.k8s.update(TFJOB, jns, jname, lambda o: _merge(o, {"spec": ref["spec"]}))
        if job is None:
            return
        assert job["spec"]["runPolicy"]["cleanPodPolicy"] == "Running"
        for pod in self.k8s.list(PODS, jns, f"training.kubeflow.org/job-name={jname}"):
            if pod["status"]["phase"] == "Running":
                self.k8s.delete(PODS, jns, pod["metadata"]["name"])

    def iter_phases(self, ns: str, name: str) -> Iterator[str]:
        wf = self.k8s.get(WF, ns, name)
        yield (wf or {}).get("status", {}).get("phase", "")


# ---- the rehearsal as the controller ----------------------------------------------------------------
_KEY_OF_KIND: dict[str, Key] = {kind: ("", plural) for plural, kind in _KINDS.items()}
_KEY_OF_KIND.update({"Deployment": ("apps", "deployments"), "Workflow": WF, "WorkflowTemplate":
                     ("argoproj.io", "workflowtemplates"), "TFJob": TFJOB,
                     "Role": ("rbac.authorization.k8s.io", "roles"),
                     "RoleBinding": ("rbac.authorization.k8s.io", "rolebindings"),
                     "TrainJob": ("trainer.kubeflow.org", "trainjobs"),
                     "TrainingRuntime": ("trainer.kubeflow.org", "trainingruntimes"),
                     "ClusterTrainingRuntime": ("trainer.kubeflow.org", "clustertrainingruntimes")})


class DoubleStore(StoreBase):
    """The double's objects as the rehearsal's store: ``Rehearsal(store=DoubleStore(k8s))`` makes the rehearsal
    the cluster's controllers (Argo, the training operator, Deployments, kubelet) behind the HTTP API."""

    def __init__(self, k8s: K8sDouble) -> None:
        self.k8s = k8s
        self.lock = k8s.lock
        self.changed = k8s.changed

    @staticmethod
    def _key(kind: str) -> Key:
        if kind not in _KEY_OF_KIND:
            raise ApiError(404, f"the double has no resource for kind {kind}")
        return _KEY_OF_KIND[kind]

    @property
    def version(self) -> int:
        return self.k8s.state.rv

    def create(self, obj: Any, namespace: str = "") -> dict[str, Any]:
        ns = (obj.get("metadata") or {}).get("namespace") or namespace
        code, out = self.k8s.create(self._key(obj["kind"]), ns, obj)
        if code != 201:
            raise ApiError(code, out.get("message", ""))
        return out

    def get(self, kind: str, namespace: str, name: str) -> dict[str, Any] | None:
        return self.k8s.get(self._key(kind), namespace, name)

    def update(self, kind: str, namespace: str, name: str, fn: Callable[[dict[str, Any]], object]) -> Any:
        return self.k8s.update(self._key(kind), namespace, name, fn)

    def delete(self, kind: str, namespace: str, name: str) -> dict[str, Any] | None:
        return self.k8s.delete(self._key(kind), namespace, name)

    def list(self, kind: str | None = None, namespace: str | None = None, labels: Any = None) -> list[dict[str, Any]]:
        if kind is not None and kind not in _KEY_OF_KIND:
            return []  # a kind the double does not serve has no objects
        selector = ",".join(f"{k}={v}" for k, v in (labels or {}).items())
        keys = [self._key(kind)] if kind else list(self.k8s.state.objects)
        return [o for key in keys for o in self.k8s.list(key, namespace, selector)]
