"""Snapshots through the real `ApiManagementClient` over `FakeApim`: versioned, and never
holding a secret value (FR-027, NFR-SEC-002)."""

from __future__ import annotations

from pathlib import Path

from activities import apim
from shared import apim as snapshots
from shared.blobs import open_artifacts
from shared.settings import get_settings
from shared.store import get_store
from tests.fakes.apim import INLINE_SECRET, KV, LITERAL_KEY, SERVICE_ID


def every_byte_under(root: Path) -> bytes:
    return b"".join(path.read_bytes() for path in sorted(root.rglob("*")) if path.is_file())


def test_a_snapshot_never_contains_a_secret_value(fake_apim):
    fake_apim.leak_secrets = True  # worst case: the API answers secret named values with their value
    taken = apim.take_snapshot(SERVICE_ID)

    stored = every_byte_under(get_settings().data_dir)  # the artifact files and the store's SQLite file
    assert INLINE_SECRET.encode() not in stored and LITERAL_KEY.encode() not in stored
    snapshot = snapshots.load(get_store(), open_artifacts(get_settings()), "apim-mcpaas", taken["id"])
    vault_ref = snapshot.item("namedValues/backend-key").entries["namedValues/backend-key"]["properties"]
    assert vault_ref == {"secret": True, "displayName": "backend-key",
                         "keyVault": {"secretIdentifier": f"{KV}/backend-key", "identityClientId": "cid"}}
    with_ref = snapshot.item("backends/mcp-gateway").entries["backends/mcp-gateway"]["properties"]
    assert with_ref["credentials"]["header"] == {"x-backend-key": ["{{backend-key}}"]}
    assert sorted(w.split(":")[0] for w in taken["warnings"]) == ["backends/legacy credentials.header",
                                                                  "namedValues/legacy-token"]


def test_snapshots_are_versioned_and_unchanged_configuration_is_not_stored_twice(fake_apim):
    first = apim.take_snapshot(SERVICE_ID)
    assert apim.take_snapshot(SERVICE_ID) == {**first, "created": False}
    fake_apim.put_entity("apis/api-99", {"displayName": "new", "path": "new", "protocols": ["https"]})
    second = apim.take_snapshot(SERVICE_ID)
    assert second["created"] and second["items"] == first["items"] + 1
    assert [doc["id"] for doc in snapshots.list_index(get_store(), "apim-mcpaas")] == [second["id"], first["id"]]
    older = snapshots.load(get_store(), open_artifacts(get_settings()), "apim-mcpaas", first["id"])
    assert "apis/api-99" not in [item.key for item in older.items]


def test_the_scheduled_export_does_not_record_a_tier_change_it_has_not_restored(fake_apim):
    apim.take_snapshot(SERVICE_ID)
    fake_apim.change_tier("Premium", updating_polls=0)
    assert apim.take_snapshot(SERVICE_ID, scheduled=True) is None
    assert len(snapshots.list_index(get_store(), "apim-mcpaas")) == 1
