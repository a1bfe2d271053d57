"""Activities of the APIM tier-change restore: all API Management I/O (FR-027, NFR-REL-005,
NFR-OPS-010; docs/apim-restore.md).

Every call goes through the real `azure-mgmt-apimanagement` `ApiManagementClient`: its
pipeline retries 429/5xx honouring `Retry-After`, and its pollers follow long-running
operations (`Azure-AsyncOperation` / `Location`). `Apim` maps a snapshot entry's path
under the service (``apis/echo/operations/get``) to the SDK operation that reads or
writes it. Applying is idempotent: each entry is read first and written only when the
service does not already hold what the snapshot says (`shared.apim.covers`), so an
activity re-run after a crash or a retry writes nothing twice.
Inputs are JSON objects with `service_id` (the ARM id) and the fields each activity names.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Callable
from dataclasses import dataclass
from functools import lru_cache
from typing import Any, Literal, Protocol, overload

import azure.durable_functions as df
from azure.core.exceptions import ResourceNotFoundError
from azure.mgmt.apimanagement import ApiManagementClient
from azure.mgmt.apimanagement import models as m
from opentelemetry import _logs as otel_logs

from shared import apim as snapshots
from shared import servers
from shared.apim import Item, ServiceRef, Snapshot
from shared.blobs import open_artifacts
from shared.errors import NotFoundError
from shared.settings import get_settings
from shared.store import get_store

log = logging.getLogger("mcpaas.activities.apim")
bp = df.Blueprint()

RESTORE_COMPLETED = "ApimRestoreCompleted"  # the completion event (NFR-OPS-010)
_KEYS = "idempotency_keys"


class WriteModel(Protocol):
    """An SDK model class (msrest-style): builds itself from ARM JSON."""

    @classmethod
    def deserialize(cls, data: Any) -> Any: ...


@dataclass(frozen=True)
class Route:
    """How one kind of entry is read and written: `group` picks the SDK operation group,
    `model` is the write model (None: a link without body), `lro` whether the write is a
    long-running `begin_create_or_update`, `policy` whether reads ask for raw XML."""

    pattern: re.Pattern[str]
    group: Callable[[ApiManagementClient], Any]
    model: type[WriteModel] | None
    lro: bool = False
    policy: bool = False


def _route(pattern: str, group: Callable[[ApiManagementClient], Any], model: type[WriteModel] | None,
           **flags: bool) -> Route:
    return Route(re.compile(pattern.replace("{}", "([^/]+)") + "$"), group, model, **flags)


ROUTES = (
    _route("^namedValues/{}", lambda c: c.named_value, m.NamedValueCreateContract, lro=True),
    _route("^loggers/{}", lambda c: c.logger, m.LoggerContract),
    _route("^backends/{}", lambda c: c.backend, m.BackendContract),
    _route("^policies/(policy)", lambda c: c.policy, m.PolicyContract, policy=True),
    _route("^apis/{}", lambda c: c.api, m.ApiCreateOrUpdateParameter, lro=True),
    _route("^apis/{}/operations/{}", lambda c: c.api_operation, m.OperationContract),
    _route("^apis/{}/policies/(policy)", lambda c: c.api_policy, m.PolicyContract, policy=True),
    _route("^apis/{}/operations/{}/policies/(policy)", lambda c: c.api_operation_policy, m.PolicyContract,
           policy=True),
    _route("^products/{}", lambda c: c.product, m.ProductContract),
    _route("^products/{}/apis/{}", lambda c: c.product_api, None),
    _route("^products/{}/policies/(policy)", lambda c: c.product_policy, m.PolicyContract, policy=True),
)


def _normalize(model: type[WriteModel], source: Any) -> dict[str, Any]:
    """ARM JSON of `source` (an SDK object) as the write `model` sends it: no read-only fields."""
    return model.deserialize(source.serialize(keep_readonly=True)).serialize()


@dataclass(frozen=True)
class Apim:
    """One API Management service through an `ApiManagementClient`."""

    client: ApiManagementClient
    ref: ServiceRef

    def _find(self, path: str) -> tuple[Route, tuple[str, ...]]:
        for route in ROUTES:
            match = route.pattern.match(path)
            if match:
                return route, match.groups()
        raise ValueError(f"no API Management entity at '{path}'")

    def read(self, path: str) -> dict[str, Any] | None:
        """The entry at `path` as ARM JSON in its write shape, or None when absent."""
        if path == "service":
            service = self.client.api_management_service.get(self.ref.group, self.ref.name)
            return snapshots.sanitize_service(service.serialize(keep_readonly=True)["properties"], [])
        route, ids = self._find(path)
        group, args = route.group(self.client), (self.ref.group, self.ref.name, *ids)
        try:
            if route.model is None:
                return {} if group.check_entity_exists(*args) else None
            found = group.get(*args, format="rawxml") if route.policy else group.get(*args)
        except ResourceNotFoundError:
            return None
        return _normalize(route.model, found)

    def write(self, path: str, body: dict[str, Any], exists: bool) -> None:
        """Create or replace the entry at `path` with `body` (`exists`: send `If-Match: *`)."""
        if path == "service":
            update = m.ApiManagementServiceUpdateParameters.deserialize(body)
            self.client.api_management_service.begin_update(self.ref.group, self.ref.name, update).result()
            return
        route, ids = self._find(path)
        group, args = route.group(self.client), (self.ref.group, self.ref.name, *ids)
        if route.model is None:
            group.create_or_update(*args)
            return
        options = {"if_match": "*"} if exists else {}
        if route.lro:
            group.begin_create_or_update(*args, route.model.deserialize(body), **options).result()
        else:
            group.create_or_update(*args, route.model.deserialize(body), **options)

    def sku(self) -> tuple[dict[str, Any], str]:
        """The service's SKU (`{"name", "capacity"}`) and provisioning state."""
        service = self.client.api_management_service.get(self.ref.group, self.ref.name)
        return {"name": service.sku.name, "capacity": service.sku.capacity}, service.provisioning_state or ""


