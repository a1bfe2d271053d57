"""A fake Kubernetes API server at the HTTP boundary, for the official `kubernetes` client.

Real HTTP (Starlette + uvicorn on a free port) with a kubeconfig pointing at it and a
bearer token it checks. It implements what MCPaaS uses, for the kinds it renders:
server-side apply (PATCH `application/apply-patch+yaml` with `fieldManager`), get, list
(label and field selectors) and delete, plus a Deployment controller that advances one
step per read: observe the new generation and create its pods, then make them ready.
Two faults can be injected by image: `bad_images` (pods stuck in ImagePullBackOff with
a Warning event) and `stalled_images` (pods never ready, then ProgressDeadlineExceeded).

For diagnostics it also keeps what a cluster reports about a rollout: a ReplicaSet per
generation (`{name}-g{generation}`, pods `{replicaset}-{index}`), core/v1 Events
(ScalingReplicaSet, Scheduled, Started, Failed, ...) with increasing times, pod logs
(`GET .../pods/{name}/log` with `tailLines`, `sinceSeconds`, `timestamps`), an HPA
rescale (`scale`) and readiness loss (`unready` deployment names).
"""

from __future__ import annotations

import copy
import functools
import itertools
import json
import threading
import time
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import uvicorn
import yaml
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, PlainTextResponse
from starlette.routing import Route

from tests.e2e.conftest import free_port

TOKEN = "fake-kube-token"
Obj = dict[str, Any]


def _status(code: int, reason: str, message: str) -> JSONResponse:
    return JSONResponse({"kind": "Status", "apiVersion": "v1", "status": "Failure", "code": code,
                         "reason": reason, "message": message}, status_code=code)


def _matches(obj: Obj, label_selector: str | None, field_selector: str | None) -> bool:
    for term in filter(None, (label_selector or "").split(",")):
        key, _, value = term.partition("=")
        if obj.get("metadata", {}).get("labels", {}).get(key) != value:
            return False
    for term in filter(None, (field_selector or "").split(",")):
        path, _, value = term.partition("=")
        node: Any = obj
        for part in path.split("."):
            node = node.get(part) if isinstance(node, dict) else None
        if node != value:
            return False
    return True


