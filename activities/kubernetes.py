"""Activities that talk to the Kubernetes API of the cluster running `container` servers.

All cluster I/O goes through the official `kubernetes` client (typed APIs) against the
cluster `shared.kubernetes.api_client` selects. Objects come from the pure translator
`shared.manifests.render` and are written with server-side apply, field manager
``mcpaas``, so re-applying the same revision changes nothing and any field the platform
does not set (the HPA's replica count) stays with its owner
(https://kubernetes.io/docs/reference/using-api/server-side-apply/).

`rollout_state` is the pure judgement of a Deployment rollout
(https://kubernetes.io/docs/concepts/workloads/controllers/deployment/#deployment-status);
the deploy orchestration polls it through `rollout_status` with durable timers.

The client itself (connection, typed calls) and the cluster reads that triggers need
too (events, pod logs, replica counts) live in `shared.kubernetes`.
"""

from __future__ import annotations

from typing import Any

import azure.durable_functions as df
from kubernetes import client

from shared import manifests, package_processes, servers
from shared.errors import NotFoundError
from shared.gateway_client import endpoint_of
from shared.kubernetes import (KINDS, SERVER_KINDS, Obj, api_client, call, items, namespace_object,
                               replica_counts)
from shared.models import OperationJob, ReplicaCounts, ServerSpec
from shared.secrets import get_secret_store, resolve_env
from shared.settings import get_settings
from shared.store import get_store

bp = df.Blueprint()

FIELD_MANAGER = "mcpaas"
APPLY_PATCH = "application/apply-patch+yaml"
# container waiting reasons that no amount of waiting fixes: fail the rollout at once
FATAL_WAITING = ("ImagePullBackOff", "ErrImagePull", "InvalidImageName", "ErrImageNeverPull",
                 "CreateContainerConfigError", "CrashLoopBackOff")


def apply(api: client.ApiClient, obj: Obj) -> Obj:
    """Server-side apply `obj` (field manager `mcpaas`, conflicts forced); returns the live object."""
    meta = obj["metadata"]
    names = (meta["name"], meta["namespace"]) if KINDS[obj["kind"]][2] else (meta["name"],)
    return call(api, "patch", obj["kind"], *names, obj, field_manager=FIELD_MANAGER, force=True,
                _content_type=APPLY_PATCH)


def ensure_namespace(api: client.ApiClient, name: str) -> None:
    """Apply the servers' namespace (`namespace_object`), where the identity may.

    On AKS the control plane holds "Azure Kubernetes Service RBAC Writer" on this
    namespace only (least privilege), which does not cover the cluster-scoped Namespace
    object: the installer creates it (infra/hooks/postprovision.sh) and the 403 here is
    expected. Were it missing, the next apply fails with a 404 naming the namespace.
    """
    try:
        apply(api, namespace_object(name))
    except RuntimeError as error:
        if "HTTP 403" not in str(error):
            raise


def _delete_if_present(api: client.ApiClient, kind: str, name: str, namespace: str) -> bool:
    """Delete one object; False when it was not there. RuntimeError for other API errors."""
    try:
        call(api, "delete", kind, name, namespace)
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
    With `MCPAAS_PACKAGE_PROCESSES` and no cluster, a package server's process instead.
    """
    if package_processes.selected(get_settings()):
        return package_processes.runner().apply(spec)
    options = manifests.options_from_settings()
    source = spec.container or spec.package
    assert source is not None, "apply_spec needs a container or package spec"
    generation = 0
    with api_client() as api:
        ensure_namespace(api, options.namespace)
        for obj in manifests.render(spec, options):
            if obj["kind"] == "Secret":
                obj = manifests.fill_secret(obj, resolve_env(get_secret_store(), source.secrets))
            live = apply(api, obj)
            if obj["kind"] == "Deployment":
                generation = int(live.get("metadata", {}).get("generation", 0))
        if not source.secrets:
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
    progressing: Obj = next((c for c in status.get("conditions") or [] if c.get("type") == "Progressing"), {})
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
    if package_processes.selected(get_settings()):  # the local twin of package pods
        local = package_processes.runner()
        servers.record_observation(get_store(), op.name, local.observe(op.name) or ReplicaCounts())
        return local.rollout(op.name)
    namespace = get_settings().kube_namespace
    with api_client() as api:
        deployment = call(api, "read", "Deployment", op.name, namespace)
        core = client.CoreV1Api(api)
        pods = items(core.list_namespaced_pod(namespace, label_selector=manifests.selector(op.name),
                                              _preload_content=False))
        events = items(core.list_namespaced_event(namespace, field_selector="type=Warning",
                                                  _preload_content=False))
    names = {pod["metadata"]["name"] for pod in pods}
    # the server document shows the counts while the rollout runs (GET /api/servers/{name})
    servers.record_observation(get_store(), op.name, replica_counts(deployment))
    return rollout_state(deployment, pods, [e for e in events if e.get("involvedObject", {}).get("name") in names])


def delete_objects(name: str) -> int:
    """Delete every object of server `name` (absent ones are skipped); how many were deleted."""
    if package_processes.selected(get_settings()):
        return package_processes.runner().delete(name)
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
    return delete_objects(op.name) if manifests.in_cluster(server.spec) else 0
