"""Activities that talk to the Kubernetes API of the cluster running `container` servers.

All cluster I/O goes through the official `kubernetes` client (typed APIs) against the
cluster of `MCPAAS_KUBECONFIG`. Objects come from the pure translator
`shared.manifests.render` and are written with server-side apply, field manager
``mcpaas``, so re-applying the same revision changes nothing and any field the platform
does not set (the HPA's replica count) stays with its owner
(https://kubernetes.io/docs/reference/using-api/server-side-apply/).

`rollout_state` is the pure judgement of a Deployment rollout
(https://kubernetes.io/docs/concepts/workloads/controllers/deployment/#deployment-status);
the deploy orchestration polls it through `rollout_status` with durable timers.

Diagnostics (FR-003) read the same cluster: `server_events` (core/v1 Events of the
server's objects, ReplicaSets and pods), `pod_logs` (`read_namespaced_pod_log` of every
pod) and `observe` (replica counts and scaling events, which `rollout_status` and the
reconcile timer store on the server document).
"""

from __future__ import annotations

import json
import math
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import azure.durable_functions as df
from kubernetes import client, config
from kubernetes.client.exceptions import ApiException

from activities.gateway import endpoint_of
from shared import manifests, servers
from shared.errors import NotFoundError
from shared.models import ClusterEvent, OperationJob, ReplicaCounts, ServerKind, ServerSpec
from shared.secrets import get_secret_store, resolve_env
from shared.settings import get_settings
from shared.store import get_store

bp = df.Blueprint()

FIELD_MANAGER = "mcpaas"
APPLY_PATCH = "application/apply-patch+yaml"
# container waiting reasons that no amount of waiting fixes: fail the rollout at once
FATAL_WAITING = ("ImagePullBackOff", "ErrImagePull", "InvalidImageName", "ErrImageNeverPull",
                 "CreateContainerConfigError", "CrashLoopBackOff")
# event reasons of the Deployment controller and the HPA that mean "the replica count changed"
SCALING_REASONS = ("ScalingReplicaSet", "SuccessfulRescale")
SCALING_EVENTS_KEPT = 20
# the kinds `render` creates, each named after the server
SERVER_KINDS = ("Deployment", "Service", "HorizontalPodAutoscaler", "PodDisruptionBudget",
                "NetworkPolicy", "ServiceAccount", "Secret")
Obj = dict[str, Any]

# kind → (typed API class, method suffix, namespaced)
KINDS: dict[str, tuple[type, str, bool]] = {
    "Namespace": (client.CoreV1Api, "namespace", False),
    "ServiceAccount": (client.CoreV1Api, "service_account", True),
    "Secret": (client.CoreV1Api, "secret", True),
    "Service": (client.CoreV1Api, "service", True),
    "Deployment": (client.AppsV1Api, "deployment", True),
    "HorizontalPodAutoscaler": (client.AutoscalingV2Api, "horizontal_pod_autoscaler", True),
    "PodDisruptionBudget": (client.PolicyV1Api, "pod_disruption_budget", True),
    "NetworkPolicy": (client.NetworkingV1Api, "network_policy", True),
}


@contextmanager
def api_client(kubeconfig: Path | None = None) -> Iterator[client.ApiClient]:
    """An ApiClient for the cluster of `kubeconfig`, by default `MCPAAS_KUBECONFIG`.

    Raises RuntimeError when no kubeconfig is configured.
    """
    path = kubeconfig or get_settings().kubeconfig
    if path is None:
        raise RuntimeError("no Kubernetes target: MCPAAS_KUBECONFIG is not set")
    api = config.new_client_from_config(config_file=str(path))
    try:
        yield api
    finally:
        api.close()


def _call(api: client.ApiClient, verb: str, kind: str, *args: Any, **kwargs: Any) -> Obj:
    """`{verb}_[namespaced_]{kind}` of the typed API; the JSON answer as a dict.

    Raises RuntimeError naming the object for an API error (the activity's failure reason).
    """
    api_class, suffix, namespaced = KINDS[kind]
    method = getattr(api_class(api), f"{verb}_{'namespaced_' if namespaced else ''}{suffix}")
    try:
        response = method(*args, _preload_content=False, **kwargs)
    except ApiException as error:
        raise RuntimeError(f"{verb} {kind} {args[0]}: HTTP {error.status} {error.reason}: "
                           f"{(error.body or '')[:300]}") from None
    return json.loads(response.data or b"{}")


