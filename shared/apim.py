"""API Management configuration snapshots: the model, the secret rules and the comparison
behind the tier-change restore (FR-027, NFR-REL-005, NFR-OPS-010; docs/apim-restore.md).

A snapshot is the gateway and security configuration of one API Management service as
ARM JSON (the REST shape of `azure-mgmt-apimanagement`'s write models), grouped into
*items* that the restore applies one per activity, phase by phase (what an item refers
to is restored in an earlier phase: named values before the policies that use them,
APIs before the products that link them). Each item holds *entries*: the ARM sub-path
under the service (``apis/echo/operations/get``) and its body.

Secret values never enter a snapshot (`sanitize_*`): a secret named value is kept only as
its Key Vault reference; backend and logger credentials only as ``{{named-value}}``
references; custom-domain certificates only as Key Vault ids. Whatever is dropped is
named in `Snapshot.warnings`. Snapshots are immutable and versioned: the JSON in the
artifact store (`shared.blobs`) under ``apim/{service}/{id}.json`` and an index document in
the ``apim_snapshots`` container (partition key ``service``).
"""

from __future__ import annotations

import hashlib
import json
import re
from datetime import datetime
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from shared.blobs import ArtifactStore
from shared.errors import NotFoundError
from shared.models import utc_now
from shared.store import DocumentStore

CONTAINER = "apim_snapshots"
SERVICE_ID = re.compile(r"(?i)^/subscriptions/(?P<subscription>[^/]+)/resourceGroups/(?P<group>[^/]+)/"
                        r"providers/Microsoft\.ApiManagement/service/(?P<name>[^/]+)$")
# apply order: an item may refer only to items of earlier phases
PHASES = {"service": 0, "namedValues": 1, "loggers": 2, "backends": 2, "policies": 3, "apis": 3, "products": 4}
_REFERENCE = re.compile(r"^\{\{[^{}]+\}\}$")  # a whole value that is a named-value reference
# service properties that are gateway, network or security configuration (restored)
SERVICE_PROPERTIES = ("hostnameConfigurations", "virtualNetworkType", "virtualNetworkConfiguration",
                      "publicIpAddressId", "publicNetworkAccess", "customProperties")
_CERTIFICATE_SECRETS = ("encodedCertificate", "certificatePassword", "certificate")


class ServiceRef(BaseModel):
    """One API Management service, parsed from its ARM id. ValueError for another id."""

    subscription: str
    group: str
    name: str

    @classmethod
    def parse(cls, service_id: str) -> ServiceRef:
        """Split ``/subscriptions/{s}/resourceGroups/{g}/providers/Microsoft.ApiManagement/service/{n}``."""
        match = SERVICE_ID.fullmatch(service_id or "")
        if match is None:
            raise ValueError(f"not an API Management service id: {service_id!r}")
        return cls(**match.groupdict())

    @property
    def id(self) -> str:
        """The ARM id, lower-cased (ARM ids compare case-insensitively)."""
        return (f"/subscriptions/{self.subscription}/resourcegroups/{self.group}/providers/"
                f"microsoft.apimanagement/service/{self.name}").lower()


class RestoreRequest(BaseModel):
    """Body of `POST /api/apim/restore`: the snapshot id to restore (default: the newest)."""

    model_config = ConfigDict(extra="forbid")

    snapshot: str | None = Field(default=None, min_length=1, max_length=200, pattern=r"^[A-Za-z0-9._-]+$")


class Item(BaseModel):
    """One restore step: `key` (the top entry's path), its `phase`, and `entries` (path -> body)."""

    key: str
    phase: int
    entries: dict[str, dict[str, Any]]


