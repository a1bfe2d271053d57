"""ServerSpec → Kubernetes objects: the one pure translator for `container` servers.

`render(spec, options)` returns plain dicts (ServiceAccount, Secret when the spec has
`secrets`, Deployment, Service, HorizontalPodAutoscaler, PodDisruptionBudget,
NetworkPolicy) in apply order; a `package` server on a Kubernetes target renders as its
own pod of the gateway image in single-server mode (`render_package`, docs/kubernetes.md); the
deploy activity server-side-applies them as they are, `mcpaas deploy --dry-run` prints
them, and `manifest_hash` fingerprints them for the revision history (FR-002, FR-004).
No I/O here: the same spec and options always give the same objects. Secret values are
never rendered: the Secret comes out without `data`, which the deploy activity fills
from the secret store at apply time (`fill_secret`); the container reads each secret
through `valueFrom.secretKeyRef` (NFR-SEC-002).

Security choices follow the Kubernetes "restricted" Pod Security Standard
(https://kubernetes.io/docs/concepts/security/pod-security-standards/#restricted) and AKS
workload identity (https://learn.microsoft.com/azure/aks/workload-identity-overview).
"""

from __future__ import annotations

import base64
import hashlib
import json
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import yaml

from shared.models import ContainerAutoscaling, ContainerSource, ServerKind, ServerSpec

CONFIG_HASH_ANNOTATION = "mcpaas.io/config-hash"
INSTANCE_LABEL = "app.kubernetes.io/instance"
GATEWAY_NAME = "mcpaas-gateway"
# Kubernetes' own default is 600 s; an MCP server that is not Ready in 5 min is broken
PROGRESS_DEADLINE_SECONDS = 300
# a non-root uid above the range images commonly bake in (checkov CKV_K8S_40)
RUN_AS_USER = 10001

Obj = dict[str, Any]
GATEWAY_PORT = 8080
SINGLE_SERVER_PATH = "/mcp"  # where a package-server pod serves its one server
GATEWAY_DATA_DIR = "/var/lib/mcpaas"  # MCPAAS_DATA_DIR of the gateway image (Dockerfile)


@dataclass(frozen=True)
class RenderOptions:
    """Where and how to render: target namespace, the gateway's namespace (the only
    allowed ingress source) and the workload-identity client id for the ServiceAccount."""

    namespace: str = "mcp-servers"
    gateway_namespace: str = "mcpaas-system"
    workload_client_id: str | None = None
    gateway_image: str | None = None  # what package-server pods run (`render_package`)


def options_from_settings() -> RenderOptions:
    """RenderOptions from the process settings (`MCPAAS_KUBE_NAMESPACE`, ...)."""
    from shared.settings import get_settings  # late: keeps this module importable without env

    settings = get_settings()
    return RenderOptions(settings.kube_namespace, settings.gateway_namespace, settings.workload_client_id,
                         settings.gateway_image)


def in_cluster(spec: ServerSpec) -> bool:
    """Whether `spec` runs as Kubernetes objects: `container` servers always, `package`
    servers when a Kubernetes target is configured (their own pods, never the gateway's,
    docs/kubernetes.md); `remote` servers never."""
    from shared.settings import get_settings

    settings = get_settings()  # package processes: the local twin of package pods
    return spec.kind is ServerKind.CONTAINER or (spec.kind is ServerKind.PACKAGE
                                                 and (settings.kubernetes_target or settings.package_processes))


def canonical_json(value: Any) -> bytes:
    """Deterministic JSON bytes (sorted keys, no whitespace) for hashing."""
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode()


def sha256_of(value: Any) -> str:
    """Hex sha256 of `canonical_json(value)`."""
    return hashlib.sha256(canonical_json(value)).hexdigest()


def labels(name: str) -> dict[str, str]:
    """Recommended labels of every object of server `name`."""
    return {"app.kubernetes.io/name": name, INSTANCE_LABEL: name,
            "app.kubernetes.io/component": "mcp-server", "app.kubernetes.io/managed-by": "mcpaas"}


def selector(name: str) -> str:
    """Label selector (string form) matching the pods and objects of server `name`."""
    return f"{INSTANCE_LABEL}={name}"


def service_url(spec: ServerSpec, namespace: str) -> str:
    """In-cluster Streamable HTTP URL of a container or package server's Service."""
    if spec.kind is ServerKind.PACKAGE:
        from shared import package_processes
        from shared.settings import get_settings

        if package_processes.selected(get_settings()):  # its stable loopback address instead of a Service
            return package_processes.service_url(spec.name)
        return f"http://{spec.name}.{namespace}.svc.cluster.local:{GATEWAY_PORT}{SINGLE_SERVER_PATH}"
    assert spec.container is not None, "service_url needs a container or package spec"
    return f"http://{spec.name}.{namespace}.svc.cluster.local:{spec.container.port}{spec.container.path}"