def connect(service_id: str) -> Apim:
    """The production client: `DefaultAzureCredential` (the Function app's managed identity).
    Tests replace this function; it is the one seam (adapter selection)."""
    from azure.identity import DefaultAzureCredential  # late: only APIM activities need it

    ref = ServiceRef.parse(service_id)
    return Apim(ApiManagementClient(DefaultAzureCredential(), ref.subscription), ref)


def _optional(read: Callable[[], Any]) -> Any:
    try:
        return read()
    except ResourceNotFoundError:
        return None


def _policy_entries(prefix: str, get: Callable[..., Any], *ids: str) -> dict[str, dict[str, Any]]:
    found = _optional(lambda: get(*ids, "policy", format="rawxml"))
    return {f"{prefix}policies/policy": _normalize(m.PolicyContract, found)} if found else {}


def _name(entity: Any) -> str:
    """A listed entity's name. The SDK declares read-only fields as None until a response
    fills them, so a type checker would take every listed name for None."""
    name: str = entity.name
    return name


def _api_items(apim: Apim) -> list[Item]:
    c, rg, name = apim.client, apim.ref.group, apim.ref.name
    items = []
    for api in c.api.list_by_service(rg, name):
        api_name = _name(api)
        if api.is_current is False or ";rev=" in api_name:  # revisions other than the current one
            continue
        key = f"apis/{api_name}"
        entries = {key: _normalize(m.ApiCreateOrUpdateParameter, api)}
        entries.update(_policy_entries(f"{key}/", c.api_policy.get, rg, name, api_name))
        for operation in c.api_operation.list_by_api(rg, name, api_name):
            path = f"{key}/operations/{operation.name}"
            entries[path] = _normalize(m.OperationContract, operation)
            entries.update(_policy_entries(f"{path}/", c.api_operation_policy.get, rg, name, api_name,
                                           _name(operation)))
        items.append(snapshots.item(key, entries))
    return items


def _product_items(apim: Apim) -> list[Item]:
    c, rg, name = apim.client, apim.ref.group, apim.ref.name
    items = []
    for product in c.product.list_by_service(rg, name):
        product_name = _name(product)
        key = f"products/{product_name}"
        entries = {key: _normalize(m.ProductContract, product)}
        entries.update({f"{key}/apis/{api.name}": {} for api in c.product_api.list_by_product(rg, name, product_name)})
        entries.update(_policy_entries(f"{key}/", c.product_policy.get, rg, name, product_name))
        items.append(snapshots.item(key, entries))
    return items