def apply(api: client.ApiClient, obj: Obj) -> Obj:
    """Server-side apply `obj` (field manager `mcpaas`, conflicts forced); returns the live object."""
    meta = obj["metadata"]
    names = (meta["name"], meta["namespace"]) if KINDS[obj["kind"]][2] else (meta["name"],)
    return _call(api, "patch", obj["kind"], *names, obj, field_manager=FIELD_MANAGER, force=True,
                 _content_type=APPLY_PATCH)


def namespace_object(name: str) -> Obj:
    """The servers' namespace, enforcing the restricted Pod Security Standard."""
    return {"apiVersion": "v1", "kind": "Namespace",
            "metadata": {"name": name, "labels": {"app.kubernetes.io/managed-by": "mcpaas",
                                                  "pod-security.kubernetes.io/enforce": "restricted"}}}


def _delete_if_present(api: client.ApiClient, kind: str, name: str, namespace: str) -> bool:
    """Delete one object; False when it was not there. RuntimeError for other API errors."""
    try:
        _call(api, "delete", kind, name, namespace)
    except RuntimeError as error:
        if "HTTP 404" not in str(error):
            raise
        return False
    return True


def apply_spec(spec: ServerSpec) -> int:
    """Apply the namespace and every rendered object of `spec`; the Deployment's generation.

    The Secret gets its values from the secret store here, on its way to the API server
    only (NFR-SEC-002); a spec without secrets removes a Secret left by an earlier
    revision. Raises SecretNotFoundError naming the variable if a reference is gone.
    """
    options = manifests.options_from_settings()
    assert spec.container is not None, "apply_spec needs a container spec"
    generation = 0
    with api_client() as api:
        for obj in [namespace_object(options.namespace), *manifests.render(spec, options)]:
            if obj["kind"] == "Secret":
                obj = manifests.fill_secret(obj, resolve_env(get_secret_store(), spec.container.secrets))
            live = apply(api, obj)
            if obj["kind"] == "Deployment":
                generation = int(live.get("metadata", {}).get("generation", 0))
        if not spec.container.secrets:
            _delete_if_present(api, "Secret", spec.name, options.namespace)
    return generation


@bp.activity_trigger(input_name="job")
def apply_manifests(job: dict[str, Any]) -> dict[str, Any]:
    """Apply the job's spec; returns `{"generation", "endpoint", "poll_seconds", "timeout_seconds"}`.

    `endpoint` is the server's public URL on the gateway, which proxies to the Service.

    The polling cadence travels in the result so the orchestrator stays free of settings
    reads (replay-safe). Raises RuntimeError for API errors.
    """
    op = OperationJob.model_validate(job)
    settings = get_settings()
    generation = apply_spec(ServerSpec.model_validate(op.spec))
    return {"generation": generation, "endpoint": endpoint_of(op.name), "poll_seconds": settings.rollout_poll_seconds,
            "timeout_seconds": settings.rollout_timeout_seconds}


def _pod_problems(pods: list[Obj], events: list[Obj]) -> list[str]:
    """`pod: Reason: message` for every container stuck on a fatal waiting reason."""
    warnings: dict[str, str] = {}
    for event in events:  # the newest Warning per pod tells why (e.g. "manifest unknown")
        if event.get("type") == "Warning":
            warnings[event.get("involvedObject", {}).get("name", "")] = event.get("message", "")
    problems = []
    for pod in pods:
        name = pod["metadata"]["name"]
        for status in pod.get("status", {}).get("containerStatuses") or []:
            waiting = (status.get("state") or {}).get("waiting") or {}
            if waiting.get("reason") in FATAL_WAITING:
                detail = warnings.get(name) or waiting.get("message", "")
                problems.append(f"pod {name}: {waiting['reason']}: {detail}".rstrip(": "))
    return problems


def rollout_state(deployment: Obj, pods: list[Obj], events: list[Obj]) -> dict[str, Any]:
    """Judge a rollout: `{"state": "progressing"|"complete"|"failed", "reason", "ready", "desired"}`.

    Complete when the controller observed the current generation and every desired
    replica is updated and available with no old ones left; failed on a missed progress
    deadline or a pod stuck on a fatal waiting reason (ImagePullBackOff, ...).
    """
    spec, status = deployment.get("spec", {}), deployment.get("status", {})
    desired = int(spec.get("replicas", 1))
    counts = {"ready": int(status.get("availableReplicas", 0)), "desired": desired}
    # judge only pods of the current template: an older revision's pods are on their way out
    images = [c.get("image") for c in spec.get("template", {}).get("spec", {}).get("containers", [])]
    current_pods = [p for p in pods if [c.get("image") for c in p.get("spec", {}).get("containers", [])] == images]
    problems = _pod_problems(current_pods, events)
    if problems:
        return {"state": "failed", "reason": "; ".join(problems), **counts}
    current = int(status.get("observedGeneration", 0)) >= int(deployment["metadata"].get("generation", 0))
    progressing = next((c for c in status.get("conditions") or [] if c.get("type") == "Progressing"), {})
    if current and progressing.get("reason") == "ProgressDeadlineExceeded":
        return {"state": "failed", "reason": f"rollout missed its progress deadline "
                f"({spec.get('progressDeadlineSeconds', 600)} s): {progressing.get('message', '')}", **counts}
    updated = int(status.get("updatedReplicas", 0))
    done = current and updated >= desired and counts["ready"] >= desired and int(status.get("replicas", 0)) <= updated
    return {"state": "complete" if done else "progressing", "reason": "", **counts}


