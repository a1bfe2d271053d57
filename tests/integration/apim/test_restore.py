"""The APIM tier-change restore end to end in devhost, through the real
`ApiManagementClient` over `FakeApim`: Event Grid event → `apim_restore` → every item back."""

from __future__ import annotations

import time
import uuid
from datetime import datetime, timezone

from activities import apim
from shared import apim as snapshots
from shared.auth.principal import Role
from shared.blobs import open_artifacts
from shared.settings import get_settings
from shared.store import get_store
from tests.fakes.apim import SERVICE_ID
from triggers.apim import tier_change_instance

WEBHOOK = "/runtime/webhooks/eventgrid"


def service_write(event_id: str, resource: str = SERVICE_ID,
                  operation: str = "Microsoft.ApiManagement/service/write") -> dict:
    """A `ResourceWriteSuccess` event (Event Grid schema) as a resource group's system topic sends it."""
    return {"id": event_id, "eventType": "Microsoft.Resources.ResourceWriteSuccess", "subject": resource,
            "topic": "/subscriptions/00000000-0000-0000-0000-0000000000aa/resourceGroups/rg-apim",
            "eventTime": datetime.now(timezone.utc).isoformat(), "dataVersion": "2", "metadataVersion": "1",
            "data": {"operationName": operation, "resourceUri": resource, "status": "Succeeded",
                     "resourceProvider": "Microsoft.ApiManagement", "correlationId": event_id}}


def as_cloud_event(event: dict) -> dict:
    """The same event in the CloudEvents 1.0 schema."""
    return {"specversion": "1.0", "id": event["id"], "type": event["eventType"], "source": event["topic"],
            "subject": event["subject"], "time": event["eventTime"], "datacontenttype": "application/json",
            "data": event["data"]}


def current() -> snapshots.Snapshot:
    """What the service holds now, read through the SDK as an export does."""
    return apim.export(apim.connect(SERVICE_ID))


def entries(snapshot: snapshots.Snapshot) -> dict:
    return {path: body for item in snapshot.items for path, body in item.entries.items()}


def test_tier_change_event_restores_every_item_once(fake_apim, control_plane):
    taken = control_plane.snapshot()
    assert taken["sku"]["name"] == "Developer" and taken["items"] == 14
    # service, 2 named values (the inline secret is not exported), logger, 2 backends,
    # global policy, 5 APIs, 2 products
    before = snapshots.load(get_store(), open_artifacts(get_settings()), "apim-mcpaas", taken["id"])
    fake_apim.change_tier("Premium", updating_polls=3)
    assert len(entries(current())) == 1  # the tier change dropped everything but the service
    fake_apim.throttle = 2  # ARM throttles the first calls of the restore: 429 + Retry-After

    response = control_plane.runtime.post(WEBHOOK, params={"functionName": "apim_changed"},
                                          json=[service_write("ev-1")])
    assert response.status_code == 200, response.text
    done = control_plane.wait(tier_change_instance("event:ev-1"))

    output = done["output"]
    assert (done["runtimeStatus"], output["status"], output["mismatched"]) == ("Completed", "Succeeded", []), done
    assert output["from_sku"]["name"] == "Developer" and output["to_sku"]["name"] == "Premium"
    assert output["written"] == len(entries(before))
    assert entries(current()) == entries(before)  # read back: every exported item is there
    assert set(fake_apim.writes.values()) == {1}  # nothing applied twice
    assert fake_apim.throttled == 2  # answered 429, retried after Retry-After by azure-core
    # the completion is audited, and the newest snapshot now records the new tier
    audit = get_store().query("audit", partition_key="apim/apim-mcpaas")
    assert [(e["action"], e["result"], e["actor"]) for e in audit] == [
        ("apim.restore", "succeeded", "apim-tier-change")]
    newest = control_plane.api.get("/api/apim/snapshots").json()["items"][0]
    assert newest["sku"]["name"] == "Premium" and newest["id"] != taken["id"]

    # a redelivery starts nothing; a later write without a tier change is checked and skipped
    assert control_plane.runtime.post(WEBHOOK, params={"functionName": "apim_changed"},
                                      json=[service_write("ev-1")]).status_code == 200
    cloud = as_cloud_event(service_write("ev-2"))
    response = control_plane.runtime.post(WEBHOOK, params={"functionName": "apim_changed"}, json=cloud,
                                          headers={"Content-Type": "application/cloudevents+json"})
    assert response.status_code == 200, response.text
    skipped = control_plane.wait(tier_change_instance("event:ev-2"))
    assert skipped["output"]["status"] == "Skipped" and "no tier change" in skipped["output"]["reason"]
    assert set(fake_apim.writes.values()) == {1}


