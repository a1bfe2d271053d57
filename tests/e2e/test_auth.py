"""Identity and access control of the REST API end to end (issue 4): devhost in local auth mode."""

from __future__ import annotations

import base64
import json
import sys
import time
from datetime import datetime, timedelta, timezone

import httpx
import jwt
import pytest
from cryptography.hazmat.primitives import serialization

from shared.auth.principal import Role
from shared.auth.tokens import LOCAL_AUDIENCE, LOCAL_ISSUER, LocalIssuer
from tests.e2e.helpers import authed, stored, wait_gone, wait_status

pytestmark = pytest.mark.usefixtures("checkout_launchers")  # clearance opt-ins (tests/e2e/conftest.py)


def remote(name: str, team: str = "") -> dict:
    return {"name": name, "kind": "remote", "owner_team": team, "remote": {"url": "http://127.0.0.1:9/mcp"}}


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def claims(**overrides) -> dict:
    now = int(time.time())
    return {"iss": LOCAL_ISSUER, "aud": LOCAL_AUDIENCE, "sub": "mallory", "roles": ["Admin"],
            "iat": now, "nbf": now, "exp": now + 600, **overrides}


def _b64(data: dict) -> str:
    return base64.urlsafe_b64encode(json.dumps(data).encode()).rstrip(b"=").decode()


def bad_tokens(platform) -> dict[str, str]:
    """Every kind of token the acceptance criteria say must be refused."""
    issuer = platform.issuer
    private = issuer._private  # the platform's own key: only the claims are wrong
    good = issuer.mint("mallory", [Role.ADMIN])
    head, body, signature = good.split(".")
    public_pem = private.public_key().public_bytes(serialization.Encoding.PEM,
                                                   serialization.PublicFormat.SubjectPublicKeyInfo)
    hs256 = jwt.api_jws.PyJWS()
    hs256._algorithms["HS256"].prepare_key = lambda key: key  # PyJWT refuses PEM HMAC keys; forge anyway
    sign = lambda **extra: jwt.encode(claims(**extra), private, algorithm="RS256", headers={"kid": issuer.kid})  # noqa: E731
    return {
        "forged signature": f"{head}.{body}.{signature[:-6]}AAAAAA",
        "alg none": f"{_b64({'alg': 'none', 'typ': 'JWT', 'kid': issuer.kid})}.{_b64(claims())}.",
        "HS256 with the public key": hs256.encode(json.dumps(claims()).encode(), public_pem, algorithm="HS256",
                                                 headers={"kid": issuer.kid}),
        "expired": sign(exp=int(time.time()) - 3600),
        "wrong aud": sign(aud="someone-else"),
        "wrong iss": sign(iss="https://evil.example"),
        "unknown kid": jwt.encode(claims(), private, algorithm="RS256", headers={"kid": "0" * 16}),
        "other key": LocalIssuer(platform.data_dir.parent / "other.pem").mint("mallory", [Role.ADMIN]),
        "garbage": "not-a-jwt",
    }


def test_rest_api_refuses_bad_credentials_with_401(platform):
    url = f"{platform.api}/api/servers"
    missing = httpx.get(url, timeout=10)
    assert missing.status_code == 401 and missing.headers["WWW-Authenticate"].startswith("Bearer")
    assert missing.headers["Content-Type"].startswith("application/problem+json")
    for what, token in bad_tokens(platform).items():
        response = httpx.post(url, json=remote("evil"), headers=bearer(token), timeout=10)
        assert response.status_code == 401, f"{what}: {response.status_code} {response.text}"
        assert response.headers["WWW-Authenticate"].startswith("Bearer"), what
    assert authed.get(url, timeout=10).json()["items"] == []  # nothing was created

    keys = f"{platform.api}/api/keys"
    expired = authed.post(keys, json={"name": "old", "roles": ["Admin"],
                                      "expires_at": (datetime.now(timezone.utc) - timedelta(minutes=1)).isoformat()},
                          timeout=10)
    live = authed.post(keys, json={"name": "ci", "roles": ["Reader"]}, timeout=10)
    assert expired.status_code == live.status_code == 201
    key, key_id = live.json()["key"], live.json()["record"]["id"]
    assert httpx.get(url, headers={"X-API-Key": key}, timeout=10).status_code == 200
    assert httpx.get(url, headers=bearer(key), timeout=10).status_code == 200
    listed = authed.get(keys, timeout=10).json()["items"]
    assert {item["name"] for item in listed} == {"old", "ci"} and key not in json.dumps(listed)
    assert "secret_sha256" not in json.dumps(listed)
    assert authed.delete(f"{keys}/{key_id}", timeout=10).status_code == 200
    for presented in (key, expired.json()["key"]):
        assert httpx.get(url, headers={"X-API-Key": presented}, timeout=10).status_code == 401
    reader_key = httpx.post(keys, json={"name": "x", "roles": ["Admin"]}, timeout=10,
                            headers=bearer(platform.token("rita", Role.READER)))
    assert reader_key.status_code == 403  # keys.manage is Admin only