@bp.activity_trigger(input_name="job")
def rollout_status(job: dict[str, Any]) -> dict[str, Any]:
    """Read the server's Deployment, pods and Warning events; `rollout_state` of them."""
    op = OperationJob.model_validate(job)
    namespace = get_settings().kube_namespace
    with api_client() as api:
        deployment = _call(api, "read", "Deployment", op.name, namespace)
        core = client.CoreV1Api(api)
        pods = json.loads(core.list_namespaced_pod(namespace, label_selector=manifests.selector(op.name),
                                                   _preload_content=False).data)["items"]
        events = json.loads(core.list_namespaced_event(namespace, field_selector="type=Warning",
                                                       _preload_content=False).data)["items"]
    names = {pod["metadata"]["name"] for pod in pods}
    # the server document shows the counts while the rollout runs (GET /api/servers/{name})
    servers.record_observation(get_store(), op.name, replica_counts(deployment))
    return rollout_state(deployment, pods, [e for e in events if e.get("involvedObject", {}).get("name") in names])


def delete_objects(name: str) -> int:
    """Delete every object of server `name` (absent ones are skipped); how many were deleted."""
    namespace = get_settings().kube_namespace
    with api_client() as api:
        return sum(_delete_if_present(api, kind, name, namespace) for kind in reversed(SERVER_KINDS))


@bp.activity_trigger(input_name="job")
def restore_manifests(job: dict[str, Any]) -> int:
    """Re-apply the server's last good revision after a failed rollout; returns its number.

    With no good revision yet (a failed first deploy) the objects are deleted instead
    and 0 is returned, so no crash-looping pods stay behind.
    """
    op = OperationJob.model_validate(job)
    store = get_store()
    good = servers.load_server(store, op.name)[0].revision
    if good == 0:
        delete_objects(op.name)
        return 0
    apply_spec(servers.revision_spec(store, op.name, good))
    return good


@bp.activity_trigger(input_name="job")
def delete_manifests(job: dict[str, Any]) -> int:
    """Delete the Kubernetes objects of a `container` server; how many existed.

    Other kinds (and a server already gone) have none: 0 without touching a cluster,
    so the delete orchestration can call this for every server. Raises RuntimeError
    for API errors or when no Kubernetes target is configured.
    """
    op = OperationJob.model_validate(job)
    try:
        server = servers.load_server(get_store(), op.name)[0]
    except NotFoundError:
        return 0
    return delete_objects(op.name) if server.spec.kind is ServerKind.CONTAINER else 0


# ---- diagnostics (FR-003) ------------------------------------------------------------
def _items(response: Any) -> list[Obj]:
    return json.loads(response.data)["items"]


def _time(event: Obj) -> datetime | None:
    """When an event last happened: core/v1 fills `lastTimestamp`, events.k8s.io `eventTime`."""
    text = event.get("lastTimestamp") or event.get("eventTime") or event.get("metadata", {}).get("creationTimestamp")
    return datetime.fromisoformat(text.replace("Z", "+00:00")) if text else None


def to_cluster_event(event: Obj) -> ClusterEvent:
    """A core/v1 Event as the API shows it."""
    involved = event.get("involvedObject", {})
    return ClusterEvent(time=_time(event), type=event.get("type", "Normal"), reason=event.get("reason", ""),
                        message=event.get("message", ""), object=f"{involved.get('kind')}/{involved.get('name')}",
                        count=int(event.get("count") or 1))