class Snapshot(BaseModel):
    """The exported configuration of `service` (its name) at `taken_at`, with its `sku`
    (``{"name", "capacity"}``), the items to restore and what was left out and why."""

    service: str
    service_id: str
    sku: dict[str, Any]
    taken_at: datetime = Field(default_factory=utc_now)
    items: list[Item]
    warnings: list[str] = []

    def item(self, key: str) -> Item:
        """The item at `key`; NotFoundError if the snapshot has none."""
        for item in self.items:
            if item.key == key:
                return item
        raise NotFoundError(f"snapshot of {self.service} has no item '{key}'")

    def phases(self) -> list[list[str]]:
        """Item keys grouped by phase, in apply order."""
        order = sorted({item.phase for item in self.items})
        return [[item.key for item in self.items if item.phase == phase] for phase in order]

    def digest(self) -> str:
        """SHA-256 of the configuration (SKU and items, not the time): equal digests, equal content."""
        content = json.dumps([self.sku, [item.model_dump() for item in self.items]], sort_keys=True)
        return hashlib.sha256(content.encode()).hexdigest()


def item(key: str, entries: dict[str, dict[str, Any]]) -> Item:
    """An item whose phase follows from its key's collection (``apis/x`` -> APIs)."""
    return Item(key=key, phase=PHASES[key.split("/", 1)[0]], entries=entries)


def covers(expected: Any, actual: Any) -> bool:
    """Whether `actual` (read back from the service) holds everything `expected` (from a
    snapshot) says: dict keys recursively (extra keys in `actual` are defaults the service
    added), lists element by element, anything else by equality."""
    if isinstance(expected, dict):
        return isinstance(actual, dict) and all(covers(value, actual.get(key)) for key, value in expected.items())
    if isinstance(expected, list):
        return (isinstance(actual, list) and len(expected) == len(actual)
                and all(covers(e, a) for e, a in zip(expected, actual, strict=True)))
    return expected == actual


def _references_only(values: dict[str, Any], where: str, warnings: list[str]) -> dict[str, Any]:
    """`values` (name -> str or list of str) without literal values: only named-value refs stay."""
    kept = {}
    for name, value in values.items():
        listed = value if isinstance(value, list) else [value]
        if all(isinstance(v, str) and _REFERENCE.fullmatch(v) for v in listed):
            kept[name] = value
        else:
            warnings.append(f"{where}: '{name}' is a literal value, not exported; make it a named value "
                            "backed by Key Vault and refer to it as {{name}}")
    return kept


def sanitize_named_value(name: str, body: dict[str, Any], warnings: list[str]) -> dict[str, Any] | None:
    """A named value fit for a snapshot: secret ones as their Key Vault reference only;
    None (with a warning) for a secret held inline in APIM, whose value is never exported."""
    props = dict(body.get("properties") or {})
    if not props.get("secret"):
        return {"properties": props}
    props.pop("value", None)
    vault = props.get("keyVault") or {}
    if not vault.get("secretIdentifier"):
        warnings.append(f"namedValues/{name}: secret held in API Management, not exported; store it in "
                        "Key Vault and make the named value a Key Vault reference")
        return None
    props["keyVault"] = {k: v for k, v in vault.items() if k in ("secretIdentifier", "identityClientId")}
    return {"properties": props}


def sanitize_backend(name: str, body: dict[str, Any], warnings: list[str]) -> dict[str, Any]:
    """A backend without literal credentials (header, query, authorization parameter) or
    proxy password; named-value references stay."""
    props = dict(body.get("properties") or {})
    where = f"backends/{name}"
    credentials = dict(props.get("credentials") or {})
    for part in ("header", "query"):
        if credentials.get(part):
            credentials[part] = _references_only(credentials[part], f"{where} credentials.{part}", warnings)
    authorization = credentials.get("authorization")
    if authorization and authorization.get("parameter"):
        kept = _references_only({"parameter": authorization["parameter"]}, f"{where} authorization", warnings)
        credentials["authorization"] = {**authorization, **kept} if kept else \
            {k: v for k, v in authorization.items() if k != "parameter"}
    if credentials:
        props["credentials"] = credentials
    if props.get("proxy") and props["proxy"].pop("password", None) is not None:
        warnings.append(f"{where}: proxy password not exported")
    return {"properties": props}


def sanitize_logger(name: str, body: dict[str, Any], warnings: list[str]) -> dict[str, Any]:
    """A logger whose credentials are named-value references only (APIM stores them so)."""
    props = dict(body.get("properties") or {})
    if props.get("credentials"):
        props["credentials"] = _references_only(props["credentials"], f"loggers/{name} credentials", warnings)
    return {"properties": props}