def test_rbac_ownership_and_sharing_with_every_decision_audited(platform):
    api = f"{platform.api}/api/servers"
    reader = bearer(platform.token("rita", Role.READER))
    dev_a = bearer(platform.token("dana", Role.DEVELOPER, groups=("team-a",)))
    dev_b = bearer(platform.token("bob", Role.DEVELOPER, groups=("team-b",)))

    denied = httpx.post(api, json=remote("by-reader"), headers=reader, timeout=30)
    assert denied.status_code == 403 and denied.json()["title"] == "Forbidden"
    assert httpx.get(api, headers=reader, timeout=10).status_code == 200  # but may read

    assert httpx.post(api, json=remote("b-tool", "team-b"), headers=dev_a, timeout=30).status_code == 403
    assert httpx.post(api, json=remote("b-tool", "team-b"), headers=dev_b, timeout=30).status_code == 202
    wait_status(platform.api, "b-tool", {"Running", "Error"}, timeout=60)
    assert httpx.delete(f"{api}/b-tool", headers=dev_a, timeout=30).status_code == 403

    shares = f"{api}/b-tool/shares"
    assert httpx.put(shares, json={"items": []}, headers=dev_a, timeout=10).status_code == 403
    current = httpx.get(shares, headers=dev_b, timeout=10)
    assert current.json() == {"items": []}
    grant = {"items": [{"kind": "user", "value": "dana", "permissions": ["server.delete"]}]}
    stale = httpx.put(shares, json=grant, headers={**dev_b, "If-Match": '"stale"'}, timeout=10)
    assert stale.status_code == 412
    updated = httpx.put(shares, json=grant, headers={**dev_b, "If-Match": current.headers["ETag"]}, timeout=10)
    assert updated.status_code == 200 and updated.json() == grant
    assert httpx.delete(f"{api}/b-tool", headers=dev_a, timeout=30).status_code == 202
    wait_gone(platform.api, "b-tool", timeout=60)  # the delete's own audit events are written by then

    decisions = {(e["actor"], e["action"], e["entity"], e["result"])
                 for e in stored(platform.data_dir, "audit") if e["result"] in ("allowed", "denied")}
    assert {("rita", "server.create", "by-reader", "denied"), ("dana", "server.create", "b-tool", "denied"),
            ("bob", "server.create", "b-tool", "allowed"), ("dana", "server.delete", "b-tool", "denied"),
            ("dana", "shares.manage", "b-tool", "denied"), ("bob", "shares.manage", "b-tool", "allowed"),
            ("dana", "server.delete", "b-tool", "allowed")} <= decisions
    lifecycle = {(e["actor"], e["action"]) for e in stored(platform.data_dir, "audit") if e["result"] == "accepted"}
    assert {("bob", "server.create"), ("dana", "server.delete")} <= lifecycle  # actor = the caller

    assert httpx.get(f"{platform.api}/api/audit", headers=dev_b, timeout=10).status_code == 403
    page = authed.get(f"{platform.api}/api/audit", params={"actor": "dana", "server": "b-tool", "limit": 2},
                      timeout=10).json()
    assert len(page["items"]) == 2 and page["next"] and {e["actor"] for e in page["items"]} == {"dana"}
    rest = authed.get(f"{platform.api}/api/audit", params={"actor": "dana", "server": "b-tool",
                                                          "cursor": page["next"]}, timeout=10).json()
    assert rest["items"] and not {e["id"] for e in rest["items"]} & {e["id"] for e in page["items"]}
    assert authed.get(f"{platform.api}/api/audit", params={"limit": "0"}, timeout=10).status_code == 400


