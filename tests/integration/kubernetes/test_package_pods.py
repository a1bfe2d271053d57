"""Package servers on a Kubernetes target run in pods of their own (issue 11 item 4),
through the official client against the fake API server: what is applied, the Secret
filled from the store and mounted as files, the rollout, the gateway's upstream, delete."""

from __future__ import annotations

import base64
import json

import pytest

from activities import kubernetes
from shared import manifests, servers
from shared.errors import UnprocessableError
from shared.models import ServerSpec
from shared.secrets import get_secret_store
from shared.secrets.intake import secret_name
from shared.settings import get_settings
from shared.store import get_store
from tests.integration.kubernetes.test_rollout import call, job, poll
from triggers.operations import ensure_deployable

NS = "mcp-servers"
IMAGE = "acr.example.io/mcpaas-gateway:abc123"


@pytest.fixture
def gateway_image(fake_kube, monkeypatch):
    monkeypatch.setenv("MCPAAS_GATEWAY_IMAGE", IMAGE)
    get_settings.cache_clear()
    return IMAGE


def package_spec(**package) -> dict:
    return {"name": "fetch", "kind": "package", "owner_team": "blue",
            "package": {"command": "uvx", "args": ["mcp-server-fetch"], **package}}


def test_a_package_server_applies_as_its_own_pod_of_the_gateway_image(fake_kube, gateway_image):
    ref = get_secret_store().put(secret_name("fetch", "API_KEY"), "the-value")
    spec = package_spec(secrets={"API_KEY": {"ref": ref}}, limits={"memory_mb": 300}, network="none")
    assert manifests.in_cluster(ServerSpec.model_validate(spec))
    applied = call(kubernetes.apply_manifests, job(spec))
    assert applied["generation"] == 1
    kinds = [kind for kind, _, manager in fake_kube.kube.applies if manager == "mcpaas"]
    assert kinds == ["Namespace", "ServiceAccount", "ConfigMap", "Secret", "Deployment", "Service", "NetworkPolicy"]

    secret = fake_kube.kube.get("secrets", NS, "fetch")
    assert base64.b64decode(secret["data"]["API_KEY"]).decode() == "the-value"
    config = fake_kube.kube.get("configmaps", NS, "fetch")["data"]
    assert "the-value" not in json.dumps(config) and ref not in json.dumps(config)  # the pod reads files
    assert config["MCPAAS_GATEWAY_SINGLE_SERVER"] == "fetch" and config["MCPAAS_GATEWAY_SANDBOX"] == "none"
    assert config["MCPAAS_GATEWAY_UNSANDBOXED_TEAMS"] == "blue"
    served = ServerSpec.model_validate_json(config["MCPAAS_GATEWAY_SINGLE_SERVER_SPEC"])
    assert served.package.secrets["API_KEY"].ref == "API_KEY" and served.package.args == ["mcp-server-fetch"]

    pod = fake_kube.kube.get("deployments", NS, "fetch")["spec"]["template"]
    container = pod["spec"]["containers"][0]
    assert container["image"] == IMAGE and "env" not in container
    assert container["resources"]["limits"]["memory"] == "492Mi"  # 300 + the bridge's 192
    assert pod["spec"]["automountServiceAccountToken"] is False
    assert "azure.workload.identity/use" not in pod["metadata"]["labels"]  # no platform identity
    assert {"name": "secrets", "secret": {"secretName": "fetch", "defaultMode": 0o440}} in pod["spec"]["volumes"]
    policy = fake_kube.kube.get("networkpolicies", NS, "fetch")["spec"]
    assert policy["policyTypes"] == ["Ingress", "Egress"] and policy["egress"] == []
    assert policy["ingress"][0]["from"][0]["namespaceSelector"]["matchLabels"] == {
        "kubernetes.io/metadata.name": "mcpaas-system"}
    assert poll(job(spec)) == {"state": "complete", "reason": "", "ready": 1, "desired": 1}


def test_running_it_points_the_gateway_at_the_service_and_delete_removes_every_object(fake_kube, gateway_image):
    store = get_store()
    spec = package_spec()
    servers.accept_create(store, ServerSpec.model_validate(spec), "op1")
    call(kubernetes.apply_manifests, job(spec))
    servers.finish_operation(store, name="fetch", operation_id="op1", succeeded=True, revision=1,
                             endpoint="http://gw/servers/fetch/mcp")
    server = servers.load_server(store, "fetch")[0]
    assert server.upstream_url == "http://fetch.mcp-servers.svc.cluster.local:8080/mcp"
    assert call(kubernetes.delete_manifests, job(spec, 0, "delete")) == 5  # SA, ConfigMap, Deployment, Service, NP
    for plural in ("deployments", "configmaps", "services", "networkpolicies", "serviceaccounts"):
        assert fake_kube.kube.get(plural, NS, "fetch") is None, plural


def test_without_a_gateway_image_a_package_server_is_refused_before_anything_runs(fake_kube):
    with pytest.raises(UnprocessableError, match="MCPAAS_GATEWAY_IMAGE"):
        ensure_deployable(ServerSpec.model_validate(package_spec()))
    assert fake_kube.kube.applies == []


def test_without_a_kubernetes_target_package_servers_stay_children_of_the_gateway(monkeypatch, tmp_path):
    monkeypatch.delenv("MCPAAS_KUBECONFIG", raising=False)
    monkeypatch.setenv("MCPAAS_DATA_DIR", str(tmp_path))
    get_settings.cache_clear()
    try:
        assert not manifests.in_cluster(ServerSpec.model_validate(package_spec()))
    finally:
        get_settings.cache_clear()
