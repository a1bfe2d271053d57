"""Event Grid trigger: push to deploy (PRD 8.2).

Azure Container Registry publishes `Microsoft.ContainerRegistry.ImagePushed` for every
push (https://learn.microsoft.com/azure/event-grid/event-schema-container-registry).
Each `container` server that opts in with `container.auto_deploy: true` and whose image
names the pushed registry (`data.request.host`), repository (`data.target.repository`)
and tag (`data.target.tag`; an untagged reference means `latest`) gets a new revision
whose image is pinned to the pushed digest (`registry/repo:tag@sha256:...`), so the pod
template changes and the pods roll even though the tag did not. The deploy starts
exactly like `PUT /api/servers/{name}` (`triggers.operations.start_deploy`).

Idempotency: Event Grid delivers at least once. A push whose digest the server's spec
already names is skipped, and the pair (server, event id) is claimed once in the
`idempotency_keys` container, so a repeated event never creates a second revision. If
starting the deploy fails the claim is released and the function raises, so Event Grid
retries the delivery (e.g. while another operation on the server is in flight).
"""

from __future__ import annotations

import logging
import uuid
from typing import Any

import azure.durable_functions as df
import azure.functions as func
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from shared import servers
from shared.errors import NotFoundError, UnprocessableError
from shared.images import ImageRef, tracking_key
from shared.models import Server, ServerKind, ServerSpec, utc_now
from shared.store import get_store
from triggers.operations import start_deploy

log = logging.getLogger("mcpaas.triggers.event_grid")

bp = df.Blueprint()

IMAGE_PUSHED = "Microsoft.ContainerRegistry.ImagePushed"
KEYS = "idempotency_keys"


class _Loose(BaseModel):
    model_config = ConfigDict(extra="ignore")


class PushTarget(_Loose):
    """`data.target` of an ImagePushed event: what was pushed."""

    repository: str = Field(min_length=1)
    tag: str = "latest"
    digest: str = Field(pattern=r"^sha256:[0-9a-f]{64}$")


class PushRequest(_Loose):
    """`data.request` of an ImagePushed event: `host` is the registry's login server."""

    host: str = Field(min_length=1)


class ImagePush(_Loose):
    """The `data` of an ImagePushed event (ValidationError when a field we use is missing)."""

    target: PushTarget
    request: PushRequest


def push_key(push: ImagePush) -> str:
    """The `shared.images.tracking_key` of a push: the repository and tag it built."""
    return tracking_key(push.request.host, push.target.repository, push.target.tag)


def _envelope(event: func.EventGridEvent | Any) -> tuple[str, str, Any]:
    """(id, type, data) of an Event Grid event or a CloudEvent (devhost and the worker
    hand CloudEvents-schema deliveries over as `azure.functions.CloudEvent`)."""
    event_type: str = getattr(event, "event_type", "") or getattr(event, "type", "")
    return event.id, event_type, event.get_json()


def pushed_spec(spec: ServerSpec, push: ImagePush) -> ServerSpec:
    """`spec` with its image pinned to the pushed digest, tag kept for readers."""
    assert spec.container is not None
    ref = ImageRef.parse(spec.container.image)
    # keep the spelling of the spec's registry and repository; only tag and digest change
    base = spec.container.image.partition("@")[0]
    image = f"{base if ':' in base.rpartition('/')[2] else f'{base}:{ref.tag}'}@{push.target.digest}"
    container = spec.container.model_copy(update={"image": image})
    return spec.model_copy(update={"container": container})


def tracking_servers(push: ImagePush) -> list[Server]:
    """Container servers with `auto_deploy` whose image tracks the pushed repository and tag."""
    key = push_key(push)
    # served by the servers index on `tracks_image` (shared.servers), never a scan
    found = [Server.model_validate(doc) for doc in get_store().query("servers", {"tracks_image": key})]
    return [server for server in found if server.spec.kind is ServerKind.CONTAINER and server.spec.container
            and server.spec.container.auto_deploy and ImageRef.parse(server.spec.container.image).key == key]


def _claim(key: str, server: str, push: ImagePush, event_id: str) -> bool:
    """Record that this event redeploys `server`; False if a delivery did so before."""
    nonce = uuid.uuid4().hex  # tells our write from an earlier delivery's
    stored = servers.create_once(get_store(), KEYS, {
        "id": key, "server": server, "event_id": event_id, "digest": push.target.digest,
        "claim": nonce, "received_at": utc_now().isoformat()})
    return stored["claim"] == nonce


async def redeploy(client: df.DurableOrchestrationClient, server: Server, push: ImagePush,
                   event_id: str) -> str | None:
    """Start the deploy of the pushed image on `server`; its operation id, or None when the
    event was handled before, the digest is deployed already or the server went away.

    Raises ConflictError while another operation is in flight (after releasing the claim).
    """
    assert server.spec.container is not None
    if ImageRef.parse(server.spec.container.image).digest == push.target.digest:
        return None
    key = f"acr-push.{server.name}.{event_id}"
    if not _claim(key, server.name, push, event_id):
        return None
    try:
        _, operation_id = await start_deploy(client, pushed_spec(server.spec, push),
                                             f"acr-push:{push.request.host}", "update")
    except (NotFoundError, UnprocessableError) as error:  # deleted meanwhile, or no cluster: nothing to retry
        get_store().delete(KEYS, key, key)
        log.warning("push %s not deployed to %s: %s", event_id, server.name, error)
        return None
    except Exception:
        get_store().delete(KEYS, key, key)
        raise
    return operation_id


@bp.event_grid_trigger(arg_name="event")
@bp.durable_client_input(client_name="client")
async def image_pushed(event: func.EventGridEvent, client: df.DurableOrchestrationClient) -> None:
    """Redeploy the servers tracking a pushed image (see the module docstring).

    Other event types and malformed pushes are logged and ignored (a retry cannot fix
    them). Raises the first failure to start a deploy after trying every server, so
    Event Grid redelivers and the servers already redeployed are skipped then.
    """
    event_id, event_type, data = _envelope(event)
    if event_type != IMAGE_PUSHED:
        log.info("ignoring Event Grid event %s of type %s", event_id, event_type)
        return
    try:
        push = ImagePush.model_validate(data)
    except ValidationError as error:
        log.warning("ignoring malformed ImagePushed event %s: %s", event_id, error)
        return
    failures: list[Exception] = []
    for server in tracking_servers(push):
        try:
            operation_id = await redeploy(client, server, push, event_id)
        except Exception as error:  # noqa: BLE001 - the other servers still get their deploy
            log.warning("push %s: deploy of %s not started: %s", event_id, server.name, error)
            failures.append(error)
            continue
        if operation_id:
            log.info("push %s: %s redeploys as operation %s", event_id, server.name, operation_id)
    if failures:
        raise failures[0]
