"""Push to deploy: the Event Grid function called with real `azure.functions` event types."""

from __future__ import annotations

from datetime import datetime, timezone
from typing import Any

import azure.functions as func
import pytest

from shared import servers
from shared.errors import ConflictError
from shared.images import ImageRef
from shared.models import ServerSpec
from shared.settings import get_settings
from shared.store import get_store
from triggers import event_grid

HOST = "acme.azurecr.io"
DIGEST = "sha256:" + "a" * 64
OTHER_DIGEST = "sha256:" + "b" * 64


class RecordingClient:
    """Stands in for the DurableOrchestrationClient: records `start_new` calls."""

    def __init__(self, fail: Exception | None = None) -> None:
        self.started: list[tuple[str, str, dict[str, Any]]] = []
        self.fail = fail

    async def start_new(self, name: str, instance_id: str, payload: dict[str, Any]) -> str:
        if self.fail is not None:
            raise self.fail
        self.started.append((name, instance_id, payload))
        return instance_id


@pytest.fixture(autouse=True)
def platform_env(tmp_path, monkeypatch):
    """A fresh SQLite store and a (never contacted) Kubernetes target, so container specs deploy."""
    monkeypatch.setenv("MCPAAS_DATA_DIR", str(tmp_path / "data"))
    monkeypatch.setenv("MCPAAS_KUBECONFIG", str(tmp_path / "kubeconfig"))
    get_settings.cache_clear()
    get_store.cache_clear()
    yield
    get_settings.cache_clear()
    get_store.cache_clear()


def push_event(event_id: str = "ev-1", tag: str = "1.0", digest: str = DIGEST, repository: str = "team/weather",
               event_type: str = event_grid.IMAGE_PUSHED) -> func.EventGridEvent:
    data = {"id": "a1", "timestamp": "2026-01-01T00:00:00Z", "action": "push",
            "target": {"mediaType": "application/vnd.docker.distribution.manifest.v2+json", "size": 524,
                       "digest": digest, "length": 524, "repository": repository, "tag": tag},
            "request": {"id": "r1", "host": HOST, "method": "PUT", "useragent": "docker/27"}}
    return func.EventGridEvent(id=event_id, data=data, topic="/subscriptions/x/resourceGroups/rg/providers/"
                               "Microsoft.ContainerRegistry/registries/acme", subject=f"{repository}:{tag}",
                               event_type=event_type, event_time=datetime.now(timezone.utc), data_version="1.0")


def add_server(name: str = "weather", image: str = f"{HOST}/team/weather:1.0", auto_deploy: bool = True) -> None:
    spec = ServerSpec.model_validate({"name": name, "kind": "container",
                                      "container": {"image": image, "auto_deploy": auto_deploy}})
    servers.accept_create(get_store(), spec, f"op-{name}")
    servers.finish_operation(get_store(), name=name, operation_id=f"op-{name}", succeeded=True, revision=1)


async def deliver(event: Any, client: RecordingClient) -> None:
    """Call the function as the worker does once the durable client binding is resolved."""
    await event_grid.image_pushed._function.get_user_function().__wrapped__(event=event, client=client)


def images(client: RecordingClient) -> dict[str, str]:
    return {payload["name"]: payload["spec"]["container"]["image"] for _, _, payload in client.started}


@pytest.mark.parametrize("image, expected", [
    ("acme.azurecr.io/team/weather:1.0", ImageRef("acme.azurecr.io", "team/weather", "1.0", None)),
    ("ACME.azurecr.io/weather", ImageRef("acme.azurecr.io", "weather", "latest", None)),
    (f"acme.azurecr.io/weather:2@{DIGEST}", ImageRef("acme.azurecr.io", "weather", "2", DIGEST)),
    ("localhost:5000/weather:dev", ImageRef("localhost:5000", "weather", "dev", None)),
    ("library/python:3.11", ImageRef("docker.io", "library/python", "3.11", None)),
])
def test_image_references_parse_like_docker(image, expected):
    assert ImageRef.parse(image) == expected


