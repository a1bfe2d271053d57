"""`/servers/{name}/status` and `/metrics` check who asks (issue 10, NFR-SEC-004).

Status needs a credential that may read the server (401 with the RFC 9728 challenge,
the same for known and unknown names; 403 for a key scoped elsewhere) and never shows
a credential in `last_error`; `/metrics` needs the scrape token.
"""

from __future__ import annotations

from collections.abc import Callable

import httpx
import pytest

from shared.auth.api_keys import create_key
from shared.auth.principal import Role
from shared.auth.tokens import LocalIssuer
from shared.keyfiles import metrics_token
from shared.redact import MAX_ERROR_CHARS

from tests.integration.gateway.authn import AuthGateway, bearer, start_local
from tests.integration.gateway.helpers import GatewayUnderTest, echo_spec

JWT = ("eyJhbGciOiJSUzI1NiIsImtpZCI6IngifQ.eyJzdWIiOiJhbGljZSIsInJvbGVzIjpbIkFkbWluIl19."
       "c2lnbmF0dXJlLXNpZ25hdHVyZS1zaWduYXR1cmU")
LEAKY = (f"could not start: GET https://api.example.com/v1?code=hostkey123 failed with "
         f"Authorization: Bearer {JWT}; DefaultEndpointsProtocol=https;AccountName=acct;"
         f"AccountKey=c2VjcmV0LWFjY291bnQta2V5LWJhc2U2NA==;EndpointSuffix=core.windows.net "
         f"SharedAccessKey=sb-secret-value password=hunter2 key mcpk_0123abcd_s3cr3t-api-key ")


@pytest.fixture
def gw(make_gateway: Callable[..., GatewayUnderTest]) -> AuthGateway:
    auth = start_local(make_gateway)
    auth.gateway.put(echo_spec("echo"))
    return auth


async def test_anonymous_status_is_refused_alike_for_known_and_unknown_servers(gw: AuthGateway) -> None:
    async with httpx.AsyncClient(base_url=gw.gateway.url) as http:
        known = await http.get("/servers/echo/status")
        unknown = await http.get("/servers/nosuch/status")
    for reply, name in ((known, "echo"), (unknown, "nosuch")):
        assert reply.status_code == 401
        challenge = reply.headers["www-authenticate"]
        assert challenge == (f'Bearer resource_metadata="{gw.gateway.url}/.well-known/'
                             f'oauth-protected-resource/servers/{name}/mcp"')
    assert known.json() == unknown.json()  # nothing says which of the two exists


async def test_a_forged_token_is_refused(gw: AuthGateway, tmp_path) -> None:
    forged = LocalIssuer(tmp_path / "other-key.pem").mint("mallory", [Role.ADMIN])
    async with httpx.AsyncClient(base_url=gw.gateway.url) as http:
        reply = await http.get("/servers/echo/status", headers=bearer(forged))
    assert reply.status_code == 401 and 'error="invalid_token"' in reply.headers["www-authenticate"]


async def test_a_reader_sees_status_and_a_key_scoped_elsewhere_does_not(gw: AuthGateway) -> None:
    scoped, _ = create_key(gw.gateway.store, name="ci", roles=[Role.READER], created_by="admin",
                           servers=["other"])
    async with httpx.AsyncClient(base_url=gw.gateway.url) as http:
        reader = await http.get("/servers/echo/status", headers=gw.headers("rita"))
        unknown = await http.get("/servers/nosuch/status", headers=gw.headers("rita"))
        denied = await http.get("/servers/echo/status", headers={"X-API-Key": scoped})
    assert reader.status_code == 200
    assert reader.json()["name"] == "echo" and reader.json()["status"] == "idle"
    assert unknown.status_code == 200 and unknown.json()["status"] == "unknown"
    assert denied.status_code == 403
    assert denied.headers["content-type"] == "application/problem+json"
    assert "not scoped to server 'echo'" in denied.json()["detail"]


async def test_last_error_is_scrubbed_of_credentials_and_capped(gw: AuthGateway) -> None:
    sessions = gw.gateway.app.state.gateway.sessions
    sessions.record_error("echo", LEAKY)
    async with httpx.AsyncClient(base_url=gw.gateway.url) as http:
        shown = (await http.get("/servers/echo/status", headers=gw.headers("rita"))).json()["last_error"]
        for secret in ("hostkey123", JWT, "c2VjcmV0LWFjY291bnQta2V5LWJhc2U2NA==", "sb-secret-value",
                       "hunter2", "s3cr3t-api-key"):
            assert secret not in shown
        assert shown.startswith("could not start: GET https://api.example.com/v1?code=[REDACTED]")
        sessions.record_error("echo", LEAKY * 100)
        long = (await http.get("/servers/echo/status", headers=gw.headers("rita"))).json()["last_error"]
    assert len(long) == MAX_ERROR_CHARS and long.endswith("…")
    assert "hunter2" not in long


async def test_metrics_need_the_scrape_token(gw: AuthGateway) -> None:
    token = metrics_token(gw.gateway.settings)
    async with httpx.AsyncClient(base_url=gw.gateway.url) as http:
        anonymous = await http.get("/metrics")
        user = await http.get("/metrics", headers=gw.headers("admin", Role.ADMIN))  # a user token is not it
        wrong = await http.get("/metrics", headers=bearer(token[:-2] + "xx"))
        scraped = await http.get("/metrics", headers=bearer(token))
    for reply in (anonymous, user, wrong):
        assert reply.status_code == 401
        assert reply.headers["www-authenticate"] == 'Bearer realm="metrics"'
        assert "mcpaas_gateway" not in reply.text
    assert scraped.status_code == 200 and "mcpaas_gateway_requests" in scraped.text


async def test_a_configured_scrape_token_is_used(make_gateway: Callable[..., GatewayUnderTest]) -> None:
    gateway = make_gateway(gateway_metrics_token="from-a-kubernetes-secret")
    async with httpx.AsyncClient(base_url=gateway.url) as http:
        assert (await http.get("/metrics", headers=bearer("from-a-kubernetes-secret"))).status_code == 200
        assert (await http.get("/metrics")).status_code == 401
    assert not gateway.settings.metrics_token_path.exists()
