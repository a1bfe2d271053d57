"""Kubernetes API client of the platform: connection, typed calls and cluster reads.

Both sides use it: the deploy activities (`activities.kubernetes`: apply, rollout,
delete) and the HTTP and timer triggers (`triggers.diagnostics`: events, pod logs,
reconcile), which must not import activities (docs/architecture.md, "Rules that keep it simple"). All
cluster I/O goes through the official `kubernetes` client (typed APIs) against the
cluster of `MCPAAS_KUBECONFIG` or, on Azure, `MCPAAS_AKS_CLUSTER_ID` (`api_client`);
every call here blocks (run it in a worker thread from async code).

Reads (FR-003): `server_events` (core/v1 Events of a server's objects, ReplicaSets and
pods), `pod_logs` (`read_namespaced_pod_log` of every pod), `observe` (replica counts
and scaling events, stored on the server document by `rollout_status` and the
reconcile timer).
"""

from __future__ import annotations

import json
import math
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from kubernetes import client, config
from kubernetes.client.exceptions import ApiException

from shared import aks, manifests, package_processes
from shared.models import ClusterEvent, ReplicaCounts
from shared.settings import get_settings

# event reasons of the Deployment controller and the HPA that mean "the replica count changed"
SCALING_REASONS = ("ScalingReplicaSet", "SuccessfulRescale")
SCALING_EVENTS_KEPT = 20
# the kinds `manifests.render` creates, each named after the server
SERVER_KINDS = ("Deployment", "Service", "HorizontalPodAutoscaler", "PodDisruptionBudget",
                "NetworkPolicy", "ServiceAccount", "Secret", "ConfigMap")
Obj = dict[str, Any]

# kind → (typed API class, method suffix, namespaced)
KINDS: dict[str, tuple[type, str, bool]] = {
    "Namespace": (client.CoreV1Api, "namespace", False),
    "ServiceAccount": (client.CoreV1Api, "service_account", True),
    "Secret": (client.CoreV1Api, "secret", True),
    "ConfigMap": (client.CoreV1Api, "config_map", True),
    "Service": (client.CoreV1Api, "service", True),
    "Deployment": (client.AppsV1Api, "deployment", True),
    "HorizontalPodAutoscaler": (client.AutoscalingV2Api, "horizontal_pod_autoscaler", True),
    "PodDisruptionBudget": (client.PolicyV1Api, "pod_disruption_budget", True),
    "NetworkPolicy": (client.NetworkingV1Api, "network_policy", True),
}


@contextmanager
def api_client(kubeconfig: Path | None = None) -> Iterator[client.ApiClient]:
    """An ApiClient for the cluster of `kubeconfig`, else the configured target.

    Adapter selection: `MCPAAS_KUBECONFIG` (a file: local clusters, tests, the installer),
    else `MCPAAS_AKS_CLUSTER_ID` (Azure: `shared.aks`, endpoint from ARM and an Entra
    token of the managed identity). Raises RuntimeError when neither is configured.
    """
    settings = get_settings()
    path = kubeconfig or settings.kubeconfig
    if path is not None:
        api = config.new_client_from_config(config_file=str(path))
    elif settings.aks_cluster_id:
        api = client.ApiClient(aks.connection(settings.aks_cluster_id).configuration())
    else:
        raise RuntimeError("no Kubernetes target: set MCPAAS_KUBECONFIG or MCPAAS_AKS_CLUSTER_ID")
    try:
        yield api
    finally:
        api.close()


def namespace_object(name: str) -> Obj:
    """The servers' namespace, enforcing the restricted Pod Security Standard."""
    return {"apiVersion": "v1", "kind": "Namespace",
            "metadata": {"name": name, "labels": {"app.kubernetes.io/managed-by": "mcpaas",
                                                  "pod-security.kubernetes.io/enforce": "restricted"}}}


