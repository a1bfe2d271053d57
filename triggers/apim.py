"""Entry points of the APIM tier-change restore (FR-027, NFR-REL-005, NFR-OPS-010;
docs/apim-restore.md): the Event Grid trigger on service writes, the scheduled export,
`POST /api/apim/restore` and `GET /api/apim/snapshots`. All are off while
`MCPAAS_APIM_SERVICE_ID` is unset (the REST routes answer 422 then).

`apim_changed` receives `Microsoft.Resources.ResourceWriteSuccess` from the resource
group's system topic (Event Grid or CloudEvents schema; infra/events.bicep filters on
the service's own writes) and starts `apim_restore` with reason ``tier-change``; its
first step compares the SKU with the newest snapshot and skips when the tier did not
change, or when another run restores this change already. The instance id derives
from the event id, so a redelivered event starts nothing new.
"""

from __future__ import annotations

import hashlib
import logging
import uuid
from typing import Any
from urllib.parse import urljoin

import azure.durable_functions as df
import azure.functions as func

from shared import apim as snapshots
from shared.auth.principal import Principal
from shared.auth.rbac import Permission
from shared.errors import UnprocessableError
from shared.settings import get_settings
from shared.store import get_store
from triggers.event_grid import _envelope as envelope
from triggers.http_api import parse_body
from triggers.problems import json_response, problem_handler
from triggers.security import requires

log = logging.getLogger("mcpaas.triggers.apim")
bp = df.Blueprint(http_auth_level=func.AuthLevel.ANONYMOUS)

RESOURCE_WRITE = "Microsoft.Resources.ResourceWriteSuccess"
SERVICE_WRITE = "microsoft.apimanagement/service/write"
EXPORT_SCHEDULE = "0 0 * * * *"  # NCRONTAB, UTC: hourly, at minute 0
SYSTEM_ACTOR = "apim-tier-change"


def _service_id() -> str:
    """The configured service's ARM id. UnprocessableError (422) when none is configured."""
    service_id = get_settings().apim_service_id
    if not service_id:
        raise UnprocessableError("no API Management service configured (MCPAAS_APIM_SERVICE_ID)",
                                 errors=[{"field": "MCPAAS_APIM_SERVICE_ID", "message": "unset"}])
    return service_id


def is_service_write(event_type: str, data: Any, service_id: str) -> bool:
    """Whether an event reports a successful write of the service itself (not a child)."""
    if event_type != RESOURCE_WRITE or not isinstance(data, dict):
        return False
    written = str(data.get("resourceUri", "")).rstrip("/").lower()
    return (str(data.get("operationName", "")).lower() == SERVICE_WRITE
            and written == snapshots.ServiceRef.parse(service_id).id)


def tier_change_instance(key: str) -> str:
    """The instance id of the tier-change check started for `key` (``event:{id}``, ...)."""
    return f"apim-restore-{hashlib.sha256(key.encode()).hexdigest()[:32]}"


async def start_tier_change(client: df.DurableOrchestrationClient, service_id: str, key: str) -> str | None:
    """Start `apim_restore` (reason ``tier-change``) as instance `tier_change_instance(key)`;
    its id, or None when that instance exists already (a redelivery)."""
    instance_id = tier_change_instance(key)
    status = await client.get_status(instance_id)
    if status and status.instance_id:
        return None
    await client.start_new("apim_restore", instance_id, {"service_id": service_id, "snapshot": None,
                                                         "reason": "tier-change", "actor": SYSTEM_ACTOR})
    return instance_id


@bp.event_grid_trigger(arg_name="event")
@bp.durable_client_input(client_name="client")
async def apim_changed(event: func.EventGridEvent, client: df.DurableOrchestrationClient) -> None:
    """Start the tier-change check for a write of the configured service; other events
    are logged and ignored. Raises when the start fails, so Event Grid redelivers."""
    service_id = get_settings().apim_service_id
    event_id, event_type, data = envelope(event)
    if not service_id or not is_service_write(event_type, data, service_id):
        log.info("ignoring Event Grid event %s of type %s", event_id, event_type)
        return
    instance_id = await start_tier_change(client, service_id, f"event:{event_id}")
    log.info("service write %s: tier-change check %s", event_id, instance_id or "already started")


@bp.timer_trigger(arg_name="timer", schedule=EXPORT_SCHEDULE, run_on_startup=False)
@bp.durable_client_input(client_name="client")
async def apim_export(timer: func.TimerRequest, client: df.DurableOrchestrationClient) -> None:
    """Start the scheduled export (`apim_scheduled_export`), once per schedule slot."""
    service_id = get_settings().apim_service_id
    if not service_id:
        return
    # the worker passes azure.functions.timer.TimerRequest, which has it; the ABC that
    # `func.TimerRequest` names declares only `past_due`
    slot = (timer.schedule_status or {}).get("Next") or uuid.uuid4().hex  # type: ignore[attr-defined]
    instance_id = f"apim-export-{hashlib.sha256(f'{service_id}|{slot}'.encode()).hexdigest()[:32]}"
    await client.start_new("apim_scheduled_export", instance_id, {"service_id": service_id, "actor": SYSTEM_ACTOR})


@bp.route(route="apim/restore", methods=["POST"])
@bp.durable_client_input(client_name="client")
@problem_handler
@requires(Permission.PLATFORM_MANAGE)
async def restore_apim(req: func.HttpRequest, client: df.DurableOrchestrationClient,
                       principal: Principal) -> func.HttpResponse:
    """`POST /api/apim/restore` `{"snapshot"?: id}` (Admin) → 202 + Location of the
    `apim_restore` operation re-applying that snapshot (default: the newest).

    400 for a bad body, 404 for an unknown snapshot, 422 when no service is configured."""
    request = parse_body(req, snapshots.RestoreRequest, "restore request")
    service_id = _service_id()
    service = snapshots.ServiceRef.parse(service_id).name.lower()
    index = snapshots.find_index(get_store(), service, request.snapshot)
    operation_id = uuid.uuid4().hex
    await client.start_new("apim_restore", operation_id, {"service_id": service_id, "snapshot": index["id"],
                                                          "reason": "manual", "actor": principal.subject})
    location = urljoin(req.url, f"/api/operations/{operation_id}")
    return json_response({"operation_id": operation_id, "snapshot": index["id"]}, status=202,
                         headers={"Location": location})


@bp.route(route="apim/snapshots", methods=["GET"])
@problem_handler
@requires(Permission.AUDIT_READ)
async def list_apim_snapshots(req: func.HttpRequest, principal: Principal) -> func.HttpResponse:
    """`GET /api/apim/snapshots` (Operator, Admin) → `{"service", "items": [{id, sku,
    taken_at, items, warnings, artifact, digest}]}` newest first; 422 when no service is configured."""
    service = snapshots.ServiceRef.parse(_service_id()).name.lower()
    docs = snapshots.list_index(get_store(), service, limit=100)
    keep = ("id", "sku", "taken_at", "items", "warnings", "artifact", "digest")
    return json_response({"service": service, "items": [{k: doc[k] for k in keep} for doc in docs]})

