"""Single-server mode end to end: `python -m gateway` as a package-server pod runs it
(issue 11 item 4), started as a process with the settings its ConfigMap gives, and
called over real HTTP through the official `mcp` client."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import httpx
import pytest
from mcp import Client

from shared.models import Server, ServerSpec
from shared.package_pods import pod_settings
from tests.e2e.conftest import REPO, free_port, wait_http
from tests.integration.gateway.helpers import BOTH, INIT, put_server

PROBE = Path(__file__).with_name("sandbox_probe.py")
SECRET = "s3cret-value-from-the-mounted-secret"


def probe_spec(**package) -> ServerSpec:
    return ServerSpec.model_validate({
        "name": "probe", "kind": "package", "owner_team": "blue",
        "package": {"command": sys.executable, "args": [str(PROBE)],
                    "secrets": {"API_TOKEN": {"ref": "https://kv.example/secrets/probe-token/1"}}, **package}})


def start(spec: ServerSpec, tmp_path: Path) -> tuple[subprocess.Popen, str]:
    """The process with the pod's settings (`pod_settings`), its data dir and secret
    mount under `tmp_path`, on a free port; returns it and its base URL."""
    mount = tmp_path / "secrets"
    mount.mkdir(parents=True, exist_ok=True)
    (mount / "API_TOKEN").write_text(SECRET)
    port = free_port()
    settings = {**pod_settings(spec), "MCPAAS_GATEWAY_HOST": "127.0.0.1", "MCPAAS_GATEWAY_PORT": str(port),
                "MCPAAS_DATA_DIR": str(tmp_path / "data"), "MCPAAS_SECRETS_MOUNT_DIR": str(mount)}
    env = {key: value for key, value in os.environ.items() if not key.startswith("MCPAAS_")} | settings
    process = subprocess.Popen([sys.executable, "-m", "gateway"], cwd=REPO, env=env,
                               stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    return process, f"http://127.0.0.1:{port}"


def stop(process: subprocess.Popen) -> str:
    process.terminate()
    output, _ = process.communicate(timeout=30)
    return output


async def call(url: str, tool: str, arguments: dict) -> object:
    async with Client(f"{url}/mcp") as client:
        result = await client.call_tool(tool, arguments)
    assert not result.is_error, result
    content = result.structured_content
    return content["result"] if set(content) == {"result"} else content


@pytest.mark.anyio
async def test_serves_one_package_server_with_its_mounted_secret(tmp_path):
    spec = probe_spec(install=[sys.executable, str(PROBE), "--install", "installed.json"])
    process, url = start(spec, tmp_path)
    try:
        wait_http(f"{url}/readyz", process)
        # the install step ran before the port opened, in the server's own directory
        report = json.loads((tmp_path / "data" / "servers" / "probe" / "installed.json").read_text())
        assert report["environ"]["HOME"] == str(tmp_path / "data" / "servers" / "probe")
        environ = await call(url, "environ", {})
        assert environ["API_TOKEN"] == SECRET  # resolved from the mounted Secret's file
        # the bridge's own settings never reach the tenant's child
        assert not [key for key in environ if key.startswith("MCPAAS_")]
        assert await call(url, "shout", {"text": f"hello {SECRET}"}) == "ok"
        # one server only: the shared gateway's routes are not here
        async with httpx.AsyncClient(timeout=10) as http:
            assert (await http.post(f"{url}/servers/probe/mcp", json={})).status_code == 404
            assert (await http.get(f"{url}/admin/servers/probe/logs")).status_code == 404
    finally:
        output = stop(process)
    # the child's stderr is on the process's stdout (the pod log), its secret redacted
    shouted = [line for line in output.splitlines() if "shouting: hello" in line]
    assert shouted and SECRET not in "\n".join(shouted) and "[REDACTED]" in shouted[0]


def test_a_failing_install_stops_the_process(tmp_path):
    spec = probe_spec(install=[sys.executable, "-c", "import sys; sys.exit('no such package')"])
    process, _ = start(spec, tmp_path)
    output, _ = process.communicate(timeout=60)
    assert process.returncode != 0  # a crash-looping pod fails the rollout
    assert "no such package" in output


@pytest.mark.parametrize("change, message", [
    ({"MCPAAS_GATEWAY_SINGLE_SERVER": "other"}, "spec names 'probe'"),
    ({"MCPAAS_GATEWAY_SINGLE_SERVER_SPEC": '{"name": "probe", "kind": "remote", "remote": {"url": "https://x"}}'},
     "serves package servers"),
    ({"MCPAAS_GATEWAY_SINGLE_SERVER_SPEC": "{not json"}, "not a valid ServerSpec"),
])
def test_bad_single_server_settings_refuse_to_start(tmp_path, change, message):
    env = {key: value for key, value in os.environ.items() if not key.startswith("MCPAAS_")}
    env |= {**pod_settings(probe_spec()), "MCPAAS_DATA_DIR": str(tmp_path), "MCPAAS_GATEWAY_PORT": str(free_port()),
            **change}
    result = subprocess.run([sys.executable, "-m", "gateway"], cwd=REPO, env=env, capture_output=True, text=True,
                            timeout=60)
    assert result.returncode != 0 and message in result.stderr


@pytest.mark.anyio
async def test_the_central_gateway_routes_to_the_pod_and_never_starts_the_child(tmp_path, make_gateway, store):
    """`gateway_package_pods` (the gateway on Kubernetes): a package server with a pod
    (`upstream_url`) is proxied there; one without is refused, never started locally."""
    spec = probe_spec()
    pod, url = start(spec, tmp_path / "pod")
    try:
        wait_http(f"{url}/readyz", pod)
        gw = make_gateway(gateway_package_pods=True)
        doc = Server(name="probe", spec=spec, status="Running", upstream_url=f"{url}/mcp")
        store.upsert("servers", doc.model_dump(mode="json") | {"id": "probe"})
        environ = await call(gw.url + "/servers/probe", "environ", {})
        assert environ["API_TOKEN"] == SECRET  # the pod's child answered, with the pod's secret
        assert gw.app.state.gateway.sessions.of_server("probe") == []  # no child in the gateway

        put_server(store, probe_spec().model_copy(update={"name": "nopod"}))
        async with httpx.AsyncClient(timeout=10) as http:
            refused = await http.post(gw.mcp_url("nopod"), json=INIT, headers=BOTH)
            legacy = await http.get(f"{gw.url}/servers/probe/sse")
        assert refused.status_code == 422 and "no pod of its own" in refused.json()["detail"]
        assert legacy.status_code == 422  # legacy SSE would start a child here: refused too
        assert gw.app.state.gateway.sessions.of_server("nopod") == []
    finally:
        stop(pod)