def export(apim: Apim) -> Snapshot:
    """Read the service's configuration into a `Snapshot` (secrets as references only)."""
    c, rg, name = apim.client, apim.ref.group, apim.ref.name
    service = c.api_management_service.get(rg, name)
    warnings: list[str] = []
    items = [snapshots.item("service", {"service": snapshots.sanitize_service(
        service.serialize(keep_readonly=True)["properties"], warnings)})]
    kinds = (("namedValues", c.named_value, m.NamedValueCreateContract, snapshots.sanitize_named_value),
             ("loggers", c.logger, m.LoggerContract, snapshots.sanitize_logger),
             ("backends", c.backend, m.BackendContract, snapshots.sanitize_backend))
    for collection, group, model, sanitize in kinds:
        for entity in group.list_by_service(rg, name):
            body = sanitize(_name(entity), _normalize(model, entity), warnings)
            if body is not None:
                items.append(snapshots.item(f"{collection}/{entity.name}", {f"{collection}/{entity.name}": body}))
    policy = _policy_entries("", c.policy.get, rg, name)
    if policy:
        items.append(snapshots.item("policies/policy", policy))
    items += _api_items(apim) + _product_items(apim)
    return Snapshot(service=name.lower(), service_id=apim.ref.id, sku={"name": service.sku.name,
                    "capacity": service.sku.capacity}, items=items, warnings=warnings)


def apply_item(apim: Apim, item: Item) -> dict[str, Any]:
    """Write each entry of `item` the service does not hold yet, in order; `{"key",
    "written": [paths], "unchanged": n}`."""
    written = []
    for path, body in item.entries.items():
        actual = apim.read(path)
        if actual is not None and snapshots.covers(body, actual):
            continue
        apim.write(path, body, exists=actual is not None)
        written.append(path)
    return {"key": item.key, "written": written, "unchanged": len(item.entries) - len(written)}


def verify_item(apim: Apim, item: Item) -> dict[str, Any]:
    """Read every entry of `item` back; `{"key", "mismatched": [paths not as in the snapshot]}`."""
    mismatched = [path for path, body in item.entries.items() if not snapshots.covers(body, apim.read(path))]
    return {"key": item.key, "mismatched": mismatched}


@lru_cache(maxsize=8)
def _snapshot(service: str, snapshot_id: str) -> Snapshot:
    # snapshots are immutable, so a process reads each once however many items it applies
    return snapshots.load(get_store(), open_artifacts(get_settings()), service, snapshot_id)


def _item(job: dict[str, Any]) -> tuple[Apim, Item]:
    return connect(job["service_id"]), _snapshot(job["service"], job["snapshot"]).item(job["key"])


@overload
def take_snapshot(service_id: str, scheduled: Literal[False] = False) -> dict[str, Any]: ...
@overload
def take_snapshot(service_id: str, scheduled: bool) -> dict[str, Any] | None: ...


def take_snapshot(service_id: str, scheduled: bool = False) -> dict[str, Any] | None:
    """Export the service and store a new snapshot version unless nothing changed; the
    snapshot's index document (`shared.apim.save`).

    `scheduled`: None instead, storing nothing, while the service is not `Succeeded` or
    its SKU name differs from the newest snapshot's: a tier change not restored yet,
    whose dropped configuration must not become the newest snapshot.
    """
    apim = connect(service_id)
    if scheduled:
        sku, state = apim.sku()
        latest = snapshots.latest_index(get_store(), apim.ref.name.lower())
        if state != "Succeeded" or (latest and str(latest["sku"]["name"]).lower() != str(sku["name"]).lower()):
            log.warning("APIM %s is %s on %s: no scheduled snapshot", apim.ref.name, state, sku["name"])
            return None
    return snapshots.save(get_store(), open_artifacts(get_settings()), export(apim))


@bp.activity_trigger(input_name="job")
def apim_export_snapshot(job: dict[str, Any]) -> dict[str, Any] | None:
    """`take_snapshot` of `service_id` (`scheduled`: see there)."""
    return take_snapshot(job["service_id"], bool(job.get("scheduled")))