def sanitize_service(props: dict[str, Any], warnings: list[str]) -> dict[str, Any]:
    """The service's network and security settings (`SERVICE_PROPERTIES`); custom domains
    keep only Key Vault certificate ids, never certificate bytes or passwords."""
    kept = {key: props[key] for key in SERVICE_PROPERTIES if props.get(key) is not None}
    hostnames = []
    for hostname in kept.get("hostnameConfigurations") or []:
        uploaded = any(hostname.get(key) for key in ("encodedCertificate", "certificatePassword"))
        clean = {k: v for k, v in hostname.items() if k not in _CERTIFICATE_SECRETS and k != "certificateStatus"}
        if uploaded or (clean.get("certificateSource") == "Custom" and not clean.get("keyVaultId")):
            warnings.append(f"hostname {hostname.get('hostName')}: certificate not in Key Vault, not exported")
            continue
        hostnames.append(clean)
    if "hostnameConfigurations" in kept:
        kept["hostnameConfigurations"] = hostnames
    network = kept.get("virtualNetworkConfiguration")
    if network:  # vnetid and subnetname are read-only, derived from the subnet id
        kept["virtualNetworkConfiguration"] = {"subnetResourceId": network.get("subnetResourceId")}
    return {"properties": kept}


def artifact_name(service: str, snapshot_id: str) -> str:
    """Where a snapshot's JSON lives in the artifact store."""
    return f"apim/{service}/{snapshot_id}.json"


def save(store: DocumentStore, artifacts: ArtifactStore, snapshot: Snapshot) -> dict[str, Any]:
    """Store `snapshot` as a new version unless it equals the latest one; returns the index
    document (``id``, ``service``, ``sku``, ``taken_at``, ``artifact``, ``digest``, ``items``,
    ``warnings``, ``created``). Blob first, index second: an index entry always has its blob."""
    digest = snapshot.digest()
    latest = latest_index(store, snapshot.service)
    if latest is not None and latest["digest"] == digest:
        return {**latest, "created": False}
    snapshot_id = f"{snapshot.taken_at:%Y%m%dT%H%M%S%fZ}-{digest[:8]}"  # sorts by time
    name = artifact_name(snapshot.service, snapshot_id)
    artifacts.put(name, snapshot.model_dump_json().encode(), "application/json")
    doc = {"id": snapshot_id, "service": snapshot.service, "service_id": snapshot.service_id,
           "sku": snapshot.sku, "taken_at": snapshot.taken_at.isoformat(), "artifact": name, "digest": digest,
           "items": len(snapshot.items), "warnings": snapshot.warnings}
    stored = store.upsert(CONTAINER, doc)
    return {**stored, "created": True}


def list_index(store: DocumentStore, service: str, limit: int | None = None) -> list[dict[str, Any]]:
    """Index documents of `service`'s snapshots, newest first."""
    return store.query(CONTAINER, partition_key=service, order_by="id", descending=True, limit=limit)


def latest_index(store: DocumentStore, service: str) -> dict[str, Any] | None:
    """The newest snapshot's index document of `service`, or None."""
    found = list_index(store, service, limit=1)
    return found[0] if found else None


def find_index(store: DocumentStore, service: str, snapshot_id: str | None) -> dict[str, Any]:
    """The index document of snapshot `snapshot_id` of `service` (the newest when None).
    NotFoundError if absent."""
    if snapshot_id is None:
        doc = latest_index(store, service)
        if doc is None:
            raise NotFoundError(f"no snapshot of API Management service '{service}' yet")
        return doc
    try:
        return store.read(CONTAINER, snapshot_id, service)
    except NotFoundError:
        raise NotFoundError(f"no snapshot '{snapshot_id}' of API Management service '{service}'") from None


def load(store: DocumentStore, artifacts: ArtifactStore, service: str, snapshot_id: str | None) -> Snapshot:
    """Snapshot `snapshot_id` of `service` (the newest when None). NotFoundError if absent."""
    return Snapshot.model_validate_json(artifacts.get(find_index(store, service, snapshot_id)["artifact"]))
