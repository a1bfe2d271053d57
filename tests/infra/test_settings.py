"""The Bicep sets what the code reads in Azure mode, under the names Settings reads (issue 11).

App settings are parsed from infra/modules/functionapp.bicep, the gateway's settings from
the MCPAAS_* outputs of infra/main.bicep (the postprovision hook renders the gateway with
them). Env names come from `Settings.model_fields`: the alias when a field has one, else
``MCPAAS_`` + the field name upper-cased.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from pathlib import Path

import pytest

from shared import manifests
from shared.aks import AksConnection
from shared.apim import ServiceRef
from shared.auth.factory import authenticator_from_settings
from shared.secrets import create_secret_store
from shared.secrets.keyvault import KeyVaultSecretStore
from shared.settings import Settings
from shared.store.sqlite import SQLiteDocumentStore
from tests.infra.bicep import read_resources
from tests.tooling import REPO

INFRA = REPO / "infra"
MAIN = (INFRA / "main.bicep").read_text()
TENANT = "11111111-2222-3333-4444-555555555555"
PRINCIPAL = "99999999-8888-7777-6666-555555555555"

# what the Azure adapters need: cosmos store, entra auth (validator, control-plane service
# tokens and the probe scope's principals), Key Vault secret store, the gateway's address,
# the AKS cluster (Kubernetes adapter with Entra tokens, shared/aks.py) and its namespace
CONTROL_PLANE = ["store", "cosmos_endpoint", "auth_mode", "entra_jwks_url", "entra_issuers", "entra_audiences",
                 "entra_allowed_tenants", "control_plane_principals", "key_vault_url", "gateway_url_override",
                 "gateway_namespace", "servicebus_namespace", "aks_cluster_id", "kube_namespace",
                 "blob_account_url", "blob_container"]
# the gateway also shares locks, ready flags and rate limits through Redis, and reads
# code-project bundles from the artifact store
GATEWAY = ["store", "cosmos_endpoint", "auth_mode", "entra_jwks_url", "entra_issuers", "entra_audiences",
           "entra_allowed_tenants", "control_plane_principals", "key_vault_url", "redis_url", "redis_entra",
           "gateway_namespace", "auth_scopes_supported", "blob_account_url", "blob_container"]


def env_name(field: str) -> str:
    info = Settings.model_fields[field]
    return (info.alias or f"MCPAAS_{field}").upper()


SETTING_NAMES = {env_name(field) for field in Settings.model_fields}


def app_settings() -> dict[str, str]:
    """name -> Bicep expression of every app setting of the Function app."""
    site = next(r for r in read_resources(INFRA) if r.type == "Microsoft.Web/sites" and not r.existing)
    return dict(re.findall(r"name: '([^']+)'\s*\n\s*value: (.+)", site.block("siteConfig")))


def outputs() -> dict[str, str]:
    """name -> Bicep expression of every output of main.bicep."""
    return dict(re.findall(r"^output (\w+) string = (.+)$", MAIN, re.MULTILINE))


def main_template(key: str) -> str:
    """The string template `key: '...'` in main.bicep's `var entra` object."""
    match = re.search(rf"^\s*{key}: '([^']+)'$", MAIN, re.MULTILINE)
    assert match, key
    return match.group(1)


def entra_issuers() -> list[str]:
    block = re.search(r"var entraIssuers = \[(.*?)\]", MAIN, re.DOTALL)
    assert block
    return re.findall(r"'([^']+)'", block.group(1))


# sample values of the Function app module's parameters, shaped like the real ones
PARAMS = {
    "cosmosEndpoint": "https://cosmos-mcpaas-x.documents.azure.com:443/",
    "serviceBusNamespace": "sb-mcpaas-x.servicebus.windows.net",
    "keyVaultUri": "https://kv-mcpaas-x.vault.azure.net/",
    "identityPrincipalId": PRINCIPAL,
    "gatewayUrl": "http://mcpaas-gw-x.westeurope.cloudapp.azure.com:8080",
    "gatewayNamespace": "mcpaas-system",
    "blobAccountUrl": "https://stmcpaasx.blob.core.windows.net/",
    "blobContainer": "artifacts",
    "aksClusterId": "/subscriptions/s/resourceGroups/rg/providers/Microsoft.ContainerService/managedClusters/aks-x",
    "kubeNamespace": "mcp-servers",
    "apimServiceId": "/subscriptions/s/resourceGroups/rg/providers/Microsoft.ApiManagement/service/apim-mcpaas-x",
    "entra.jwksUrl": main_template("jwksUrl").replace("${entraTenantId}", TENANT),
    "entra.issuers": ",".join(i.replace("${entraTenantId}", TENANT) for i in entra_issuers()),
    "entra.audiences": "api://mcpaas",
    "entra.allowedClients": "",
    "entra.allowedTenants": TENANT,
}