def _server_events(api: client.ApiClient, name: str, namespace: str) -> list[ClusterEvent]:
    """Events about server `name`'s objects, its ReplicaSets and their pods, newest first.

    Pods are matched by their ReplicaSet's name prefix as well as by label, so the
    events of pods already replaced (a failed rollout's) stay visible while the
    ReplicaSet is kept in the Deployment's revision history.
    """
    core, apps = client.CoreV1Api(api), client.AppsV1Api(api)
    selector = manifests.selector(name)
    replica_sets = {rs["metadata"]["name"] for rs in _items(apps.list_namespaced_replica_set(
        namespace, label_selector=selector, _preload_content=False))}
    pods = {pod["metadata"]["name"] for pod in _items(core.list_namespaced_pod(
        namespace, label_selector=selector, _preload_content=False))}

    def about_server(involved: Obj) -> bool:
        kind, obj = involved.get("kind"), involved.get("name", "")
        if kind == "Pod":
            return obj in pods or obj.rsplit("-", 1)[0] in replica_sets
        return obj in replica_sets if kind == "ReplicaSet" else kind in SERVER_KINDS and obj == name

    events = [to_cluster_event(e) for e in _items(core.list_namespaced_event(namespace, _preload_content=False))
              if about_server(e.get("involvedObject", {}))]
    oldest = datetime.min.replace(tzinfo=timezone.utc)
    return sorted(events, key=lambda e: e.time or oldest, reverse=True)


def server_events(name: str, limit: int = 100) -> list[ClusterEvent]:
    """The newest `limit` Kubernetes events of container server `name` (newest first).

    Raises RuntimeError when no Kubernetes target is configured, ApiException for API errors.
    """
    with api_client() as api:
        return _server_events(api, name, get_settings().kube_namespace)[:limit]


def replica_counts(deployment: Obj) -> ReplicaCounts:
    """Desired (spec, owned by the HPA), ready, available and updated replicas of a Deployment."""
    status = deployment.get("status", {})
    return ReplicaCounts(desired=int(deployment.get("spec", {}).get("replicas", 1)),
                         ready=int(status.get("readyReplicas", 0)), available=int(status.get("availableReplicas", 0)),
                         updated=int(status.get("updatedReplicas", 0)))


def observe(name: str) -> tuple[ReplicaCounts, list[ClusterEvent]] | None:
    """Replica counts and the newest scaling events of server `name`; None without a Deployment.

    Raises RuntimeError for API errors or when no Kubernetes target is configured.
    """
    namespace = get_settings().kube_namespace
    with api_client() as api:
        try:
            deployment = _call(api, "read", "Deployment", name, namespace)
        except RuntimeError as error:
            if "HTTP 404" in str(error):
                return None
            raise
        scaling = [e for e in _server_events(api, name, namespace) if e.reason in SCALING_REASONS]
    return replica_counts(deployment), scaling[:SCALING_EVENTS_KEPT]


def _log_line(pod: str, raw: str) -> tuple[datetime, str] | None:
    """`<RFC 3339 nano> text` from the API → (time, `<ISO time µs>Z [pod] text`), the gateway log format."""
    stamp, _, text = raw.partition(" ")
    try:
        head, _, fraction = stamp.rstrip("Z").partition(".")
        at = datetime.fromisoformat(f"{head}.{(fraction or '0')[:6]:0<6}+00:00")
    except ValueError:
        return None
    return at, f"{at.strftime('%Y-%m-%dT%H:%M:%S.%fZ')} [{pod}] {text}"


def pod_logs(name: str, tail: int = 100, since: datetime | None = None) -> list[str]:
    """The newest `tail` log lines of every pod of server `name` at or after `since`, oldest first.

    Lines read `<UTC time> [<pod>] <text>` like a package server's log. Pods whose
    container has not started have no log yet and are skipped. Raises RuntimeError when
    no Kubernetes target is configured, ApiException for other API errors.
    """
    namespace = get_settings().kube_namespace
    since_seconds = None
    if since is not None:  # the API takes whole seconds back from now; the exact cut is below
        since_seconds = max(1, math.ceil((datetime.now(timezone.utc) - since).total_seconds()))
    lines: list[tuple[datetime, str]] = []
    with api_client() as api:
        core = client.CoreV1Api(api)
        for pod in _items(core.list_namespaced_pod(namespace, label_selector=manifests.selector(name),
                                                   _preload_content=False)):
            pod_name = pod["metadata"]["name"]
            try:
                text = core.read_namespaced_pod_log(pod_name, namespace, container="server", tail_lines=tail,
                                                    since_seconds=since_seconds, timestamps=True,
                                                    _preload_content=False).data.decode("utf-8", "replace")
            except ApiException as error:
                if error.status in (400, 404):  # container waiting to start, or pod just gone
                    continue
                raise
            lines += filter(None, (_log_line(pod_name, raw) for raw in text.splitlines()))
    kept = sorted(line for line in lines if since is None or line[0] >= since)
    return [text for _, text in kept[-tail:]] if tail > 0 else []