async def test_a_push_redeploys_tracking_servers_pinned_to_the_digest():
    add_server("weather")
    add_server("manual", auto_deploy=False)
    add_server("nightly", image=f"{HOST}/team/weather:nightly")
    add_server("elsewhere", image="other.azurecr.io/team/weather:1.0")
    client = RecordingClient()
    await deliver(push_event(), client)

    assert images(client) == {"weather": f"{HOST}/team/weather:1.0@{DIGEST}"}
    name, operation_id, payload = client.started[0]
    assert (name, payload["action"], payload["revision"], payload["actor"]) == (
        "deploy", "update", 2, f"acr-push:{HOST}")
    server = servers.load_server(get_store(), "weather")[0]
    assert server.operation_id == operation_id and server.latest_revision == 2


async def test_a_repeated_event_or_a_deployed_digest_starts_nothing():
    add_server("weather")
    client = RecordingClient()
    await deliver(push_event("ev-1"), client)
    servers.finish_operation(get_store(), name="weather", operation_id=client.started[0][1], succeeded=True,
                             revision=2)
    await deliver(push_event("ev-1"), client)  # Event Grid redelivers
    await deliver(push_event("ev-2"), client)  # the same digest pushed again under a new event
    assert len(client.started) == 1
    assert servers.load_server(get_store(), "weather")[0].latest_revision == 2

    await deliver(push_event("ev-3", digest=OTHER_DIGEST), client)  # a new build rolls again
    assert images(client)["weather"] == f"{HOST}/team/weather:1.0@{OTHER_DIGEST}"
    assert len(client.started) == 2


async def test_an_operation_in_flight_fails_the_delivery_and_a_retry_deploys():
    add_server("weather")
    servers.accept_update(get_store(), servers.load_server(get_store(), "weather")[0].spec, "op-busy")
    client = RecordingClient()
    with pytest.raises(ConflictError):
        await deliver(push_event(), client)  # the host answers 500: Event Grid retries later
    assert client.started == []

    servers.finish_operation(get_store(), name="weather", operation_id="op-busy", succeeded=True, revision=2)
    await deliver(push_event(), client)  # the claim was released, so the retry is not a duplicate
    assert images(client) == {"weather": f"{HOST}/team/weather:1.0@{DIGEST}"}


async def test_a_failed_start_releases_the_claim():
    add_server("weather")
    with pytest.raises(RuntimeError):
        await deliver(push_event(), RecordingClient(fail=RuntimeError("task hub down")))
    server = servers.load_server(get_store(), "weather")[0]
    assert server.latest_revision == 1 and server.operation_id is None  # the accept was undone
    client = RecordingClient()
    await deliver(push_event(), client)
    assert len(client.started) == 1


async def test_other_event_types_and_malformed_pushes_are_ignored():
    add_server("weather")
    client = RecordingClient()
    await deliver(push_event(event_type="Microsoft.ContainerRegistry.ImageDeleted"), client)
    await deliver(push_event(digest="not-a-digest"), client)
    assert client.started == []


async def test_cloud_events_schema_is_handled_alike():
    add_server("weather", image=f"{HOST}/team/weather")  # untagged tracks `latest`
    event = push_event(tag="latest")
    cloud = func.CloudEvent(id="ce-1", source=event.topic, type=event_grid.IMAGE_PUSHED, specversion="1.0",
                            data=event.get_json(), subject=event.subject)
    client = RecordingClient()
    await deliver(cloud, client)
    assert images(client) == {"weather": f"{HOST}/team/weather:latest@{DIGEST}"}


async def test_a_push_finds_its_servers_through_the_image_index(monkeypatch):
    """A push reads only the servers tracking its repository and tag (the `tracks_image`
    index, EXPLAIN QUERY PLAN), not every server."""
    add_server("weather")
    add_server("weather-copy")
    add_server("pinned", auto_deploy=False)
    for other in range(20):
        add_server(f"other-{other}", image=f"{HOST}/team/other:{other}")
    store, queries = get_store(), []
    real_query = store.query
    monkeypatch.setattr(store, "query", lambda *a, **k: queries.append((a, k)) or real_query(*a, **k))
    client = RecordingClient()
    await deliver(push_event(), client)
    assert set(images(client)) == {"weather", "weather-copy"}
    assert queries == [(("servers", {"tracks_image": f"{HOST}/team/weather:1.0"}), {})]
    plan = store.explain("servers", {"tracks_image": f"{HOST}/team/weather:1.0"})
    assert plan and all(step.startswith("SEARCH documents USING INDEX") for step in plan), plan
