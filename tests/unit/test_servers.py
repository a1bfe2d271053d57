"""Server lifecycle transitions: claims, idempotent recording, compensation."""

import pytest

from shared import servers
from shared.errors import ConflictError, NotFoundError
from shared.models import ServerSpec
from shared.store import SQLiteDocumentStore


@pytest.fixture
def store(tmp_path):
    return SQLiteDocumentStore(tmp_path / "store.sqlite")


def spec(args=()):
    return ServerSpec(name="time", kind="package", package={"command": "mcp-server-time", "args": list(args)})


def test_create_twice_conflicts(store):
    servers.accept_create(store, spec(), "op1")
    with pytest.raises(ConflictError):
        servers.accept_create(store, spec(), "op2")
    assert servers.load_server(store, "time")[0].operation_id == "op1"


def test_update_while_deploy_in_flight_conflicts(store):
    servers.accept_create(store, spec(), "op1")
    with pytest.raises(ConflictError):
        servers.accept_update(store, spec(["--x"]), "op2")


def test_full_deploy_then_update_records_diff(store):
    servers.accept_create(store, spec(), "op1")
    servers.record_revision(store, name="time", number=1, spec=spec().model_dump(mode="json"),
                            actor="local", operation_id="op1")
    assert servers.mark_deploying(store, "time", "op1")
    assert servers.finish_operation(store, name="time", operation_id="op1", succeeded=True,
                                    revision=1, endpoint="http://gw/servers/time/mcp")
    server, _ = servers.load_server(store, "time")
    assert (server.status.value, server.revision, server.operation_id) == ("Running", 1, None)

    updated, _ = servers.accept_update(store, spec(["--local-timezone", "UTC"]), "op2")
    assert updated.latest_revision == 2 and updated.status.value == "Pending"
    rev = servers.record_revision(store, name="time", number=2,
                                  spec=spec(["--local-timezone", "UTC"]).model_dump(mode="json"),
                                  actor="local", operation_id="op2")
    assert rev.diff == {"package.args": {"from": [], "to": ["--local-timezone", "UTC"]}}


def test_recording_is_idempotent_per_operation(store):
    servers.accept_create(store, spec(), "op1")
    for _ in range(3):
        servers.record_revision(store, name="time", number=1, spec=spec().model_dump(mode="json"),
                                actor="local", operation_id="op1")
        servers.audit(store, operation_id="op1", actor="local", action="server.create",
                      entity="time", result="accepted")
    assert len(store.query("revisions", partition_key="time")) == 1
    assert len(store.query("audit", partition_key="time")) == 1
    with pytest.raises(ConflictError):
        servers.record_revision(store, name="time", number=1, spec=spec().model_dump(mode="json"),
                                actor="local", operation_id="other")


def test_superseded_operation_changes_nothing(store):
    servers.accept_create(store, spec(), "op1")
    assert not servers.finish_operation(store, name="time", operation_id="stale", succeeded=False,
                                        revision=1, reason="boom")
    assert servers.load_server(store, "time")[0].status.value == "Pending"


def test_failed_deploy_sets_error_with_reason(store):
    servers.accept_create(store, spec(), "op1")
    servers.finish_operation(store, name="time", operation_id="op1", succeeded=False, revision=1,
                             reason="initialize failed")
    server, _ = servers.load_server(store, "time")
    assert (server.status.value, server.status_reason, server.revision) == ("Error", "initialize failed", 0)


def test_undo_accept_restores_previous_state(store):
    servers.accept_create(store, spec(), "op1")
    servers.finish_operation(store, name="time", operation_id="op1", succeeded=True, revision=1)
    _, before = servers.accept_update(store, spec(["x"]), "op2")
    servers.undo_accept(store, "time", before)
    server, _ = servers.load_server(store, "time")
    assert (server.status.value, server.latest_revision, server.spec.package.args) == ("Running", 1, [])
    servers.accept_create(store, ServerSpec(name="b", kind="remote", remote={"url": "http://x"}), "op3")
    servers.undo_accept(store, "b", None)
    with pytest.raises(NotFoundError):
        servers.load_server(store, "b")


def test_delete_removes_server_and_revisions_once(store):
    servers.accept_create(store, spec(), "op1")
    servers.record_revision(store, name="time", number=1, spec=spec().model_dump(mode="json"),
                            actor="local", operation_id="op1")
    servers.finish_operation(store, name="time", operation_id="op1", succeeded=True, revision=1)
    deleting, _ = servers.accept_delete(store, "time", "op2")
    assert deleting.status.value == "Stopped"
    assert servers.remove_server(store, "time", "op2")
    assert not servers.remove_server(store, "time", "op2")
    assert store.query("revisions", partition_key="time") == []