@dataclass
class FakeKube:
    """State of the fake cluster; tests read `objects`, `applies` and set the fault sets."""

    objects: dict[tuple[str, str, str], Obj] = field(default_factory=dict)  # (plural, ns, name)
    applies: list[tuple[str, str, str]] = field(default_factory=list)  # (kind, name, fieldManager)
    bad_images: set[str] = field(default_factory=set)
    stalled_images: set[str] = field(default_factory=set)
    unready: set[str] = field(default_factory=set)  # deployment names whose pods fail readiness
    logs: dict[str, list[tuple[datetime, str]]] = field(default_factory=dict)  # pod → (time, line)
    tokens: set[str] = field(default_factory=lambda: {TOKEN})  # bearer tokens accepted
    bearers: list[str] = field(default_factory=list)  # the bearer token of every request, in order
    forbidden: set[str] = field(default_factory=set)  # plurals answered 403 (a namespace-scoped role)
    forbidden_requests: int = 0  # the next this many requests answered 403 (a role still propagating)
    _versions: itertools.count = field(default_factory=lambda: itertools.count(1))
    _events: itertools.count = field(default_factory=lambda: itertools.count(1))
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def refusal(self, request: Request) -> JSONResponse | None:
        """401 unless the request carries an accepted bearer token (each one is recorded)."""
        token = request.headers.get("authorization", "").removeprefix("Bearer ")
        self.bearers.append(token)
        return None if token in self.tokens else _status(401, "Unauthorized", "Unauthorized")

    def refuse_next(self) -> bool:
        """Whether this request is one of the `forbidden_requests` (counts it down)."""
        with self._lock:
            if self.forbidden_requests <= 0:
                return False
            self.forbidden_requests -= 1
            return True

    def get(self, plural: str, namespace: str, name: str) -> Obj | None:
        """The stored object or None (no controller step)."""
        return self.objects.get((plural, namespace, name))

    def pods(self, namespace: str, deployment: str) -> list[str]:
        """Names of the pods a Deployment owns now."""
        return sorted(k[2] for k, o in self.objects.items()
                      if k[0] == "pods" and k[1] == namespace and _owned(o, {"app.kubernetes.io/instance": deployment}))

    def event(self, namespace: str, kind: str, name: str, reason: str, message: str,
              type_: str = "Normal") -> None:
        """Record a core/v1 Event about `kind/name`; each one is a second later than the last."""
        number = next(self._events)
        stamp = datetime(2026, 1, 1, tzinfo=timezone.utc) + timedelta(seconds=number)
        key = f"{name}.{number:06d}"
        self.objects[("events", namespace, key)] = {
            "apiVersion": "v1", "kind": "Event", "metadata": {"name": key, "namespace": namespace},
            "type": type_, "reason": reason, "message": message, "count": 1,
            "lastTimestamp": stamp.strftime("%Y-%m-%dT%H:%M:%SZ"),
            "involvedObject": {"kind": kind, "name": name, "namespace": namespace}}

    def log(self, pod: str, text: str, at: datetime | None = None) -> None:
        """Append a line to a pod's log (`at` defaults to now)."""
        self.logs.setdefault(pod, []).append((at or datetime.now(timezone.utc), text))

    def scale(self, namespace: str, name: str, replicas: int) -> None:
        """The HPA rescales Deployment `name` to `replicas`: its events, pods and counts follow."""
        with self._lock:
            deployment = self.objects[("deployments", namespace, name)]
            rs = f"{name}-g{deployment['metadata']['generation']}"
            old = deployment["spec"].get("replicas", 1)
            deployment["spec"]["replicas"] = replicas
            image = deployment["spec"]["template"]["spec"]["containers"][0]["image"]
            for index in range(old, replicas):
                self._create_pod(deployment, f"{rs}-{index}", image)
            for index in range(replicas, old):
                self.objects.pop(("pods", namespace, f"{rs}-{index}"), None)
            direction = "above" if replicas > old else "below"
            self.event(namespace, "HorizontalPodAutoscaler", name, "SuccessfulRescale",
                       f"New size: {replicas}; reason: cpu resource utilization (percentage of request) "
                       f"{direction} target")
            self.event(namespace, "Deployment", name, "ScalingReplicaSet",
                       f"Scaled {'up' if replicas > old else 'down'} replica set {rs} to {replicas}")

    # ---- API verbs ---------------------------------------------------------------
    def apply(self, plural: str, namespace: str, name: str, body: Obj, manager: str) -> tuple[Obj, int]:
        with self._lock:
            key = (plural, namespace, name)
            old = self.objects.get(key)
            new = copy.deepcopy(body)
            meta = new.setdefault("metadata", {})
            if plural == "deployments":
                spec = new.setdefault("spec", {})
                spec.setdefault("replicas", (old or {}).get("spec", {}).get("replicas", 1))
            changed = old is None or old.get("spec") != new.get("spec")
            generation = 1 if old is None else old["metadata"]["generation"] + (1 if changed else 0)
            meta.update(generation=generation, resourceVersion=str(next(self._versions)),
                        uid=(old or {}).get("metadata", {}).get("uid", f"uid-{plural}-{name}"),
                        managedFields=[{"manager": manager, "operation": "Apply"}])
            if namespace:
                meta["namespace"] = namespace
            new["status"] = (old or {}).get("status", {})
            self.objects[key] = new
            self.applies.append((new.get("kind", ""), name, manager))
            return new, 200 if old else 201

    def read(self, plural: str, namespace: str, name: str) -> Obj | None:
        with self._lock:
            obj = self.objects.get((plural, namespace, name))
            if obj is not None and plural == "deployments":
                self._advance(obj)
            return copy.deepcopy(obj)

    def list(self, plural: str, namespace: str, labels: str | None, fields: str | None) -> list[Obj]:
        with self._lock:
            return [copy.deepcopy(obj) for (p, ns, _), obj in self.objects.items()
                    if p == plural and ns == namespace and _matches(obj, labels, fields)]

    def delete(self, plural: str, namespace: str, name: str) -> Obj | None:
        with self._lock:
            obj = self.objects.pop((plural, namespace, name), None)
            if obj is not None and plural == "deployments":
                instance = obj["spec"]["selector"]["matchLabels"]
                # garbage collection: the Deployment's ReplicaSets and pods go with it
                for key in [k for k, o in self.objects.items()
                            if k[0] in ("pods", "replicasets") and _owned(o, instance)]:
                    del self.objects[key]
            return obj

    # ---- the Deployment controller ----------------------------------------------
    def _advance(self, deployment: Obj) -> None:
        """One controller step: observe a new generation (create its pods) or settle it."""
        meta, spec, status = deployment["metadata"], deployment["spec"], deployment["status"]
        namespace, generation = meta["namespace"], meta["generation"]
        image = spec["template"]["spec"]["containers"][0]["image"]
        desired = spec.get("replicas", 1)
        rs = f"{meta['name']}-g{generation}"
        if status.get("observedGeneration") != generation:
            status.update(observedGeneration=generation, updatedReplicas=0,
                          conditions=[_condition("True", "ReplicaSetUpdated", "rolling out")])
            self.objects[("replicasets", namespace, rs)] = {
                "apiVersion": "apps/v1", "kind": "ReplicaSet",
                "metadata": {"name": rs, "namespace": namespace,
                             "labels": dict(spec["template"]["metadata"].get("labels", {}))}}
            self.event(namespace, "Deployment", meta["name"], "ScalingReplicaSet",
                       f"Scaled up replica set {rs} to {desired}")
            for index in range(desired):
                self._create_pod(deployment, f"{rs}-{index}", image)
            return
        selector = spec["selector"]["matchLabels"]
        if image in self.bad_images or image in self.stalled_images:
            if image in self.stalled_images:
                status["conditions"] = [_condition("False", "ProgressDeadlineExceeded",
                                                   f'ReplicaSet "{meta["name"]}" has timed out progressing.')]
            return
        for key in [k for k, o in self.objects.items()
                    if k[0] == "pods" and k[1] == namespace and _owned(o, selector)
                    and not o["metadata"]["name"].startswith(f"{rs}-")]:
            del self.objects[key]  # surge done: the old ReplicaSet scales down
            self.event(namespace, "Deployment", meta["name"], "ScalingReplicaSet",
                       f"Scaled down replica set {key[2].rsplit('-', 1)[0]} to 0")
        ready = 0 if meta["name"] in self.unready else desired
        for key in [k for k, o in self.objects.items() if k[0] == "pods" and _owned(o, selector)]:
            for container in self.objects[key]["status"]["containerStatuses"]:
                container["ready"] = bool(ready)
        status.update(replicas=desired, updatedReplicas=desired, readyReplicas=ready,
                      availableReplicas=ready,
                      conditions=[_condition("True", "NewReplicaSetAvailable", "rollout complete")])

    def _create_pod(self, deployment: Obj, name: str, image: str) -> None:
        namespace = deployment["metadata"]["namespace"]
        labels = dict(deployment["spec"]["template"]["metadata"].get("labels", {}))
        state: Obj = {"running": {"startedAt": "2026-01-01T00:00:00Z"}}
        self.event(namespace, "Pod", name, "Scheduled", f"Successfully assigned {namespace}/{name} to aks-node-0")
        if image in self.bad_images:
            state = {"waiting": {"reason": "ImagePullBackOff", "message": f'Back-off pulling image "{image}"'}}
            self.event(namespace, "Pod", name, "Failed", f'Failed to pull image "{image}": {image}: not found',
                       "Warning")
        elif image in self.stalled_images:
            state = {"waiting": {"reason": "ContainerCreating"}}
        else:
            self.event(namespace, "Pod", name, "Started", "Started container server")
            self.log(name, f"{image} serving MCP")
        self.objects[("pods", namespace, name)] = {
            "apiVersion": "v1", "kind": "Pod",
            "metadata": {"name": name, "namespace": namespace, "labels": labels},
            "spec": {"containers": [{"name": "server", "image": image}]},
            "status": {"containerStatuses": [{"name": "server", "image": image, "state": state,
                                              "ready": "running" in state}]}}


