"""Secrets end to end (issue 10 item 4, NFR-SEC-002): real devhost and gateway processes on
SQLite and on the Cosmos emulator. A value set through the REST API is found nowhere but
in the encrypted secret store, the child still receives it, a rotation restarts the
child with the new value, a caller cannot borrow another server's secret, and deleting
the server deletes its secrets."""

from __future__ import annotations

import base64
import hashlib
import os
import uuid
from pathlib import Path

import httpx
import pytest

from shared import manifests
from shared.auth.principal import Role
from shared.secrets.embedded import EmbeddedSecretStore
from shared.secrets.port import SecretNotFoundError
from shared.store.port import CONTAINERS
from tests.e2e.helpers import authed, mcp_client, stored, wait_gone, wait_status
from tests.e2e.test_container import GOOD, cluster, fake_cluster  # noqa: F401  (fixtures)

PROBE = str(Path(__file__).with_name("secret_probe_server.py"))


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def probe_spec(secrets: dict, team: str = "team-a", name: str = "vault-probe") -> dict:
    return {"name": name, "kind": "package", "owner_team": team,
            "package": {"command": "python", "args": [PROBE], "env": {"PLAIN": "not-secret"},
                        "secrets": secrets}}


def sha256(value: str) -> str:
    return hashlib.sha256(value.encode()).hexdigest()


async def seen_by_child(platform, name: str = "vault-probe") -> str:
    async with mcp_client(f"{platform.gateway}/servers/{name}/mcp", platform.headers) as client:
        result = await client.call_tool("env_sha256", {"name": "API_TOKEN"})
        assert not result.is_error, result
        return result.content[0].text


def api_responses(platform, callers: dict[str, dict[str, str]], operations: list[str]) -> list[httpx.Response]:
    """Every read of the REST API that could show a spec, as each caller."""
    paths = ["/api/servers", "/api/servers/vault-probe", "/api/servers/vault-probe/revisions", "/api/audit",
             "/api/audit?server=vault-probe", *[f"/api/operations/{op}" for op in operations]]
    return [httpx.get(f"{platform.api}{path}", headers=headers, timeout=10)
            for headers in callers.values() for path in paths]


def files_holding(data_dir: Path, needles: list[bytes]) -> list[str]:
    """Files under the data dir, outside the encrypted secret store, holding any needle."""
    found = []
    for path in data_dir.rglob("*"):
        if path.is_file() and not path.is_relative_to(data_dir / "secrets"):
            content = path.read_bytes()
            found += [f"{path} holds {needle!r}" for needle in needles if needle in content]
    return found


async def test_a_secret_is_found_nowhere_but_reaches_the_child_and_rotates(platform):
    first, second = f"first-{uuid.uuid4().hex}", f"second-{uuid.uuid4().hex}"
    developer = bearer(platform.token("dana", Role.DEVELOPER, groups=("team-a",)))
    callers = {"reader": bearer(platform.token("rita", Role.READER)), "developer": developer,
               "admin": platform.headers}

    created = httpx.post(f"{platform.api}/api/servers", json=probe_spec({"API_TOKEN": {"value": first}}),
                         headers=developer, timeout=30)
    assert created.status_code == 202, created.text
    server = wait_status(platform.api, "vault-probe", {"Running", "Error"}, timeout=60)
    assert server["status"] == "Running", server
    first_ref = server["spec"]["package"]["secrets"]["API_TOKEN"]["ref"]
    assert first_ref.startswith("mcpaas-secret://mcpaas-vault-probe-API-TOKEN-")
    async with mcp_client(f"{platform.gateway}/servers/vault-probe/mcp", platform.headers) as session:
        assert (await session.call_tool("env_sha256", {"name": "API_TOKEN"})).content[0].text == sha256(first)
        old_pids = authed.get(f"{platform.gateway}/servers/vault-probe/status", timeout=5).json()["pids"]
        assert old_pids  # the open session's child

        # rotation: the same spec with a new value is a new version, a new revision, a new child
        rotated = httpx.put(f"{platform.api}/api/servers/vault-probe",
                            json=probe_spec({"API_TOKEN": {"value": second}}), headers=developer, timeout=30)
        assert rotated.status_code == 202, rotated.text
        server = wait_status(platform.api, "vault-probe", {"Running"}, revision=2, timeout=60)
        second_ref = server["spec"]["package"]["secrets"]["API_TOKEN"]["ref"]
        assert second_ref != first_ref
        for pid in old_pids:  # the deploy ended the session and stopped its child
            with pytest.raises(ProcessLookupError):
                os.kill(pid, 0)
    assert await seen_by_child(platform) == sha256(second)
    revisions = authed.get(f"{platform.api}/api/servers/vault-probe/revisions", timeout=10).json()["items"]
    assert revisions[0]["diff"] == {"package.secrets.API_TOKEN.ref": {"from": first_ref, "to": second_ref}}

    # re-sending the reference GET shows keeps the secret; nothing new is stored
    unchanged = probe_spec({"API_TOKEN": {"ref": second_ref}}) | {"description": "same secret"}
    assert httpx.put(f"{platform.api}/api/servers/vault-probe", json=unchanged, headers=developer,
                     timeout=30).status_code == 202
    server = wait_status(platform.api, "vault-probe", {"Running"}, revision=3, timeout=60)
    assert server["spec"]["package"]["secrets"]["API_TOKEN"]["ref"] == second_ref

    # a rollback re-applies revision 1's reference: the first version is still there
    rollback = authed.post(f"{platform.api}/api/servers/vault-probe/rollback", json={"revision": 1}, timeout=30)
    assert rollback.status_code == 202, rollback.text
    server = wait_status(platform.api, "vault-probe", {"Running"}, revision=4, timeout=60)
    assert server["spec"]["package"]["secrets"]["API_TOKEN"]["ref"] == first_ref
    assert await seen_by_child(platform) == sha256(first)

    operations = [body.json()["operation_id"] for body in (created, rotated, rollback)]
    needles = [first, second]
    for response in api_responses(platform, callers, operations):
        assert response.status_code in (200, 403), (response.request.url, response.status_code)
        assert not any(value in response.text for value in needles), response.request.url
    for container in CONTAINERS:
        for document in stored(platform.data_dir, container):
            assert not any(value in repr(document) for value in needles), (container, document["id"])
    assert files_holding(platform.data_dir, [value.encode() for value in needles]) == []

    assert authed.delete(f"{platform.api}/api/servers/vault-probe", timeout=30).status_code == 202
    wait_gone(platform.api, "vault-probe", timeout=60)
    secrets = EmbeddedSecretStore(platform.data_dir / "secrets")
    for ref in (first_ref, second_ref):
        with pytest.raises(SecretNotFoundError):
            secrets.get(ref)


