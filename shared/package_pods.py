"""A `package` server on Kubernetes: its own pod, never the shared gateway pods (issue 11 item 4).

`render_package(spec, options)` gives, in apply order: ServiceAccount (no API token, no
workload identity: tenant code gets no platform credential), ConfigMap (the pod's
settings: single-server mode, the spec, the sandbox opt-in), Secret (values filled at
apply time, mounted as files), Deployment, Service, NetworkPolicy. The pod runs the
gateway image in single-server mode (`gateway.upstreams.single`): one process bridges Streamable
HTTP on port 8080 `/mcp` to the stdio children of this one server. The central gateway
authenticates, authorizes, rate-limits and audits every call, then proxies to the
Service like a `container` server (docs/kubernetes.md).

Inside the pod the bubblewrap sandbox is off (`MCPAAS_GATEWAY_SANDBOX=none`, with the
server's team opted in for this pod only): the pod is the sandbox. It runs under the
restricted Pod Security Standard (non-root, read-only root file system with emptyDirs
for the server's directory and `/tmp`, every capability dropped, RuntimeDefault seccomp,
no privilege escalation), its memory and CPU are cgroup limits from `package.limits`,
and its NetworkPolicy admits only the gateway's pods (and, for `network: none`, denies
all egress). Pure: no I/O, the same spec and options always give the same objects.
"""

from __future__ import annotations

import json
from typing import Any

from shared.manifests import (CONFIG_HASH_ANNOTATION, GATEWAY_NAME, GATEWAY_PORT, INSTANCE_LABEL,
                              PROGRESS_DEADLINE_SECONDS, RUN_AS_USER, RenderOptions, labels, sha256_of)
from shared.models import NetworkAccess, SecretSource, ServerSpec

Obj = dict[str, Any]
DATA_DIR = "/var/lib/mcpaas"
SECRETS_DIR = "/var/run/mcpaas/secrets"
# MiB the bridge process (Python, uvicorn, the MCP session state) needs beside the child
BRIDGE_MEMORY_MB = 192
# the server's own memory when `package.limits.memory_mb` is unset (the sandbox default)
DEFAULT_SERVER_MEMORY_MB = 1024
# an install step may take as long as the gateway allows it (gateway.children.provision), ~10 min
STARTUP_PROBE_FAILURES = 130
STARTUP_PROBE_PERIOD_SECONDS = 5


def pod_spec(spec: ServerSpec) -> ServerSpec:
    """The spec the pod serves: each secret is referenced by its key in the mounted
    Secret (the variable's own name, `shared.secrets.mounted`), never by the platform's
    secret-store reference, which the pod could not read anyway."""
    package = spec.package
    assert package is not None, "pod_spec needs a package spec"
    secrets = {name: SecretSource(ref=name) for name in package.secrets}
    return spec.model_copy(update={"package": package.model_copy(update={"secrets": secrets})})


def pod_settings(spec: ServerSpec) -> dict[str, str]:
    """The pod's `MCPAAS_*` settings (its ConfigMap's data)."""
    package = spec.package
    assert package is not None
    data = {
        "MCPAAS_GATEWAY_SINGLE_SERVER": spec.name,
        "MCPAAS_GATEWAY_SINGLE_SERVER_SPEC": pod_spec(spec).model_dump_json(exclude_none=True),
        # the pod is the sandbox (restricted pod security, its own cgroup and network
        # policy); bubblewrap would need user namespaces the restricted profile forbids
        "MCPAAS_GATEWAY_SANDBOX": "none",
        "MCPAAS_GATEWAY_HOST": "0.0.0.0",  # nosec B104: the Service and NetworkPolicy front it
        "MCPAAS_GATEWAY_PORT": str(GATEWAY_PORT),
        "MCPAAS_DATA_DIR": DATA_DIR,
    }
    if spec.owner_team:  # the opt-in `none` requires, for this one server's team only
        data["MCPAAS_GATEWAY_UNSANDBOXED_TEAMS"] = spec.owner_team
    if package.secrets:
        data["MCPAAS_SECRETS_MOUNT_DIR"] = SECRETS_DIR
    return data


def resources(spec: ServerSpec) -> Obj:
    """Requests = limits (Guaranteed QoS): the server's memory (`package.limits.memory_mb`,
    else `DEFAULT_SERVER_MEMORY_MB`) plus the bridge's, in Mi; CPU 250m requested, 1 core max."""
    limits = spec.package.limits if spec.package else None
    memory = f"{(limits.memory_mb if limits and limits.memory_mb else DEFAULT_SERVER_MEMORY_MB) + BRIDGE_MEMORY_MB}Mi"
    return {"requests": {"cpu": "250m", "memory": memory}, "limits": {"cpu": "1", "memory": memory}}


def _meta(spec: ServerSpec, options: RenderOptions) -> Obj:
    return {"name": spec.name, "namespace": options.namespace, "labels": labels(spec.name)}