def call(api: client.ApiClient, verb: str, kind: str, *args: Any, **kwargs: Any) -> Obj:
    """`{verb}_[namespaced_]{kind}` of the typed API; the JSON answer as a dict.

    Raises RuntimeError naming the object for an API error (an activity's failure reason).
    """
    api_class, suffix, namespaced = KINDS[kind]
    method = getattr(api_class(api), f"{verb}_{'namespaced_' if namespaced else ''}{suffix}")
    try:
        response = method(*args, _preload_content=False, **kwargs)
    except ApiException as error:
        raise RuntimeError(f"{verb} {kind} {args[0]}: HTTP {error.status} {error.reason}: "
                           f"{(error.body or '')[:300]}") from None
    return json.loads(response.data or b"{}")


def raw_body(response: Any) -> bytes:
    """The body of a client call made with `_preload_content=False`: the generated methods
    are annotated with the model they would build, but such a call returns the urllib3
    response itself."""
    return response.data


def items(response: Any) -> list[Obj]:
    """The `items` of a list call made with `_preload_content=False` (see `raw_body`)."""
    return json.loads(raw_body(response))["items"]


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
    replica_sets = {rs["metadata"]["name"] for rs in items(apps.list_namespaced_replica_set(
        namespace, label_selector=selector, _preload_content=False))}
    pods = {pod["metadata"]["name"] for pod in items(core.list_namespaced_pod(
        namespace, label_selector=selector, _preload_content=False))}

    def about_server(involved: Obj) -> bool:
        kind, obj = involved.get("kind"), involved.get("name", "")
        if kind == "Pod":
            return obj in pods or obj.rsplit("-", 1)[0] in replica_sets
        return obj in replica_sets if kind == "ReplicaSet" else kind in SERVER_KINDS and obj == name

    events = [to_cluster_event(e) for e in items(core.list_namespaced_event(namespace, _preload_content=False))
              if about_server(e.get("involvedObject", {}))]
    oldest = datetime.min.replace(tzinfo=timezone.utc)
    return sorted(events, key=lambda e: e.time or oldest, reverse=True)


def server_events(name: str, limit: int = 100) -> list[ClusterEvent]:
    """The newest `limit` Kubernetes events of container server `name` (newest first).

    Raises RuntimeError when no Kubernetes target is configured, ApiException for API errors.
    Package processes (`shared.package_processes`) have no cluster events: none.
    """
    if package_processes.selected(get_settings()):
        return []
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
    if package_processes.selected(get_settings()):
        counts = package_processes.runner().observe(name)
        return None if counts is None else (counts, [])
    namespace = get_settings().kube_namespace
    with api_client() as api:
        try:
            deployment = call(api, "read", "Deployment", name, namespace)
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
    no Kubernetes target is configured, ApiException for other API errors. For package
    processes (`shared.package_processes`), the server lines of the process's stdout.
    """
    if package_processes.selected(get_settings()):
        return package_processes.runner().logs(name, tail, since)
    namespace = get_settings().kube_namespace
    since_seconds = None
    if since is not None:  # the API takes whole seconds back from now; the exact cut is below
        since_seconds = max(1, math.ceil((datetime.now(timezone.utc) - since).total_seconds()))
    lines: list[tuple[datetime, str]] = []
    with api_client() as api:
        core = client.CoreV1Api(api)
        for pod in items(core.list_namespaced_pod(namespace, label_selector=manifests.selector(name),
                                                   _preload_content=False)):
            pod_name = pod["metadata"]["name"]
            try:
                text = raw_body(core.read_namespaced_pod_log(
                    pod_name, namespace, container="server", tail_lines=tail, since_seconds=since_seconds,
                    timestamps=True, _preload_content=False)).decode("utf-8", "replace")
            except ApiException as error:
                if error.status in (400, 404):  # container waiting to start, or pod just gone
                    continue
                raise
            lines += filter(None, (_log_line(pod_name, raw) for raw in text.splitlines()))
    kept = sorted(line for line in lines if since is None or line[0] >= since)
    return [text for _, text in kept[-tail:]] if tail > 0 else []