async def test_a_caller_cannot_point_its_server_at_another_servers_secret(platform):
    victim_value = f"victim-{uuid.uuid4().hex}"
    dana = bearer(platform.token("dana", Role.DEVELOPER, groups=("team-a",)))
    bob = bearer(platform.token("bob", Role.DEVELOPER, groups=("team-b",)))
    assert httpx.post(f"{platform.api}/api/servers", json=probe_spec({"API_TOKEN": {"value": victim_value}}),
                      headers=dana, timeout=30).status_code == 202
    victim = wait_status(platform.api, "vault-probe", {"Running"}, timeout=60)
    stolen = victim["spec"]["package"]["secrets"]["API_TOKEN"]["ref"]  # a Reader may see references

    for ref in (stolen, "mcpaas-secret://nothing/" + "0" * 32):
        spec = probe_spec({"API_TOKEN": {"ref": ref}}, team="team-b", name="thief")
        response = httpx.post(f"{platform.api}/api/servers", json=spec, headers=bob, timeout=30)
        assert response.status_code == 422, response.text
        assert response.headers["content-type"].startswith("application/problem+json")
        assert response.json()["errors"][0]["field"] == "package.secrets.API_TOKEN"
    assert authed.get(f"{platform.api}/api/servers/thief", timeout=10).status_code == 404


def test_a_container_server_gets_its_secret_through_a_kubernetes_secret_only(cluster):  # noqa: F811  (fixture)
    platform, fake = cluster
    first, second = f"kube-first-{uuid.uuid4().hex}", f"kube-second-{uuid.uuid4().hex}"

    def container(value: str) -> dict:
        return {"name": "weather", "kind": "container",
                "container": {"image": GOOD, "port": 8080, "secrets": {"API_KEY": {"value": value}}}}

    def pod_template() -> dict:
        return fake.kube.get("deployments", "mcp-servers", "weather")["spec"]["template"]

    def secret_data() -> str:
        return base64.b64decode(fake.kube.get("secrets", "mcp-servers", "weather")["data"]["API_KEY"]).decode()

    assert authed.post(f"{platform.api}/api/servers", json=container(first), timeout=30).status_code == 202
    assert wait_status(platform.api, "weather", {"Running", "Error"}, timeout=60)["status"] == "Running"
    assert secret_data() == first
    assert pod_template()["spec"]["containers"][0]["env"] == [
        {"name": "API_KEY", "valueFrom": {"secretKeyRef": {"name": "weather", "key": "API_KEY"}}}]
    first_hash = pod_template()["metadata"]["annotations"][manifests.CONFIG_HASH_ANNOTATION]

    assert authed.put(f"{platform.api}/api/servers/weather", json=container(second), timeout=30).status_code == 202
    wait_status(platform.api, "weather", {"Running"}, revision=2, timeout=60)
    assert secret_data() == second  # and the pods roll: the config hash follows the reference
    assert pod_template()["metadata"]["annotations"][manifests.CONFIG_HASH_ANNOTATION] != first_hash

    needles = [first, second]
    for container_name in CONTAINERS:
        for document in stored(platform.data_dir, container_name):
            assert not any(value in repr(document) for value in needles), (container_name, document["id"])
    for path in ("/api/servers/weather", "/api/servers/weather/revisions", "/api/audit"):
        assert not any(value in authed.get(f"{platform.api}{path}", timeout=10).text for value in needles)
    assert files_holding(platform.data_dir, [value.encode() for value in needles]) == []

    assert authed.delete(f"{platform.api}/api/servers/weather", timeout=30).status_code == 202
    wait_gone(platform.api, "weather", timeout=60)
    assert fake.kube.get("secrets", "mcp-servers", "weather") is None
