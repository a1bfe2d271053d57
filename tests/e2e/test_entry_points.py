"""End to end: every entry point of the running platform checks who knocks (issue 10,
NFR-SEC-004; docs/entry-points.md).

The real devhost and gateway processes: devhost's runtime routes refuse callers without
the host key, the gateway's status refuses anonymous callers (alike for known and
unknown servers) and `/metrics` anyone without the scrape token; the authorized
callers are served.
"""

from __future__ import annotations

import httpx
import pytest

from shared.auth.principal import Role
from shared.keyfiles import read_key
from shared.settings import Settings
from tests.e2e.conftest import Platform
from tests.e2e.helpers import wait_status

pytestmark = pytest.mark.usefixtures("checkout_launchers")  # clearance opt-ins (tests/e2e/conftest.py)

ECHO = {"name": "echo", "kind": "package", "package": {"command": "python", "args": ["-m", "catalog.echo.server"]}}
RUNTIME = [("POST", "/runtime/queues/deploy-requests/messages"),
           ("GET", "/runtime/queues/deploy-requests/deadletter"),
           ("GET", "/runtime/webhooks/durabletask/instances/"),
           ("POST", "/runtime/webhooks/durabletask/orchestrators/deploy/forged-op"),
           ("POST", "/runtime/webhooks/eventgrid?functionName=image_pushed"),
           ("POST", "/admin/functions/reconcile_containers")]


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def test_devhost_runtime_routes_need_the_host_key(platform: Platform) -> None:
    admin = bearer(platform.token())  # an Admin's token is not the host key
    for method, path in RUNTIME:
        for headers in ({}, admin, {"x-functions-key": "guessed"}):
            reply = httpx.request(method, platform.api + path, headers=headers, content=b"[]", timeout=10)
            assert reply.status_code == 401, (method, path, headers, reply.text)
    keyed = httpx.get(f"{platform.api}/runtime/webhooks/durabletask/instances/",
                      headers={"x-functions-key": platform.host_key}, timeout=10)
    assert keyed.status_code == 200 and keyed.json() == []  # the forged start above started nothing
    by_code = httpx.get(f"{platform.api}/runtime/queues/deploy-requests/deadletter",
                        params={"code": platform.host_key}, timeout=10)
    assert by_code.status_code == 200 and by_code.json() == {"items": []}


def test_status_and_metrics_refuse_anonymous_callers_and_serve_authorized_ones(platform: Platform) -> None:
    admin = platform.headers
    created = httpx.post(f"{platform.api}/api/servers", json=ECHO, headers=admin, timeout=10)
    assert created.status_code == 202, created.text
    wait_status(platform.api, "echo", {"Running"}, timeout=60)  # the deploy probe read status as the control plane

    known = httpx.get(f"{platform.gateway}/servers/echo/status", timeout=10)
    unknown = httpx.get(f"{platform.gateway}/servers/nosuch/status", timeout=10)
    assert known.status_code == unknown.status_code == 401
    assert known.json() == unknown.json()
    assert "resource_metadata=" in known.headers["www-authenticate"]

    reader = httpx.get(f"{platform.gateway}/servers/echo/status",
                       headers=bearer(platform.token("rita", Role.READER)), timeout=10)
    assert reader.status_code == 200 and reader.json()["name"] == "echo"

    scrape = read_key(Settings(data_dir=platform.data_dir).metrics_token_path)
    assert scrape, "the gateway creates its scrape token in the data dir"
    for headers in ({}, admin, bearer("guessed")):
        refused = httpx.get(f"{platform.gateway}/metrics", headers=headers, timeout=10)
        assert refused.status_code == 401 and "mcpaas_gateway" not in refused.text
    served = httpx.get(f"{platform.gateway}/metrics", headers=bearer(scrape), timeout=10)
    assert served.status_code == 200
    assert 'mcpaas_gateway_requests_total{method="initialize"' in served.text  # the probe's initialize

    # liveness and readiness stay public: they name no server and carry no detail
    assert httpx.get(f"{platform.gateway}/healthz", timeout=10).status_code == 200
    assert httpx.get(f"{platform.gateway}/readyz", timeout=10).status_code == 200
