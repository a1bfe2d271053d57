"""`container` servers end to end: devhost drives the deploy, diagnostics and delete against a
fake Kubernetes API."""

from __future__ import annotations

import pytest

from shared import manifests
from shared.models import ServerSpec
from tests.e2e.helpers import authed, wait_gone, wait_status
from tests.fakes.kube_api import dump, start_fake_kube

GOOD, BAD, SLOW = "ghcr.io/acme/weather:1.0", "ghcr.io/acme/weather:broken", "ghcr.io/acme/weather:slow"


@pytest.fixture
def fake_cluster(tmp_path, monkeypatch):
    """A fake cluster with a bad and a stalled image; MCPAAS_KUBECONFIG points at it."""
    fake = start_fake_kube(tmp_path)
    fake.kube.bad_images.add(BAD)
    fake.kube.stalled_images.add(SLOW)
    monkeypatch.setenv("MCPAAS_KUBECONFIG", str(fake.kubeconfig))
    monkeypatch.setenv("MCPAAS_ROLLOUT_POLL_SECONDS", "0.2")  # durable timers, just short ones
    try:
        yield fake
    finally:
        fake.stop()


@pytest.fixture
def cluster(fake_cluster, platform):
    """(platform, fake cluster); `fake_cluster` comes first so the platform inherits its env."""
    return platform, fake_cluster


def spec(image: str) -> dict:
    return {"name": "weather", "kind": "container", "container": {"image": image, "port": 8080}}


def deployed_image(fake) -> str:
    deployment = fake.kube.get("deployments", "mcp-servers", "weather")
    return deployment["spec"]["template"]["spec"]["containers"][0]["image"]


def test_good_container_deploy_reaches_running_through_server_side_apply(cluster):
    platform, fake = cluster
    response = authed.post(f"{platform.api}/api/servers", json=spec(GOOD), timeout=30)
    assert response.status_code == 202, response.text
    server = wait_status(platform.api, "weather", {"Running", "Error"}, timeout=60)
    assert server["status"] == "Running", (server, dump(fake.kube))
    assert server["endpoint"] == f"{platform.gateway}/servers/weather/mcp"
    assert server["upstream_url"] == "http://weather.mcp-servers.svc.cluster.local:8080/mcp"
    assert {manager for _, _, manager in fake.kube.applies} == {"mcpaas"}
    assert deployed_image(fake) == GOOD

    revision = authed.get(f"{platform.api}/api/servers/weather/revisions", timeout=10).json()["items"][0]
    assert revision["manifest_hash"] == manifests.manifest_hash(ServerSpec.model_validate(spec(GOOD)))
    operation = authed.get(response.headers["Location"], timeout=10).json()
    assert operation["output"]["status"] == "Running"
    assert operation["customStatus"] == {"phase": "done", "status": "Running"}


def test_bad_image_ends_in_error_and_the_previous_revision_is_restored(cluster):
    platform, fake = cluster
    assert authed.post(f"{platform.api}/api/servers", json=spec(GOOD), timeout=30).status_code == 202
    wait_status(platform.api, "weather", {"Running"}, timeout=60)

    assert authed.put(f"{platform.api}/api/servers/weather", json=spec(BAD), timeout=30).status_code == 202
    server = wait_status(platform.api, "weather", {"Error"}, timeout=60)
    assert "ImagePullBackOff" in server["status_reason"] and "not found" in server["status_reason"]
    assert "restored revision 1" in server["status_reason"]
    assert server["revision"] == 1 and server["latest_revision"] == 2
    assert deployed_image(fake) == GOOD

    # the failed revision stays in the history, and rolling back to 1 gives a running revision 3
    response = authed.post(f"{platform.api}/api/servers/weather/rollback", json={"revision": 1}, timeout=30)
    assert response.status_code == 202, response.text
    server = wait_status(platform.api, "weather", {"Running"}, revision=3, timeout=60)
    assert server["spec"]["container"]["image"] == GOOD


def test_missed_progress_deadline_on_first_deploy_removes_the_objects(cluster):
    platform, fake = cluster
    assert authed.post(f"{platform.api}/api/servers", json=spec(SLOW), timeout=30).status_code == 202
    server = wait_status(platform.api, "weather", {"Error"}, timeout=60)
    assert "progress deadline" in server["status_reason"] and "objects removed" in server["status_reason"]
    assert fake.kube.get("deployments", "mcp-servers", "weather") is None


def test_diagnostics_logs_events_replicas_and_readiness(cluster):
    platform, fake = cluster
    assert authed.post(f"{platform.api}/api/servers", json=spec(GOOD), timeout=30).status_code == 202
    server = wait_status(platform.api, "weather", {"Running"}, timeout=60)
    assert server["replicas"]["ready"] == 1 and server["replicas"]["desired"] == 1

    events = authed.get(f"{platform.api}/api/servers/weather/events", params={"limit": 2}, timeout=10).json()
    assert [e["reason"] for e in events["items"]] == ["Started", "Scheduled"]  # newest first
    assert events["items"][0]["object"] == "Pod/weather-g1-0"
    assert authed.get(f"{platform.api}/api/servers/weather/events", params={"limit": 0}, timeout=10).status_code == 400
    assert authed.get(f"{platform.api}/api/servers/nope/events", timeout=10).status_code == 404
    logs = authed.get(f"{platform.api}/api/servers/weather/logs", params={"tail": 10}, timeout=10).json()
    assert len(logs["lines"]) == 1 and logs["lines"][0].endswith(f"[weather-g1-0] {GOOD} serving MCP")

    # the HPA scales out and the pods then lose readiness: the reconcile timer reports both
    fake.kube.scale("mcp-servers", "weather", 3)
    fake.kube.unready.add("weather")
    assert authed.post(f"{platform.api}/admin/functions/reconcile_containers", timeout=10).status_code == 202
    server = wait_status(platform.api, "weather", {"Error"}, timeout=30)
    assert server["status_reason"] == "no ready pods: 0 of 3 replicas ready"
    assert server["replicas"]["desired"] == 3 and server["replicas"]["ready"] == 0
    assert server["scaling_events"][1]["reason"] == "SuccessfulRescale"
    fake.kube.unready.clear()
    assert authed.post(f"{platform.api}/admin/functions/reconcile_containers", timeout=10).status_code == 202
    assert wait_status(platform.api, "weather", {"Running"}, timeout=30)["replicas"]["ready"] == 3


def test_delete_removes_the_kubernetes_objects(cluster):
    platform, fake = cluster
    assert authed.post(f"{platform.api}/api/servers", json=spec(GOOD), timeout=30).status_code == 202
    wait_status(platform.api, "weather", {"Running"}, timeout=60)
    assert authed.delete(f"{platform.api}/api/servers/weather", timeout=30).status_code == 202
    wait_gone(platform.api, "weather", timeout=60)
    left = [key for key in fake.kube.objects if key[0] not in ("namespaces", "events")]
    assert left == [], dump(fake.kube)
