"""A `package` server on a Kubernetes target end to end (issue 11 item 4): devhost deploys it
as a pod of its own (fake Kubernetes API), reads its logs from the pod, and deletes it."""

from __future__ import annotations

import pytest

from tests.e2e.helpers import authed, wait_gone, wait_status
from tests.e2e.test_container import fake_cluster  # noqa: F401  (fixture)
from tests.fakes.kube_api import dump

IMAGE = "acr.example.io/mcpaas-gateway:e2e"
SPEC = {"name": "clock", "kind": "package", "package": {"command": "uvx", "args": ["mcp-server-time"]}}


@pytest.fixture
def cluster(fake_cluster, monkeypatch, platform):  # noqa: F811
    """(platform, fake cluster) with the gateway image the package pods run."""
    return platform, fake_cluster


@pytest.fixture(autouse=True)
def gateway_image(monkeypatch):
    monkeypatch.setenv("MCPAAS_GATEWAY_IMAGE", IMAGE)


def test_package_server_rolls_out_as_its_own_pod_and_deletes_cleanly(cluster):
    platform, fake = cluster
    assert authed.post(f"{platform.api}/api/servers", json=SPEC, timeout=30).status_code == 202
    server = wait_status(platform.api, "clock", {"Running", "Error"}, timeout=60)
    assert server["status"] == "Running", (server, dump(fake.kube))
    assert server["upstream_url"] == "http://clock.mcp-servers.svc.cluster.local:8080/mcp"
    pod = fake.kube.get("deployments", "mcp-servers", "clock")["spec"]["template"]["spec"]
    assert pod["containers"][0]["image"] == IMAGE
    # no shared disk with the gateway: the logs are the pod's
    logs = authed.get(f"{platform.api}/api/servers/clock/logs", params={"tail": 5}, timeout=10).json()
    assert logs["lines"] and "[clock-g1-0]" in logs["lines"][-1]

    assert authed.delete(f"{platform.api}/api/servers/clock", timeout=30).status_code == 202
    wait_gone(platform.api, "clock", timeout=60)
    left = [key for key in fake.kube.objects if key[0] not in ("namespaces", "events")]
    assert left == [], dump(fake.kube)