def config_hash(container: ContainerSource) -> str:
    """Hash of the configuration the pods read at start; a change rolls the pods.

    Secret references count (a rotated secret is a new reference, so the pods restart
    and read the new value); values never do. Without secrets the hash is what it was
    before secrets existed, so upgrading the platform rolls no pods.
    """
    config: dict[str, Any] = {"env": container.env, "path": container.path}
    if container.secrets:
        config["secrets"] = {key: source.ref for key, source in container.secrets.items()}
    return sha256_of(config)


def _meta(spec: ServerSpec, options: RenderOptions, **extra: Any) -> Obj:
    return {"name": spec.name, "namespace": options.namespace, "labels": labels(spec.name), **extra}


def _service_account(spec: ServerSpec, options: RenderOptions) -> Obj:
    annotations = ({"azure.workload.identity/client-id": options.workload_client_id}
                   if options.workload_client_id else {})
    meta = _meta(spec, options, **({"annotations": annotations} if annotations else {}))
    # the workload-identity webhook projects its own token; the API token is not needed
    return {"apiVersion": "v1", "kind": "ServiceAccount", "metadata": meta,
            "automountServiceAccountToken": False}


def _container(spec: ServerSpec) -> Obj:
    c = spec.container
    assert c is not None
    # tcpSocket, not httpGet: an MCP endpoint answers GET with 405/406, which a probe counts as down
    probe = {"tcpSocket": {"port": "mcp"}, "periodSeconds": 10, "timeoutSeconds": 3}
    resources = {"cpu": c.resources.cpu, "memory": c.resources.memory}
    return {
        "name": "server", "image": c.image, "imagePullPolicy": "Always",
        "ports": [{"name": "mcp", "containerPort": c.port, "protocol": "TCP"}],
        "env": [{"name": key, "value": c.env[key]} for key in sorted(c.env)]
        + [{"name": key, "valueFrom": {"secretKeyRef": {"name": spec.name, "key": key}}} for key in sorted(c.secrets)],
        "resources": {"requests": resources, "limits": resources},
        "livenessProbe": {**probe, "initialDelaySeconds": 10, "failureThreshold": 3},
        "readinessProbe": {**probe, "initialDelaySeconds": 2, "failureThreshold": 3},
        "securityContext": {"allowPrivilegeEscalation": False, "readOnlyRootFilesystem": True,
                            "runAsNonRoot": True, "runAsUser": RUN_AS_USER, "runAsGroup": RUN_AS_USER,
                            "capabilities": {"drop": ["ALL"]},
                            "seccompProfile": {"type": "RuntimeDefault"}},
        # a read-only root still needs a scratch directory for most runtimes
        "volumeMounts": [{"name": "tmp", "mountPath": "/tmp"}],
    }


def _deployment(spec: ServerSpec, options: RenderOptions) -> Obj:
    c = spec.container
    assert c is not None
    pod_labels = {**labels(spec.name), "azure.workload.identity/use": "true"}
    body: Obj = {
        "progressDeadlineSeconds": PROGRESS_DEADLINE_SECONDS,
        "revisionHistoryLimit": 5,
        "selector": {"matchLabels": {INSTANCE_LABEL: spec.name}},
        # surge first, so a bad image never takes the last good pod down
        "strategy": {"type": "RollingUpdate", "rollingUpdate": {"maxUnavailable": 0, "maxSurge": 1}},
        "template": {
            "metadata": {"labels": pod_labels, "annotations": {CONFIG_HASH_ANNOTATION: config_hash(c)}},
            "spec": {
                "serviceAccountName": spec.name,
                "automountServiceAccountToken": False,
                "securityContext": {"runAsNonRoot": True, "runAsUser": RUN_AS_USER, "runAsGroup": RUN_AS_USER,
                                    "fsGroup": RUN_AS_USER, "seccompProfile": {"type": "RuntimeDefault"}},
                "containers": [_container(spec)],
                "volumes": [{"name": "tmp", "emptyDir": {"sizeLimit": "64Mi"}}],
            },
        },
    }
    if c.replicas == 0:  # stopped: no HPA, so the Deployment owns the count
        body["replicas"] = 0
    # otherwise `replicas` is left out so that re-applying never fights the HPA's count
    return {"apiVersion": "apps/v1", "kind": "Deployment", "metadata": _meta(spec, options), "spec": body}


def _secret(spec: ServerSpec, options: RenderOptions) -> Obj:
    """The server's Secret without data: `fill_secret` adds the values at apply time."""
    return {"apiVersion": "v1", "kind": "Secret", "metadata": _meta(spec, options), "type": "Opaque"}