def _container(spec: ServerSpec, image: str) -> Obj:
    assert spec.package is not None
    http = {"port": "mcp", "scheme": "HTTP"}
    mounts: list[Obj] = [{"name": "data", "mountPath": DATA_DIR}, {"name": "tmp", "mountPath": "/tmp"}]
    if spec.package.secrets:
        mounts.append({"name": "secrets", "mountPath": SECRETS_DIR, "readOnly": True})
    return {
        "name": "server", "image": image, "imagePullPolicy": "Always",
        "ports": [{"name": "mcp", "containerPort": GATEWAY_PORT, "protocol": "TCP"}],
        "envFrom": [{"configMapRef": {"name": spec.name}}],
        "resources": resources(spec),
        # the process listens once its install step is done (gateway.upstreams.single): give it time
        "startupProbe": {"httpGet": {**http, "path": "/healthz"}, "periodSeconds": STARTUP_PROBE_PERIOD_SECONDS,
                         "timeoutSeconds": 3, "failureThreshold": STARTUP_PROBE_FAILURES},
        "livenessProbe": {"httpGet": {**http, "path": "/healthz"}, "periodSeconds": 10, "timeoutSeconds": 3,
                          "failureThreshold": 3},
        "readinessProbe": {"httpGet": {**http, "path": "/readyz"}, "periodSeconds": 5, "timeoutSeconds": 3,
                           "failureThreshold": 3},
        "securityContext": {"allowPrivilegeEscalation": False, "readOnlyRootFilesystem": True,
                            "runAsNonRoot": True, "runAsUser": RUN_AS_USER, "runAsGroup": RUN_AS_USER,
                            "capabilities": {"drop": ["ALL"]}, "seccompProfile": {"type": "RuntimeDefault"}},
        "volumeMounts": mounts,
    }


def _deployment(spec: ServerSpec, options: RenderOptions, config: dict[str, str]) -> Obj:
    assert spec.package is not None and options.gateway_image
    volumes: list[Obj] = [{"name": "data", "emptyDir": {"sizeLimit": "2Gi"}},
                          {"name": "tmp", "emptyDir": {"sizeLimit": "256Mi"}}]
    if spec.package.secrets:  # group-readable: the pod's fsGroup is its only group
        volumes.append({"name": "secrets", "secret": {"secretName": spec.name, "defaultMode": 0o440}})
    # the pods roll when the settings or a secret reference change (values never count)
    fingerprint = sha256_of({"config": config, "secrets": {k: s.ref for k, s in spec.package.secrets.items()}})
    template = {
        "metadata": {"labels": labels(spec.name), "annotations": {CONFIG_HASH_ANNOTATION: fingerprint}},
        "spec": {
            "serviceAccountName": spec.name,
            "automountServiceAccountToken": False,
            "enableServiceLinks": False,  # no other Services' addresses in the tenant's environment
            "securityContext": {"runAsNonRoot": True, "runAsUser": RUN_AS_USER, "runAsGroup": RUN_AS_USER,
                                "fsGroup": RUN_AS_USER, "seccompProfile": {"type": "RuntimeDefault"}},
            "containers": [_container(spec, options.gateway_image)],
            "volumes": volumes,
        },
    }
    # one replica: an MCP session lives in the pod whose child serves it
    body = {"replicas": 1 if spec.enabled else 0, "progressDeadlineSeconds": PROGRESS_DEADLINE_SECONDS,
            "revisionHistoryLimit": 5, "selector": {"matchLabels": {INSTANCE_LABEL: spec.name}},
            "strategy": {"type": "RollingUpdate", "rollingUpdate": {"maxUnavailable": 0, "maxSurge": 1}},
            "template": template}
    return {"apiVersion": "apps/v1", "kind": "Deployment", "metadata": _meta(spec, options), "spec": body}


def _network_policy(spec: ServerSpec, options: RenderOptions) -> Obj:
    assert spec.package is not None
    gateway = {"namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": options.gateway_namespace}},
               "podSelector": {"matchLabels": {"app.kubernetes.io/name": GATEWAY_NAME}}}
    body: Obj = {"podSelector": {"matchLabels": {INSTANCE_LABEL: spec.name}}, "policyTypes": ["Ingress"],
                 "ingress": [{"from": [gateway], "ports": [{"protocol": "TCP", "port": GATEWAY_PORT}]}]}
    if spec.package.network is NetworkAccess.NONE:
        # the pod-level twin of the sandbox's empty network namespace: no egress at all
        body["policyTypes"] = ["Ingress", "Egress"]
        body["egress"] = []
    return {"apiVersion": "networking.k8s.io/v1", "kind": "NetworkPolicy", "metadata": _meta(spec, options),
            "spec": body}


def render_package(spec: ServerSpec, options: RenderOptions) -> list[Obj]:
    """The objects of `package` server `spec` as its own pod, in apply order (see module).

    Raises ValueError when `options.gateway_image` is unset (`MCPAAS_GATEWAY_IMAGE`).
    """
    if spec.package is None:
        raise ValueError(f"server '{spec.name}' has no package source")
    if not options.gateway_image:
        raise ValueError("package servers on Kubernetes need MCPAAS_GATEWAY_IMAGE (the gateway image)")
    meta = _meta(spec, options)
    config = pod_settings(spec)
    objects: list[Obj] = [
        {"apiVersion": "v1", "kind": "ServiceAccount", "metadata": meta, "automountServiceAccountToken": False},
        {"apiVersion": "v1", "kind": "ConfigMap", "metadata": meta, "data": config},
    ]
    if spec.package.secrets:  # no data here: `manifests.fill_secret` adds the values at apply time
        objects.append({"apiVersion": "v1", "kind": "Secret", "metadata": meta, "type": "Opaque"})
    port = {"name": "mcp", "port": GATEWAY_PORT, "targetPort": "mcp", "protocol": "TCP"}
    objects += [_deployment(spec, options, config),
                {"apiVersion": "v1", "kind": "Service", "metadata": meta,
                 "spec": {"type": "ClusterIP", "selector": {INSTANCE_LABEL: spec.name}, "ports": [port]}},
                _network_policy(spec, options)]
    return json.loads(json.dumps(objects))  # no shared sub-dicts between objects