def evaluate(expression: str) -> str:
    """A setting's value: a parameter reference or a '...' literal with ${param} holes."""
    if expression.startswith("'"):
        return re.sub(r"\$\{([\w.]+)\}", lambda m: PARAMS[m.group(1)], expression.strip("'"))
    return PARAMS[expression]


def test_entra_validation_settings_are_derived_from_the_tenant() -> None:
    assert PARAMS["entra.jwksUrl"] == f"https://login.microsoftonline.com/{TENANT}/discovery/v2.0/keys"
    assert PARAMS["entra.issuers"].split(",") == [f"https://login.microsoftonline.com/{TENANT}/v2.0",
                                                  f"https://sts.windows.net/{TENANT}/"]
    for parameter in ("entraTenantId", "entraAudience", "entraApiClientId", "entraAllowedClientIds"):
        declaration = re.search(rf"@description\('([^\n]+)'\)\n(?:@\w+\(\d+\)\n)?param {parameter} ", MAIN)
        assert declaration and len(declaration.group(1)) > 30, f"{parameter} needs a description"


@pytest.mark.parametrize("names", [app_settings, outputs])
def test_every_mcpaas_name_the_bicep_sets_is_a_settings_field(names: Callable[[], dict[str, str]]) -> None:
    unknown = sorted(n for n in names() if n.startswith("MCPAAS_") and n not in SETTING_NAMES)
    assert not unknown, f"{names.__name__}: names no Settings field reads: {unknown}"


def test_function_app_sets_every_setting_the_azure_adapters_need() -> None:
    missing = [env_name(field) for field in CONTROL_PLANE if env_name(field) not in app_settings()]
    assert not missing


def test_gateway_settings_are_main_outputs_for_the_postprovision_hook() -> None:
    missing = [env_name(field) for field in GATEWAY if env_name(field) not in outputs()]
    assert not missing
    # the gateway is addressed on the port it is rendered with
    port = re.search(r"cloudapp\.azure\.com:(\d+)'", MAIN)
    assert port and int(port.group(1)) == manifests.GATEWAY_PORT


def test_control_plane_and_gateway_get_the_same_adapter_choices() -> None:
    app, out = app_settings(), outputs()
    for field in ("store", "auth_mode"):
        name = env_name(field)
        assert app[name] == out[name] and app[name].startswith("'"), name


