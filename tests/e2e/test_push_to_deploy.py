"""Push to deploy end to end: an ACR ImagePushed event through devhost's Event Grid webhook
redeploys a container server on the fake Kubernetes API, once."""

from __future__ import annotations

import uuid

import httpx

from tests.e2e.helpers import authed, wait_status
from tests.e2e.test_container import cluster, deployed_image, fake_cluster  # noqa: F401  (fixtures)

IMAGE = "acme.azurecr.io/team/weather:1.0"
DIGEST = "sha256:" + "c0ffee" * 10 + "c0ff"


def push(event_id: str, digest: str = DIGEST) -> dict:
    """An ImagePushed event in the Event Grid schema, as ACR publishes it."""
    return {"id": event_id, "topic": "/subscriptions/s/resourceGroups/rg/providers/"
            "Microsoft.ContainerRegistry/registries/acme", "subject": "team/weather:1.0",
            "eventType": "Microsoft.ContainerRegistry.ImagePushed", "eventTime": "2026-01-01T00:00:00Z",
            "dataVersion": "1.0", "metadataVersion": "1",
            "data": {"id": uuid.uuid4().hex, "timestamp": "2026-01-01T00:00:00Z", "action": "push",
                     "target": {"mediaType": "application/vnd.oci.image.manifest.v1+json", "size": 1024,
                                "digest": digest, "length": 1024, "repository": "team/weather", "tag": "1.0"},
                     "request": {"id": "r", "host": "acme.azurecr.io", "method": "PUT", "useragent": "docker"}}}


def deliver(api: str, events: list[dict]) -> httpx.Response:
    return authed.post(f"{api}/runtime/webhooks/eventgrid", params={"functionName": "image_pushed"},
                      json=events, headers={"aeg-event-type": "Notification"}, timeout=30)


def revisions(api: str) -> list[dict]:
    return authed.get(f"{api}/api/servers/weather/revisions", timeout=10).json()["items"]


def test_image_push_redeploys_an_opted_in_server_once(cluster):  # noqa: F811
    platform, fake = cluster
    spec = {"name": "weather", "kind": "container", "container": {"image": IMAGE, "port": 8080, "auto_deploy": True}}
    assert authed.post(f"{platform.api}/api/servers", json=spec, timeout=30).status_code == 202
    wait_status(platform.api, "weather", {"Running"}, timeout=60)

    event = push("push-1")
    assert deliver(platform.api, [event]).status_code == 200
    server = wait_status(platform.api, "weather", {"Running"}, revision=2, timeout=60)
    assert server["spec"]["container"]["image"] == f"{IMAGE}@{DIGEST}"
    assert deployed_image(fake) == f"{IMAGE}@{DIGEST}"  # the pods rolled although the tag did not change
    newest = revisions(platform.api)[0]
    assert newest["actor"] == "acr-push:acme.azurecr.io"
    assert newest["diff"] == {"container.image": {"from": IMAGE, "to": f"{IMAGE}@{DIGEST}"}}

    # Event Grid redelivers, and the same digest arrives again under a new event id
    assert deliver(platform.api, [event]).status_code == 200
    assert deliver(platform.api, [push("push-2")]).status_code == 200
    assert [r["number"] for r in revisions(platform.api)] == [2, 1]
    assert authed.get(f"{platform.api}/api/servers/weather", timeout=10).json()["latest_revision"] == 2
