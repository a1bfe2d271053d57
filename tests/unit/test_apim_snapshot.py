"""The snapshot rules of `shared.apim`: what is a match, what a secret never becomes."""

from __future__ import annotations

import pytest

from shared import apim


@pytest.mark.parametrize("expected, actual, result", [
    ({"properties": {"path": "a"}}, {"properties": {"path": "a", "isOnline": True}}, True),
    ({"properties": {"path": "a"}}, {"properties": {"path": "b"}}, False),
    ({"properties": {"protocols": ["https"]}}, {"properties": {"protocols": ["https", "http"]}}, False),
    ({"properties": {"value": None}}, {"properties": {}}, True),
    ({"properties": {}}, None, False),
    ({}, {}, True),
])
def test_covers(expected, actual, result):
    assert apim.covers(expected, actual) is result


def test_backend_keeps_references_and_drops_literal_credentials():
    warnings: list[str] = []
    body = apim.sanitize_backend("b", {"properties": {"url": "https://x", "credentials": {
        "query": {"code": ["{{fn-key}}"], "sig": ["abc"]},
        "authorization": {"scheme": "Bearer", "parameter": "eyJsecret"}},
        "proxy": {"url": "http://proxy", "username": "u", "password": "hunter2"}}}, warnings)
    assert body["properties"]["credentials"] == {"query": {"code": ["{{fn-key}}"]},
                                                 "authorization": {"scheme": "Bearer"}}
    assert body["properties"]["proxy"] == {"url": "http://proxy", "username": "u"}
    assert "abc" not in str(body) and "eyJsecret" not in str(body) and len(warnings) == 3


def test_custom_domains_keep_key_vault_ids_only():
    warnings: list[str] = []
    props = {"hostnameConfigurations": [
        {"type": "Proxy", "hostName": "a.example", "keyVaultId": "https://kv/secrets/a",
         "certificateSource": "KeyVault",
         "certificate": {"thumbprint": "T", "expiry": "2030-01-01"}},
        {"type": "Proxy", "hostName": "b.example", "encodedCertificate": "MIIpfx", "certificatePassword": "pw",
         "certificateSource": "Custom"}],
        "virtualNetworkType": "Internal", "virtualNetworkConfiguration": {"subnetResourceId": "/s", "vnetid": "v"},
        "gatewayUrl": "https://x"}
    kept = apim.sanitize_service(props, warnings)["properties"]
    assert kept == {"hostnameConfigurations": [{"type": "Proxy", "hostName": "a.example",
                                                "keyVaultId": "https://kv/secrets/a", "certificateSource": "KeyVault"}],
                    "virtualNetworkType": "Internal", "virtualNetworkConfiguration": {"subnetResourceId": "/s"}}
    assert warnings == ["hostname b.example: certificate not in Key Vault, not exported"]


def test_inline_secret_named_value_is_left_out():
    warnings: list[str] = []
    assert apim.sanitize_named_value("t", {"properties": {"secret": True, "value": "v"}}, warnings) is None
    assert warnings and "not exported" in warnings[0]


@pytest.mark.parametrize("bad", ["", "/subscriptions/s/resourceGroups/g/providers/Microsoft.Web/sites/x",
                                 "/subscriptions/s/resourceGroups/g/providers/Microsoft.ApiManagement/service/x/apis/y"])
def test_service_ref_refuses_other_ids(bad):
    with pytest.raises(ValueError):
        apim.ServiceRef.parse(bad)