def test_app_settings_load_into_azure_adapters(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    for name in SETTING_NAMES:
        monkeypatch.delenv(name, raising=False)
    for name, expression in app_settings().items():
        if name.startswith("MCPAAS_"):
            monkeypatch.setenv(name, evaluate(expression))
    monkeypatch.setenv("MCPAAS_DATA_DIR", str(tmp_path))
    settings = Settings()
    assert settings.store == "cosmos" and settings.cosmos_endpoint == PARAMS["cosmosEndpoint"]
    assert settings.auth_mode.value == "entra"
    # raises ValueError when entra lacks its JWKS URL, issuers or audiences
    authenticator_from_settings(settings, SQLiteDocumentStore(tmp_path / "store.sqlite"))
    assert settings.entra_issuers == PARAMS["entra.issuers"].split(",")
    assert settings.entra_allowed_tenants == [TENANT]
    assert settings.control_plane_principals == [PRINCIPAL]
    assert isinstance(create_secret_store(settings), KeyVaultSecretStore)
    assert settings.gateway_url == PARAMS["gatewayUrl"]
    assert settings.gateway_namespace == PARAMS["gatewayNamespace"]
    # issue 12: APIM snapshots go to the blob artifact store, for the deployed service
    assert settings.blob_account_url == PARAMS["blobAccountUrl"]
    assert ServiceRef.parse(settings.apim_service_id).name == "apim-mcpaas-x"
    # issue 11: the Kubernetes adapter is the AKS one (no kubeconfig on Azure), in the
    # namespace the control plane's RBAC Writer role is scoped to
    assert settings.kubernetes_target and settings.kubeconfig is None
    assert AksConnection(settings.aks_cluster_id or "", credential=None).name == "aks-x"  # type: ignore[arg-type]
    assert settings.kube_namespace == PARAMS["kubeNamespace"]
    assert settings.blob_container == PARAMS["blobContainer"]


def test_federated_subject_is_the_service_account_render_gateway_renders() -> None:
    namespace = re.search(r"^param gatewayNamespace string = '([^']+)'$", MAIN, re.MULTILINE)
    subject = re.search(r"^var gatewaySubject = '(.+)'$", MAIN, re.MULTILINE)
    assert namespace and subject
    assert namespace.group(1) == Settings.model_fields["gateway_namespace"].default
    objects = manifests.render_gateway("img", manifests.RenderOptions(gateway_namespace=namespace.group(1)))
    accounts = [o for o in objects if o["kind"] == "ServiceAccount"]
    assert len(accounts) == 1
    meta = accounts[0]["metadata"]
    rendered = f"system:serviceaccount:{meta['namespace']}:{meta['name']}"
    assert subject.group(1).replace("${gatewayNamespace}", namespace.group(1)) == rendered
    pods = next(o for o in objects if o["kind"] == "Deployment")["spec"]["template"]["spec"]
    assert pods["serviceAccountName"] == meta["name"]
    # the AKS module federates exactly that subject
    assert "gatewaySubject: gatewaySubject" in MAIN
    federation = next(r for r in read_resources(INFRA)
                      if r.type.endswith("/federatedIdentityCredentials"))
    assert federation.value("subject") == "gatewaySubject"


# sample values of main.bicep's module outputs and parameters its MCPAAS_* outputs use
OUTPUT_SAMPLES = {
    **PARAMS, "entraAudience": "api://mcpaas", "cosmos.outputs.endpoint": PARAMS["cosmosEndpoint"],
    "keyVault.outputs.uri": PARAMS["keyVaultUri"], "identity.outputs.principalId": PRINCIPAL,
    "redis.outputs.url": "rediss://redis-mcpaas-x.redis.cache.windows.net:6380", "gatewayUrl": PARAMS["gatewayUrl"],
    "gatewayNamespace": PARAMS["gatewayNamespace"], "functionApp.outputs.url": "https://func-mcpaas-x.azurewebsites.net",
    "serviceBus.outputs.fullyQualifiedNamespace": PARAMS["serviceBusNamespace"],
    "storage.outputs.blobEndpoint": PARAMS["blobAccountUrl"], "storage.outputs.artifactsContainer": "artifacts",
    "serversNamespace": PARAMS["kubeNamespace"],
}


def output_environment() -> dict[str, str]:
    """The MCPAAS_* outputs of main.bicep as the postprovision hook's environment has them."""
    def value(expression: str) -> str:
        if expression.startswith("'"):
            return re.sub(r"\$\{([\w.]+)\}", lambda m: OUTPUT_SAMPLES[m.group(1)], expression.strip("'"))
        return OUTPUT_SAMPLES[expression]
    return {name: value(expr) for name, expr in outputs().items() if name.startswith("MCPAAS_")}


def test_gateway_configmap_carries_every_setting_the_gateway_needs(monkeypatch: pytest.MonkeyPatch,
                                                                    tmp_path: Path) -> None:
    objects = manifests.render_gateway("img", manifests.RenderOptions(gateway_namespace=PARAMS["gatewayNamespace"]),
                                       manifests.gateway_config(output_environment()))
    config = next(o for o in objects if o["kind"] == "ConfigMap")
    missing = [env_name(field) for field in GATEWAY if env_name(field) not in config["data"]]
    assert not missing
    container = next(o for o in objects if o["kind"] == "Deployment")["spec"]["template"]["spec"]["containers"][0]
    assert container["envFrom"] == [{"configMapRef": {"name": config["metadata"]["name"]}}]
    # what the pods load from it: the Azure adapters, Redis with Entra ID, package servers in pods
    for name in SETTING_NAMES:
        monkeypatch.delenv(name, raising=False)
    for name, value in config["data"].items():
        monkeypatch.setenv(name, value)
    monkeypatch.setenv("MCPAAS_DATA_DIR", str(tmp_path))
    settings = Settings()
    assert settings.store == "cosmos" and settings.auth_mode.value == "entra"
    assert settings.redis_url and settings.redis_url.startswith("rediss://") and settings.redis_entra
    assert settings.gateway_package_pods and settings.gateway_namespace == PARAMS["gatewayNamespace"]
    authenticator_from_settings(settings, SQLiteDocumentStore(tmp_path / "store.sqlite"))
    # the gateway reads bundles from the artifact store the control plane writes to
    assert settings.blob_account_url == PARAMS["blobAccountUrl"] and settings.blob_container == PARAMS["blobContainer"]
    assert not settings.kubernetes_target  # the gateway never talks to the Kubernetes API


def test_servers_namespace_is_the_settings_default_and_the_aks_cluster_is_the_app_setting() -> None:
    declared = re.search(r"^param serversNamespace string = '([^']+)'$", MAIN, re.MULTILINE)
    assert declared and declared.group(1) == Settings.model_fields["kube_namespace"].default
    assert app_settings()["MCPAAS_AKS_CLUSTER_ID"] == "aksClusterId"
    assert "aksClusterId: aks.outputs.id" in MAIN