def _owned(pod: Obj, selector: dict[str, str]) -> bool:
    labels = pod.get("metadata", {}).get("labels", {})
    return all(labels.get(k) == v for k, v in selector.items())


def _condition(status: str, reason: str, message: str) -> Obj:
    return {"type": "Progressing", "status": status, "reason": reason, "message": message}


def create_app(kube: FakeKube) -> Starlette:
    """The ASGI app serving `kube` under `/api/v1` and `/apis/{group}/{version}`."""

    async def handle(request: Request) -> JSONResponse:
        refused = kube.refusal(request)
        if refused:
            return refused
        params = request.path_params
        plural, name = params["plural"], params.get("name")
        if plural in kube.forbidden or kube.refuse_next():
            return _status(403, "Forbidden", f'{plural} "{name}" is forbidden: User cannot {request.method}')
        namespace = params.get("namespace", "")
        return await _dispatch(kube, request, plural, namespace, name)

    prefixes = ["/api/{version}", "/apis/{group}/{version}"]
    routes = []
    for prefix in prefixes:
        routes += [Route(f"{prefix}/namespaces/{{namespace}}/{{plural}}/{{name}}", handle,
                         methods=["GET", "PATCH", "DELETE"]),
                   Route(f"{prefix}/namespaces/{{namespace}}/{{plural}}", handle, methods=["GET"])]
    routes += [Route("/api/{version}/{plural}/{name}", handle, methods=["GET", "PATCH", "DELETE"]),
               Route("/api/v1/namespaces/{namespace}/pods/{name}/log", functools.partial(_pod_log, kube))]
    # the log route must win over the generic `{plural}/{name}` ones
    return Starlette(routes=routes[-1:] + routes[:-1])