def test_security_clearance_refuses_unlisted_launchers_and_hosts_with_422(platform):
    api = f"{platform.api}/api/servers"
    evil = {"name": "evil", "kind": "package", "package": {"command": "/tmp/evil/python"}}
    far = {"name": "far", "kind": "remote", "remote": {"url": "https://attacker.example/mcp"}}
    fetch = {"name": "fetch", "kind": "package", "package": {"command": "npx", "args": ["-y", "left-pad"]}}
    for spec, field in ((evil, "package.command"), (far, "remote.url"), (fetch, "package.command")):
        response = authed.post(api, json=spec, timeout=30)
        assert response.status_code == 422, response.text
        assert field in {error["field"] for error in response.json()["errors"]}
    refused = {e["entity"] for e in stored(platform.data_dir, "audit") if e["result"] == "refused"}
    assert refused == {"evil", "far", "fetch"}
    assert authed.get(api, timeout=10).json()["items"] == []


def test_openapi_is_served_anonymously_and_secrets_never_reach_the_logs(platform):
    document = httpx.get(f"{platform.api}/api/openapi.json", timeout=10).json()
    assert document["openapi"].startswith("3.1") and "/api/keys" in document["paths"]
    assert document["components"]["securitySchemes"]["bearer"]["scheme"] == "bearer"
    # exercise login-like minting, keys and refusals, then scan everything devhost and the gateway wrote
    created = authed.post(f"{platform.api}/api/keys", json={"name": "scan", "roles": ["Reader"]}, timeout=10)
    key = created.json()["key"]
    secrets_used = [key, platform.token(), *bad_tokens(platform).values()]
    for secret in secrets_used:
        httpx.get(f"{platform.api}/api/servers", headers=bearer(secret), timeout=10)
        httpx.get(f"{platform.api}/api/servers", headers={"X-API-Key": secret}, timeout=10)
    logs = "\n".join(path.read_text(errors="replace") for path in platform.data_dir.glob("*.log"))
    assert "401 for GET" in logs  # the refusals were logged ...
    for secret in secrets_used:
        # ... without the credential (nor its signature part, which no message should echo)
        signature = secret.rsplit(".", 1)[-1][:20]
        assert secret not in logs and (not signature or signature not in logs)


async def test_deploy_probe_reaches_servers_with_tenancy(platform):
    """The probe acts in the reserved probe scope value (issue 4, item 5 x deploy): shared
    and dedicated servers reach Running; a user cannot borrow that value."""
    from shared.auth.service import PROBE_SCOPE_VALUE

    echo = {"command": sys.executable, "args": ["-m", "catalog.echo.server"]}
    for model in ("shared", "dedicated"):
        spec = {"name": f"scoped-{model}", "kind": "package", "package": echo,
                "tenancy": {"model": model, "params": ["project_id"]}}
        assert authed.post(f"{platform.api}/api/servers", json=spec, timeout=10).status_code == 202
        assert wait_status(platform.api, spec["name"], {"Running", "Error"}, timeout=60)["status"] == "Running"
    user = bearer(platform.issuer.mint("eve", [Role.ADMIN], scopes={"project_id": [PROBE_SCOPE_VALUE]}))
    init = {"jsonrpc": "2.0", "id": 1, "method": "initialize",
            "params": {"protocolVersion": "2025-11-25", "capabilities": {},
                       "clientInfo": {"name": "t", "version": "1"}}}
    async with httpx.AsyncClient(timeout=10, headers={**user, "accept": "application/json"}) as http:
        shared = await http.post(f"{platform.gateway}/servers/scoped-shared/mcp", json=init,
                                 headers={"MCPaaS-Scope": f"project_id={PROBE_SCOPE_VALUE}"})
        dedicated = await http.post(f"{platform.gateway}/servers/scoped-dedicated/tenants/{PROBE_SCOPE_VALUE}/mcp",
                                    json=init)
    assert shared.status_code == dedicated.status_code == 403  # reserved for the control plane