def _claim(service: str, snapshot_id: str, sku: dict[str, Any], instance_id: str) -> str:
    """Claim restoring `snapshot_id` onto the new `sku` for `instance_id`; the claim's owner."""
    key = f"apim-restore.{service}.{snapshot_id}.{str(sku['name']).lower()}"
    doc = servers.create_once(get_store(), _KEYS, {"id": key, "instance_id": instance_id})
    return doc["instance_id"]


@bp.activity_trigger(input_name="job")
def apim_plan_restore(job: dict[str, Any]) -> dict[str, Any]:
    """Decide whether and what to restore. Input: `service_id`, `snapshot` (id or None:
    the newest), `reason` (``tier-change`` restores only when the SKU name differs from
    the snapshot's, once per snapshot and new SKU; ``manual`` always), `instance_id`.

    Returns `{"restore": bool, "why", "snapshot", "service", "from_sku", "to_sku",
    "phases": [[item key]], "poll_seconds", "timeout_seconds"}`.
    """
    apim, settings = connect(job["service_id"]), get_settings()
    service = apim.ref.name.lower()
    sku, _ = apim.sku()
    plan = {"restore": True, "why": "", "snapshot": None, "service": service, "from_sku": {}, "to_sku": sku,
            "phases": [], "poll_seconds": settings.apim_poll_seconds,
            "timeout_seconds": settings.apim_restore_timeout_seconds}
    try:
        index = snapshots.find_index(get_store(), service, job.get("snapshot"))
    except NotFoundError:
        if job["reason"] != "tier-change":
            raise
        return {**plan, "restore": False, "why": "no snapshot of the service yet: nothing to restore"}
    snapshot = _snapshot(service, index["id"])
    plan.update(snapshot=index["id"], from_sku=snapshot.sku, phases=snapshot.phases())
    if job["reason"] == "tier-change":
        if str(sku["name"]).lower() == str(snapshot.sku["name"]).lower():
            return {**plan, "restore": False, "why": f"no tier change: still {sku['name']}"}
        owner = _claim(service, index["id"], sku, job["instance_id"])
        if owner != job["instance_id"]:
            return {**plan, "restore": False, "why": f"this tier change is restored by {owner}"}
    return plan


@bp.activity_trigger(input_name="job")
def apim_service_state(job: dict[str, Any]) -> dict[str, Any]:
    """`{"state": provisioningState, "sku": {"name", "capacity"}}` of the service."""
    sku, state = connect(job["service_id"]).sku()
    return {"state": state, "sku": sku}


@bp.activity_trigger(input_name="job")
def apim_apply_item(job: dict[str, Any]) -> dict[str, Any]:
    """Apply snapshot item `key` of snapshot `snapshot` of `service` (`apply_item`)."""
    return apply_item(*_item(job))


@bp.activity_trigger(input_name="job")
def apim_verify_item(job: dict[str, Any]) -> dict[str, Any]:
    """Read snapshot item `key` back from the service (`verify_item`)."""
    return verify_item(*_item(job))


@bp.activity_trigger(input_name="job")
def apim_finish_restore(job: dict[str, Any]) -> dict[str, Any]:
    """Audit the restore, emit the `ApimRestoreCompleted` event and, when it succeeded,
    export a new snapshot so the newest one records the new tier. Input: the plan plus
    `instance_id`, `actor`, `status` (``Succeeded`` | ``Failed``), `detail`, `written`.
    Returns the new snapshot's index document, or `{}`."""
    succeeded = job["status"] == "Succeeded"
    servers.audit(get_store(), operation_id=job["instance_id"], actor=job["actor"], action="apim.restore",
                  entity=f"apim/{job['service']}", result="succeeded" if succeeded else "failed",
                  detail=job["detail"])
    attributes = {"service": job["service"], "snapshot": job["snapshot"], "status": job["status"],
                  "from_sku": job["from_sku"]["name"], "to_sku": job["to_sku"]["name"],
                  "written": job["written"], "instance_id": job["instance_id"],
                  "microsoft.custom_event.name": RESTORE_COMPLETED}  # Azure Monitor: a customEvents row
    otel_logs.get_logger("mcpaas.apim").emit(event_name=RESTORE_COMPLETED, body=RESTORE_COMPLETED,
                                             attributes=attributes, severity_number=otel_logs.SeverityNumber.INFO)
    log.info("%s: %s", RESTORE_COMPLETED, attributes)
    return take_snapshot(job["service_id"]) if succeeded else {}
