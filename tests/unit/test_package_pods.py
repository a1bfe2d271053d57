"""The package-pod translator, the gateway's settings ConfigMap and the mounted secret
store (issue 11 items 3 and 4)."""

from __future__ import annotations

import pytest

from shared import manifests
from shared.manifests import RenderOptions
from shared.models import ServerSpec
from shared.package_pods import BRIDGE_MEMORY_MB, DEFAULT_SERVER_MEMORY_MB
from shared.secrets.mounted import MountedSecretStore
from shared.secrets.port import SecretNotFoundError

OPTIONS = RenderOptions(gateway_image="acr.example.io/mcpaas-gateway:1", workload_client_id="client-id")


def package(**source) -> ServerSpec:
    return ServerSpec.model_validate({"name": "fetch", "kind": "package",
                                      "package": {"command": "uvx", "args": ["mcp-server-fetch"], **source}})


def by_kind(objects: list[dict]) -> dict[str, dict]:
    return {obj["kind"]: obj for obj in objects}


def test_the_pod_is_restricted_and_carries_no_platform_credential():
    objects = by_kind(manifests.render(package(), OPTIONS))
    assert set(objects) == {"ServiceAccount", "ConfigMap", "Deployment", "Service", "NetworkPolicy"}
    account = objects["ServiceAccount"]
    assert account["automountServiceAccountToken"] is False and "annotations" not in account["metadata"]
    pod = objects["Deployment"]["spec"]["template"]
    assert "azure.workload.identity/use" not in pod["metadata"]["labels"]
    assert pod["spec"]["automountServiceAccountToken"] is False and pod["spec"]["enableServiceLinks"] is False
    assert pod["spec"]["securityContext"]["runAsNonRoot"] is True
    [container] = pod["spec"]["containers"]
    assert container["securityContext"] == {
        "allowPrivilegeEscalation": False, "readOnlyRootFilesystem": True, "runAsNonRoot": True,
        "runAsUser": 10001, "runAsGroup": 10001, "capabilities": {"drop": ["ALL"]},
        "seccompProfile": {"type": "RuntimeDefault"}}
    # the writable places are emptyDirs: the server's directory (HOME, caches) and /tmp
    assert {m["mountPath"] for m in container["volumeMounts"]} == {"/var/lib/mcpaas", "/tmp"}
    assert all("emptyDir" in v for v in pod["spec"]["volumes"])
    assert objects["Deployment"]["spec"]["replicas"] == 1


def test_resources_follow_the_package_limits():
    def memory(spec: ServerSpec) -> dict:
        return by_kind(manifests.render(spec, OPTIONS))["Deployment"]["spec"]["template"]["spec"]["containers"][0][
            "resources"]
    assert memory(package(limits={"memory_mb": 256}))["limits"]["memory"] == f"{256 + BRIDGE_MEMORY_MB}Mi"
    default = memory(package())
    assert default["limits"]["memory"] == f"{DEFAULT_SERVER_MEMORY_MB + BRIDGE_MEMORY_MB}Mi"
    assert default["requests"]["memory"] == default["limits"]["memory"] and default["limits"]["cpu"] == "1"


def test_network_none_denies_egress_and_ingress_is_the_gateway_only():
    egress = by_kind(manifests.render(package(), OPTIONS))["NetworkPolicy"]["spec"]
    assert egress["policyTypes"] == ["Ingress"] and "egress" not in egress
    closed = by_kind(manifests.render(package(network="none"), OPTIONS))["NetworkPolicy"]["spec"]
    assert closed["policyTypes"] == ["Ingress", "Egress"] and closed["egress"] == []
    [rule] = closed["ingress"]
    assert rule["ports"] == [{"protocol": "TCP", "port": 8080}]
    assert rule["from"][0]["podSelector"] == {"matchLabels": {"app.kubernetes.io/name": "mcpaas-gateway"}}


def test_secrets_are_mounted_files_and_a_rotated_reference_rolls_the_pod():
    def rendered(ref: str) -> dict[str, dict]:
        return by_kind(manifests.render(package(secrets={"API_KEY": {"ref": ref}}), OPTIONS))
    first, second = rendered("https://kv/secrets/fetch-API-KEY/1"), rendered("https://kv/secrets/fetch-API-KEY/2")
    assert "data" not in first["Secret"]  # values are filled at apply time only
    assert "https://kv" not in str(first["ConfigMap"])  # the pod's spec names the mounted key
    assert ServerSpec.model_validate_json(first["ConfigMap"]["data"]["MCPAAS_GATEWAY_SINGLE_SERVER_SPEC"]) \
        .package.secrets["API_KEY"].ref == "API_KEY"
    [container] = first["Deployment"]["spec"]["template"]["spec"]["containers"]
    assert "env" not in container and {"name": "secrets", "mountPath": "/var/run/mcpaas/secrets",
                                       "readOnly": True} in container["volumeMounts"]

    def fingerprint(objects: dict[str, dict]) -> str:
        return objects["Deployment"]["spec"]["template"]["metadata"]["annotations"][manifests.CONFIG_HASH_ANNOTATION]
    assert fingerprint(first) != fingerprint(second)
    assert fingerprint(first) == fingerprint(rendered("https://kv/secrets/fetch-API-KEY/1"))


def test_the_team_is_opted_out_of_bwrap_in_its_own_pod_only():
    config = by_kind(manifests.render(package().model_copy(update={"owner_team": "blue"}), OPTIONS))["ConfigMap"]
    assert config["data"]["MCPAAS_GATEWAY_SANDBOX"] == "none"
    assert config["data"]["MCPAAS_GATEWAY_UNSANDBOXED_TEAMS"] == "blue"


def test_the_gateway_reads_its_settings_from_a_configmap_and_rolls_when_they_change():
    def rendered(config: dict[str, str]) -> list[dict]:
        return manifests.render_gateway("img", OPTIONS, manifests.gateway_config(config))
    objects = rendered({"MCPAAS_STORE": "cosmos", "MCPAAS_REDIS_URL": "rediss://cache:6380", "HOME": "/root"})
    kinds = [obj["kind"] for obj in objects]
    assert kinds.index("ConfigMap") < kinds.index("Deployment")
    data = by_kind(objects)["ConfigMap"]["data"]
    assert data == {"MCPAAS_REDIS_URL": "rediss://cache:6380", "MCPAAS_STORE": "cosmos",
                    "MCPAAS_GATEWAY_PACKAGE_PODS": "true", "MCPAAS_GATEWAY_NAMESPACE": "mcpaas-system"}
    pod = by_kind(objects)["Deployment"]["spec"]["template"]
    assert pod["spec"]["containers"][0]["envFrom"] == [{"configMapRef": {"name": "mcpaas-gateway"}}]
    changed = by_kind(rendered({"MCPAAS_STORE": "sqlite"}))["Deployment"]["spec"]["template"]
    assert changed["metadata"]["annotations"] != pod["metadata"]["annotations"]
    with pytest.raises(ValueError, match="MCPAAS_COSMOS_KEY"):
        manifests.gateway_config({"MCPAAS_COSMOS_KEY": "k"})


def test_the_mounted_store_reads_keys_only(tmp_path):
    (tmp_path / "API_KEY").write_text("v")
    (tmp_path.parent / "outside").write_text("x")
    store = MountedSecretStore(tmp_path)
    assert store.get("API_KEY") == "v"
    for bad in ("../outside", "MISSING", "a/b"):
        with pytest.raises(SecretNotFoundError):
            store.get(bad)
    with pytest.raises(PermissionError):
        store.put("API_KEY", "w")
