"""Server lifecycle state transitions on the document store.

Triggers call the `accept_*` functions to claim a server for one operation (a durable
instance id) with a single conditional write; activities call `record_revision`,
`mark_deploying`, `finish_operation` and `remove_server`, each idempotent so a
replayed or retried activity never duplicates a revision or an audit event.
Every read-modify-write uses the etag it read (DESIGN.md "Storage").
"""

from __future__ import annotations

from typing import Any

from shared import manifests
from shared.errors import ConflictError, NotFoundError
from shared.images import ImageRef
from shared.models import (AuditEvent, AuditResult, ClusterEvent, ReplicaCounts, Revision, Server, ServerSpec,
                           ServerStatus, spec_diff, utc_now)
from shared.store.port import CONTAINERS, Document, DocumentStore
from shared.telemetry import current_trace_id

IN_FLIGHT = (ServerStatus.PENDING, ServerStatus.DEPLOYING)


def _doc(server: Server) -> Document:
    doc = {"id": server.name, **server.model_dump(mode="json")}
    container = server.spec.container
    # an ACR push finds the servers that track its repository and tag by this field's
    # index (triggers.event_grid.tracking_servers), not by reading every server
    doc["tracks_image"] = ImageRef.parse(container.image).key if container and container.auto_deploy else None
    return doc


def load_server(store: DocumentStore, name: str) -> tuple[Server, str]:
    """Return the server named `name` and its etag. NotFoundError if absent."""
    doc = store.read("servers", name, name)
    return Server.model_validate(doc), doc["_etag"]


def _save(store: DocumentStore, server: Server, etag: str) -> Server:
    server.updated_at = utc_now()
    store.replace("servers", _doc(server), if_match=etag)
    return server


def _ensure_idle(server: Server) -> None:
    if server.status in IN_FLIGHT and server.operation_id:
        raise ConflictError(f"server '{server.name}' has operation '{server.operation_id}' in progress",
                            operation_id=server.operation_id)


def accept_create(store: DocumentStore, spec: ServerSpec, operation_id: str) -> Server:
    """Create the server as `Pending` with revision 1 claimed by `operation_id`.

    Raises ConflictError when a server of that name exists.
    """
    server = Server(name=spec.name, spec=spec, latest_revision=1, operation_id=operation_id)
    store.create("servers", _doc(server))
    return server


def accept_update(store: DocumentStore, spec: ServerSpec, operation_id: str) -> tuple[Server, Document]:
    """Store `spec` as the next revision, `Pending`, claimed by `operation_id`.

    Returns the updated server and the document it replaced (for compensation).
    Raises NotFoundError, or ConflictError while another operation is in flight or when
    a concurrent writer wins.
    """
    before = store.read("servers", spec.name, spec.name)
    server = Server.model_validate(before)
    _ensure_idle(server)
    server.spec = spec
    server.latest_revision += 1
    server.status, server.status_reason, server.operation_id = ServerStatus.PENDING, "", operation_id
    return _save(store, server, before["_etag"]), before


def accept_delete(store: DocumentStore, name: str, operation_id: str) -> tuple[Server, Document]:
    """Mark the server `Stopped` and claimed by the delete `operation_id`.

    The gateway stops opening sessions for a Stopped server at once. Raises
    NotFoundError, or ConflictError while another operation is in flight.
    """
    before = store.read("servers", name, name)
    server = Server.model_validate(before)
    _ensure_idle(server)
    server.status, server.status_reason, server.operation_id = ServerStatus.STOPPED, "deleting", operation_id
    return _save(store, server, before["_etag"]), before


def revision_spec(store: DocumentStore, name: str, number: int) -> ServerSpec:
    """The spec of revision `number` of server `name`, e.g. to roll back to it (FR-004).

    Raises NotFoundError for an unknown server or revision.
    """
    load_server(store, name)  # an unknown server is a 404 before its revision is
    try:
        doc = store.read("revisions", f"{name}.{number}", name)
    except NotFoundError:
        raise NotFoundError(f"server '{name}' has no revision {number}") from None
    return ServerSpec.model_validate(doc["spec"])


def undo_accept(store: DocumentStore, name: str, before: Document | None) -> None:
    """Compensate an `accept_*` whose orchestration could not be started.

    `before=None` removes the created server; otherwise the previous document is put
    back. Best effort against a concurrent writer: a changed document is left alone.
    """
    current = store.read("servers", name, name)
    if before is None:
        store.delete("servers", name, name, if_match=current["_etag"])
    else:
        restored = {key: value for key, value in before.items() if key != "_etag"}
        store.replace("servers", restored, if_match=current["_etag"])


def create_once(store: DocumentStore, container: str, doc: Document) -> Document:
    """Create `doc` unless a document with its id exists already (idempotent insert)."""
    try:
        return store.create(container, doc)
    except ConflictError:
        return store.read(container, doc["id"], doc[CONTAINERS[container]])