def fill_secret(secret: Obj, values: dict[str, str]) -> Obj:
    """A copy of a rendered Secret carrying `values` (``{ENV_NAME: value}``) as base64 `data`.

    Only the deploy activity calls this, right before applying; the result is never
    stored, printed or returned.
    """
    data = {key: base64.b64encode(value.encode()).decode() for key, value in sorted(values.items())}
    return {**secret, "data": data}


def _service(spec: ServerSpec, options: RenderOptions) -> Obj:
    assert spec.container is not None
    port = {"name": "mcp", "port": spec.container.port, "targetPort": "mcp", "protocol": "TCP"}
    return {"apiVersion": "v1", "kind": "Service", "metadata": _meta(spec, options),
            "spec": {"type": "ClusterIP", "selector": {INSTANCE_LABEL: spec.name}, "ports": [port]}}


def _hpa(spec: ServerSpec, options: RenderOptions) -> Obj:
    assert spec.container is not None
    scaling = spec.container.autoscaling

    def metric(resource: str, percent: int) -> Obj:
        return {"type": "Resource", "resource": {
            "name": resource, "target": {"type": "Utilization", "averageUtilization": percent}}}

    return {"apiVersion": "autoscaling/v2", "kind": "HorizontalPodAutoscaler", "metadata": _meta(spec, options),
            "spec": {"scaleTargetRef": {"apiVersion": "apps/v1", "kind": "Deployment", "name": spec.name},
                     "minReplicas": max(scaling.min_replicas, spec.container.replicas),
                     "maxReplicas": max(scaling.max_replicas, spec.container.replicas),
                     "metrics": [metric("cpu", scaling.cpu_percent), metric("memory", scaling.memory_percent)]}}


def _pdb(spec: ServerSpec, options: RenderOptions) -> Obj:
    # maxUnavailable (not minAvailable) so a single-replica server never blocks a node drain
    return {"apiVersion": "policy/v1", "kind": "PodDisruptionBudget", "metadata": _meta(spec, options),
            "spec": {"maxUnavailable": 1, "selector": {"matchLabels": {INSTANCE_LABEL: spec.name}}}}


def _network_policy(spec: ServerSpec, options: RenderOptions) -> Obj:
    assert spec.container is not None
    # selecting the pods with policyType Ingress denies everything not listed below
    gateway = {"namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": options.gateway_namespace}},
               "podSelector": {"matchLabels": {"app.kubernetes.io/name": GATEWAY_NAME}}}
    return {"apiVersion": "networking.k8s.io/v1", "kind": "NetworkPolicy", "metadata": _meta(spec, options),
            "spec": {"podSelector": {"matchLabels": {INSTANCE_LABEL: spec.name}}, "policyTypes": ["Ingress"],
                     "ingress": [{"from": [gateway],
                                  "ports": [{"protocol": "TCP", "port": spec.container.port}]}]}}


def render(spec: ServerSpec, options: RenderOptions | None = None) -> list[Obj]:
    """The Kubernetes objects of a `container` or `package` server, in apply order.

    Raises ValueError for a `remote` server (nothing runs in the cluster), and for a
    `package` server when `options.gateway_image` is unset.
    """
    options = options or RenderOptions()
    if spec.kind is ServerKind.PACKAGE:
        from shared.package_pods import render_package  # the package-pod translator builds on this one

        return render_package(spec, options)
    if spec.kind is not ServerKind.CONTAINER or spec.container is None:
        raise ValueError(f"server '{spec.name}' is kind '{spec.kind.value}': only container and package "
                         "servers render")
    objects = [_service_account(spec, options)]
    if spec.container.secrets:  # before the Deployment, so new pods find it
        objects.append(_secret(spec, options))
    objects += [_deployment(spec, options), _service(spec, options)]
    if spec.container.replicas > 0:
        objects.append(_hpa(spec, options))
    return objects + [_pdb(spec, options), _network_policy(spec, options)]



def gateway_config(environ: Mapping[str, str]) -> dict[str, str]:
    """The gateway's settings for its ConfigMap: every `MCPAAS_*` name of `environ` that a
    `Settings` field reads (the Bicep outputs the postprovision hook has), sorted.

    Raises ValueError for a credential setting (a `SecretStr` field such as
    `MCPAAS_COSMOS_KEY`): on Azure the gateway authenticates with workload identity, and
    a ConfigMap is no place for a secret.
    """
    from shared.settings import Settings

    fields = {(info.alias or f"MCPAAS_{name}").upper(): info for name, info in Settings.model_fields.items()}
    config = {name: value for name, value in sorted(environ.items()) if name in fields}
    secret = sorted(name for name in config if "SecretStr" in str(fields[name].annotation))
    if secret:
        raise ValueError(f"credential settings do not go into a ConfigMap: {', '.join(secret)}")
    return config