def test_event_grid_handshake_and_other_events(fake_apim, control_plane):
    code = uuid.uuid4().hex
    validation = [{"id": "v1", "eventType": "Microsoft.EventGrid.SubscriptionValidationEvent", "subject": "",
                   "eventTime": "2026-01-01T00:00:00Z", "dataVersion": "1", "data": {"validationCode": code}}]
    response = control_plane.runtime.post(WEBHOOK, params={"functionName": "apim_changed"}, json=validation,
                                          headers={"aeg-event-type": "SubscriptionValidation"})
    assert response.json() == {"validationResponse": code}
    options = control_plane.runtime.options(WEBHOOK, headers={"WebHook-Request-Origin": "eventgrid.azure.net"})
    assert options.headers["WebHook-Allowed-Origin"] == "eventgrid.azure.net"
    # a child resource's write, another service's write: nothing starts
    for event_id, event in (("child", service_write("child", f"{SERVICE_ID}/apis/api-00",
                                                    "Microsoft.ApiManagement/service/apis/write")),
                            ("other", service_write("other", SERVICE_ID.replace("apim-mcpaas", "apim-other")))):
        assert control_plane.runtime.post(WEBHOOK, params={"functionName": "apim_changed"},
                                          json=[event]).status_code == 200
        assert control_plane.api.get(f"/api/operations/{tier_change_instance(f'event:{event_id}')}"
                                     ).status_code == 404
    # the webhook is the host's: no key, no delivery
    assert control_plane.api.post(WEBHOOK, params={"functionName": "apim_changed"},
                                  json=[service_write("nokey")]).status_code == 401


def test_a_service_write_before_any_snapshot_is_skipped(fake_apim, control_plane):
    fake_apim.change_tier("Premium", updating_polls=0)
    control_plane.runtime.post(WEBHOOK, params={"functionName": "apim_changed"}, json=[service_write("early")])
    done = control_plane.wait(tier_change_instance("event:early"))
    assert (done["output"]["status"], done["output"]["reason"]) == (
        "Skipped", "no snapshot of the service yet: nothing to restore"), done


def test_restore_times_out_when_the_service_never_settles(fake_apim, control_plane, monkeypatch):
    control_plane.snapshot()
    monkeypatch.setenv("MCPAAS_APIM_RESTORE_TIMEOUT_SECONDS", "0.3")
    get_settings.cache_clear()
    fake_apim.change_tier("Premium", updating_polls=10_000)
    control_plane.runtime.post(WEBHOOK, params={"functionName": "apim_changed"}, json=[service_write("slow")])
    done = control_plane.wait(tier_change_instance("event:slow"))
    assert done["output"]["status"] == "Failed", done
    assert "not Succeeded after 0.3 s (still Updating)" in done["output"]["reason"]
    assert fake_apim.entities == {}  # nothing applied to a service still updating
    audit = get_store().query("audit", partition_key="apim/apim-mcpaas")
    assert [(e["result"], e["detail"]) for e in audit] == [("failed", done["output"]["reason"])]


def test_manual_restore_is_admin_only_and_checks_its_input(fake_apim, control_plane):
    taken = control_plane.snapshot()
    operator = {"Authorization": f"Bearer {control_plane.token(Role.OPERATOR)}"}
    assert control_plane.api.post("/api/apim/restore", json={}, headers=operator).status_code == 403
    assert control_plane.api.post("/api/apim/restore", json={"snapshot": "nope"}).status_code == 404
    bad = control_plane.api.post("/api/apim/restore", json={"snapshot": "../x", "extra": 1})
    assert bad.status_code == 400 and {e["field"] for e in bad.json()["errors"]} == {"snapshot", "extra"}
    fake_apim.change_tier("Basic", updating_polls=0)

    response = control_plane.api.post("/api/apim/restore", json={"snapshot": taken["id"]})
    assert response.status_code == 202, response.text
    done = control_plane.wait(response.json()["operation_id"])
    assert done["output"]["status"] == "Succeeded", done
    assert done["output"]["snapshot"] == taken["id"]
    # run it again: everything is in place, so nothing is written
    again = control_plane.wait(control_plane.api.post("/api/apim/restore", json={}).json()["operation_id"])
    assert (again["output"]["status"], again["output"]["written"]) == ("Succeeded", 0)
    assert set(fake_apim.writes.values()) == {1}


def test_the_scheduled_export_restores_a_tier_change_whose_event_was_lost(fake_apim, control_plane):
    taken = control_plane.snapshot()
    fake_apim.change_tier("Standard", updating_polls=1)
    assert control_plane.runtime.post("/admin/functions/apim_export").status_code == 202
    deadline = time.monotonic() + 30
    while len(newest := control_plane.api.get("/api/apim/snapshots").json()["items"]) < 2:
        assert time.monotonic() < deadline, "no restore started by the timer"
        time.sleep(0.05)
    assert [e["result"] for e in get_store().query("audit", partition_key="apim/apim-mcpaas")] == ["succeeded"]
    assert [item["sku"]["name"] for item in newest] == ["Standard", "Developer"]  # no snapshot of the dropped state
    assert newest[1]["id"] == taken["id"]
    before = snapshots.load(get_store(), open_artifacts(get_settings()), "apim-mcpaas", taken["id"])
    assert entries(current()) == entries(before)


def test_without_a_configured_service_the_routes_answer_422_and_events_are_ignored(
        fake_apim, control_plane, monkeypatch):
    monkeypatch.delenv("MCPAAS_APIM_SERVICE_ID")
    get_settings.cache_clear()
    for response in (control_plane.api.post("/api/apim/restore", json={}),
                     control_plane.api.get("/api/apim/snapshots")):
        assert response.status_code == 422 and response.headers["content-type"].startswith("application/problem+json")
    assert control_plane.runtime.post(WEBHOOK, params={"functionName": "apim_changed"},
                                      json=[service_write("off")]).status_code == 200
    assert control_plane.api.get(f"/api/operations/{tier_change_instance('event:off')}").status_code == 404
    assert fake_apim.requests == []  # nothing talked to the service