def audit(store: DocumentStore, *, operation_id: str, actor: str, action: str, entity: str,
          result: AuditResult, detail: str = "", diff: dict[str, dict[str, Any]] | None = None,
          trace_id: str | None = None) -> None:
    """Record one audit event, once per (operation, result) (FR-005, FR-022).

    `diff` is what the write changed (`AuditEvent.diff`); `trace_id` defaults to the
    current span's (`shared.telemetry.current_trace_id`).
    """
    event = AuditEvent(id=f"{operation_id}.{result}", actor=actor, action=action, entity=entity,
                       result=result, detail=detail, operation_id=operation_id, diff=diff,
                       trace_id=current_trace_id() if trace_id is None else trace_id)
    create_once(store, "audit", event.model_dump(mode="json"))


def record_revision(store: DocumentStore, *, name: str, number: int, spec: dict[str, Any],
                    actor: str, operation_id: str) -> Revision:
    """Store revision `number` of `name` with its diff from revision `number - 1`.

    Idempotent per operation; raises ConflictError if another operation already owns
    that revision number.
    """
    previous = None
    if number > 1:
        try:
            previous = store.read("revisions", f"{name}.{number - 1}", name)["spec"]
        except NotFoundError:
            previous = None
    model = ServerSpec.model_validate(spec)
    revision = Revision(server=name, number=number, spec=model, diff=spec_diff(previous, spec),
                        manifest_hash=manifests.manifest_hash(model, manifests.options_from_settings()),
                        actor=actor, operation_id=operation_id)
    stored = create_once(store, "revisions", {"id": f"{name}.{number}", **revision.model_dump(mode="json")})
    if stored["operation_id"] != operation_id:
        raise ConflictError(f"revision {number} of '{name}' belongs to operation {stored['operation_id']}")
    return Revision.model_validate(stored)


def _claimed(store: DocumentStore, name: str, operation_id: str) -> tuple[Server, str] | None:
    """The server and etag if `operation_id` still owns it, else None (superseded or gone)."""
    try:
        server, etag = load_server(store, name)
    except NotFoundError:
        return None
    return (server, etag) if server.operation_id == operation_id else None


def mark_deploying(store: DocumentStore, name: str, operation_id: str) -> bool:
    """Set status `Deploying` if `operation_id` still owns the server; False otherwise."""
    claimed = _claimed(store, name, operation_id)
    if claimed is None:
        return False
    server, etag = claimed
    server.status = ServerStatus.DEPLOYING
    _save(store, server, etag)
    return True


def finish_operation(store: DocumentStore, *, name: str, operation_id: str, succeeded: bool,
                     revision: int, endpoint: str | None = None, reason: str = "") -> bool:
    """End a deploy: `Running` at `revision` with `endpoint`, or `Error` with `reason`.

    Releases the claim. Returns False (and changes nothing) when the operation no
    longer owns the server, which makes a replayed call a no-op.
    """
    claimed = _claimed(store, name, operation_id)
    if claimed is None:
        return False
    server, etag = claimed
    if succeeded:
        server.status, server.status_reason, server.revision = ServerStatus.RUNNING, "", revision
        server.endpoint = endpoint
        # the gateway proxies the public endpoint of a server with pods of its own (container,
        # package on a Kubernetes target) to its in-cluster Service
        server.upstream_url = (manifests.service_url(server.spec, manifests.options_from_settings().namespace)
                               if manifests.in_cluster(server.spec) else None)
    else:
        server.status, server.status_reason = ServerStatus.ERROR, reason[:2000]
    server.operation_id = None
    _save(store, server, etag)
    return True


NOT_READY = "no ready pods"  # starts every status_reason that `record_observation` sets


def record_observation(store: DocumentStore, name: str, replicas: ReplicaCounts,
                       scaling_events: list[ClusterEvent] | None = None) -> Server | None:
    """Store a container server's observed replica counts (and scaling events, newest
    first; None keeps the stored ones), and let an idle server's status follow pod
    readiness: `Running` with no ready pod becomes `Error` (reason `NOT_READY...`), and
    such an `Error` becomes `Running` again once a pod is ready. An operation in flight
    owns the status, so then only the counts change.

    Returns the saved server, or None when it is gone or a concurrent writer won (the
    next observation catches up; nothing is overwritten blindly).
    """
    try:
        server, etag = load_server(store, name)
    except NotFoundError:
        return None
    server.replicas = replicas
    if scaling_events is not None:
        server.scaling_events = scaling_events
    if server.operation_id is None and replicas.desired > 0:
        if server.status is ServerStatus.RUNNING and replicas.ready == 0:
            server.status = ServerStatus.ERROR
            server.status_reason = f"{NOT_READY}: 0 of {replicas.desired} replicas ready"
        elif (server.status is ServerStatus.ERROR and server.status_reason.startswith(NOT_READY)
              and replicas.ready > 0):
            server.status, server.status_reason = ServerStatus.RUNNING, ""
    try:
        return _save(store, server, etag)
    except (ConflictError, NotFoundError):
        return None


def remove_server(store: DocumentStore, name: str, operation_id: str) -> bool:
    """Delete the server and its revisions if `operation_id` owns it; idempotent."""
    claimed = _claimed(store, name, operation_id)
    if claimed is None:
        return False
    for revision in store.query("revisions", partition_key=name):
        try:
            store.delete("revisions", revision["id"], name)
        except NotFoundError:
            pass
    store.delete("servers", name, name, if_match=claimed[1])
    return True