def render_gateway(image: str, options: RenderOptions | None = None,
                   config: Mapping[str, str] | None = None) -> list[Obj]:
    """The gateway's objects in `options.gateway_namespace`: its Namespace, its settings
    ConfigMap (`config`, see `gateway_config`, plus `MCPAAS_GATEWAY_PACKAGE_PODS=true`:
    package servers run in their own pods, never in these), then what `render` gives a
    container server (ServiceAccount with workload identity, Deployment reading the
    ConfigMap through `envFrom`, Service, HPA, PDB), except that the Service is a
    LoadBalancer and the NetworkPolicy admits MCP clients from anywhere on the gateway
    port: it is the one public entry. A settings change rolls the pods (config hash).
    """
    options = options or RenderOptions()
    spec = ServerSpec(name=GATEWAY_NAME, kind=ServerKind.CONTAINER, description="MCPaaS gateway",
                      container=ContainerSource(image=image, port=GATEWAY_PORT, path="/",
                                                autoscaling=ContainerAutoscaling(min_replicas=2, max_replicas=10)))
    scoped = RenderOptions(options.gateway_namespace, options.gateway_namespace, options.workload_client_id)
    namespace = {"apiVersion": "v1", "kind": "Namespace",
                 "metadata": {"name": scoped.namespace, "labels": {"app.kubernetes.io/managed-by": "mcpaas",
                                                                   "pod-security.kubernetes.io/enforce": "restricted"}}}
    data = {**(config or {}), "MCPAAS_GATEWAY_PACKAGE_PODS": "true", "MCPAAS_GATEWAY_NAMESPACE": scoped.namespace}
    config_map = {"apiVersion": "v1", "kind": "ConfigMap", "metadata": _meta(spec, scoped), "data": data}
    objects = render(spec, scoped)
    for obj in [config_map, *objects]:
        obj["metadata"]["labels"]["app.kubernetes.io/component"] = "gateway"
        if obj["kind"] == "Service":
            obj["spec"]["type"] = "LoadBalancer"
        if obj["kind"] == "NetworkPolicy":
            obj["spec"]["ingress"] = [{"ports": [{"protocol": "TCP", "port": GATEWAY_PORT}]}]
        if obj["kind"] == "Deployment":
            _use_config(obj["spec"]["template"], data)
    deployment = next(i for i, obj in enumerate(objects) if obj["kind"] == "Deployment")
    return [namespace, *objects[:deployment], config_map, *objects[deployment:]]


def _use_config(template: Obj, data: dict[str, str]) -> None:
    """The gateway's pod template reads its ConfigMap, knows its own pod address (the
    replica URL other replicas forward sessions to) and writes its data dir (audit
    spill, generated keys) to an emptyDir: the root file system is read-only."""
    container = template["spec"]["containers"][0]
    container["envFrom"] = [{"configMapRef": {"name": GATEWAY_NAME}}]
    # each replica's own address, where other replicas forward its sessions (docs/replicas.md)
    container.setdefault("env", []).extend([
        {"name": "POD_IP", "valueFrom": {"fieldRef": {"fieldPath": "status.podIP"}}},
        {"name": "MCPAAS_GATEWAY_REPLICA_URL", "value": f"http://$(POD_IP):{GATEWAY_PORT}"}])
    container["volumeMounts"].append({"name": "data", "mountPath": GATEWAY_DATA_DIR})
    template["spec"]["volumes"].append({"name": "data", "emptyDir": {"sizeLimit": "1Gi"}})
    annotations = template["metadata"]["annotations"]
    annotations[CONFIG_HASH_ANNOTATION] = sha256_of([annotations[CONFIG_HASH_ANNOTATION], data])


def manifest_hash(spec: ServerSpec, options: RenderOptions | None = None) -> str:
    """sha256 of what a revision deploys: the rendered objects of a `container` server,
    the spec JSON of any other kind (hex, 64 chars)."""
    if spec.kind is ServerKind.CONTAINER:
        return sha256_of(render(spec, options))
    return sha256_of(spec.model_dump(mode="json"))


def to_yaml(objects: list[Obj]) -> str:
    """Objects as one multi-document YAML stream (`kubectl apply -f` ready)."""
    return yaml.safe_dump_all(objects, sort_keys=False)


def preview_yaml(spec: ServerSpec) -> str:
    """What `mcpaas deploy --dry-run` prints: the rendered objects of a `container` server
    (namespace from the settings), the validated spec of any other kind."""
    if spec.kind is ServerKind.CONTAINER:
        return to_yaml(render(spec, options_from_settings()))
    return yaml.safe_dump(spec.model_dump(mode="json", exclude_none=True), sort_keys=False)