async def _pod_log(kube: FakeKube, request: Request) -> PlainTextResponse | JSONResponse:
    """`GET .../pods/{name}/log`: `tailLines`, `sinceSeconds` and `timestamps` as the API server does."""
    refused = kube.refusal(request)
    if refused:
        return refused
    namespace, name = request.path_params["namespace"], request.path_params["name"]
    if kube.get("pods", namespace, name) is None:
        return _status(404, "NotFound", f'pods "{name}" not found')
    query = request.query_params
    lines = kube.logs.get(name, [])
    if "sinceSeconds" in query:
        cutoff = datetime.now(timezone.utc) - timedelta(seconds=int(query["sinceSeconds"]))
        lines = [line for line in lines if line[0] >= cutoff]
    if "tailLines" in query:
        lines = lines[-int(query["tailLines"]):] if int(query["tailLines"]) else []
    stamped = query.get("timestamps") == "true"
    text = "".join(f"{at.strftime('%Y-%m-%dT%H:%M:%S.%f')}123Z {line}\n" if stamped else f"{line}\n"
                   for at, line in lines)
    return PlainTextResponse(text)


async def _dispatch(kube: FakeKube, request: Request, plural: str, namespace: str,
                    name: str | None) -> JSONResponse:
    if request.method == "GET" and name is None:
        items = kube.list(plural, namespace, request.query_params.get("labelSelector"),
                          request.query_params.get("fieldSelector"))
        return JSONResponse({"kind": "List", "apiVersion": "v1", "metadata": {}, "items": items})
    assert name is not None
    if request.method == "PATCH":
        if request.headers.get("content-type") != "application/apply-patch+yaml":
            return _status(415, "UnsupportedMediaType", "only server-side apply is implemented")
        manager = request.query_params.get("fieldManager")
        if not manager:
            return _status(422, "Invalid", "fieldManager is required for apply patch")
        body = yaml.safe_load(await request.body())
        obj, code = kube.apply(plural, namespace, name, body, manager)
        return JSONResponse(obj, status_code=code)
    found = kube.read(plural, namespace, name) if request.method == "GET" else kube.delete(plural, namespace, name)
    if found is None:
        return _status(404, "NotFound", f'{plural} "{name}" not found')
    return JSONResponse(found)


@dataclass
class RunningFakeKube:
    """A started fake: its state, URL and a kubeconfig file pointing at it."""

    kube: FakeKube
    url: str
    kubeconfig: Path
    server: uvicorn.Server
    thread: threading.Thread

    def stop(self) -> None:
        self.server.should_exit = True
        self.thread.join(10)


def write_kubeconfig(path: Path, url: str) -> Path:
    """A kubeconfig with one cluster at `url` and the fake's bearer token."""
    path.write_text(yaml.safe_dump({
        "apiVersion": "v1", "kind": "Config", "current-context": "fake",
        "clusters": [{"name": "fake", "cluster": {"server": url}}],
        "users": [{"name": "fake", "user": {"token": TOKEN}}],
        "contexts": [{"name": "fake", "context": {"cluster": "fake", "user": "fake"}}]}))
    return path


def start_fake_kube(directory: Path, tls: tuple[Path, Path] | None = None) -> RunningFakeKube:
    """Serve a new FakeKube on a free loopback port in a thread; wait until it listens.

    `tls`: (certificate chain PEM, key PEM) files to serve HTTPS with, as an API server does.
    """
    kube = FakeKube()
    port = free_port()
    certfile, keyfile = tls or (None, None)
    server = uvicorn.Server(uvicorn.Config(create_app(kube), host="127.0.0.1", port=port, log_level="warning",
                                           ssl_certfile=certfile, ssl_keyfile=keyfile))
    thread = threading.Thread(target=server.run, name="fake-kube", daemon=True)
    thread.start()
    deadline = time.monotonic() + 10
    while not server.started:
        if time.monotonic() > deadline:
            raise TimeoutError("fake Kubernetes API did not start")
        time.sleep(0.02)
    url = f"{'https' if tls else 'http'}://127.0.0.1:{port}"
    return RunningFakeKube(kube, url, write_kubeconfig(directory / "kubeconfig", url), server, thread)


def dump(kube: FakeKube) -> str:
    """The stored objects as JSON, for assertion messages."""
    return json.dumps({"/".join(k): v for k, v in kube.objects.items()}, indent=1)[:4000]
