"""`provision` end to end in devhost (in process, so the fake ARM transport is reachable):
`POST /api/controlplane` → the orchestration → ARM steps → the gateway in the cluster,
waiting out a role assignment that has not reached the cluster yet."""

from __future__ import annotations

import time

import httpx
import pytest

import function_app
from shared.auth.principal import Role
from shared.auth.tokens import LocalIssuer
from devhost.host import create_app
from shared.settings import get_settings
from tests.integration.arm.conftest import RBAC_WAIT_SECONDS, SPEC
from tests.integration.devhost.conftest import free_port, serve

ASSIGNMENTS = "/providers/microsoft.authorization/roleassignments/"
# the path fragment each step's failing request contains, in step order
FAILURES = (("resource group", ("PUT", "/resourcegroups/rg-mcpaas-dev")), ("vm size", ("GET", "/skus")),
            ("container registry", ("PUT", "/registries/")), ("aks cluster", ("PUT", "/managedclusters/")),
            ("attach registry", ("PUT", f"/registries/acrmcpaasdev{ASSIGNMENTS}")),
            ("cluster access", ("PUT", f"/managedclusters/aks-mcpaas{ASSIGNMENTS}")),
            ("gateway", ("POST", "/listclusterusercredential")))


@pytest.fixture
def control_plane(fake_azure, monkeypatch):
    """The real function_app served by devhost on a free port (settings from the env)."""
    port = free_port()
    monkeypatch.setenv("MCPAAS_API_PORT", str(port))  # the durable client binding points here
    get_settings.cache_clear()
    server, thread = serve(create_app(function_app.app, get_settings()), port)
    token = LocalIssuer(get_settings().auth_key_path).mint("ops-admin", [Role.ADMIN])  # provisioning is Admin-only
    with httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=30,
                      headers={"Authorization": f"Bearer {token}"}) as client:
        yield client
    server.should_exit = True
    thread.join(10)


def provision(client: httpx.Client, spec: dict) -> dict:
    response = client.post("/api/controlplane", json=spec)
    assert response.status_code == 202, response.text
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        operation = client.get(response.headers["Location"]).json()
        if operation["runtimeStatus"] in {"Completed", "Failed"}:
            return operation
        time.sleep(0.05)
    raise TimeoutError(operation)


def test_provision_resumes_after_a_failure_at_each_step_creating_everything_once(fake_azure, control_plane):
    fake_arm = fake_azure.arm
    for step, marker in FAILURES:
        fake_arm.broken = {marker}
        operation = provision(control_plane, SPEC)
        output = operation["output"]
        assert (output["status"], output["failed_step"]) == ("Failed", step), output
        assert "injected failure" in output["reason"]
        assert operation["customStatus"]["failed"] == output["reason"]
        assert operation["customStatus"]["done"] == [s for s, _ in FAILURES[:FAILURES.index((step, marker))]]

    fake_arm.broken = set()
    operation = provision(control_plane, SPEC)
    assert operation["output"]["status"] == "Succeeded", operation
    assert operation["customStatus"]["done"] == [step for step, _ in FAILURES]
    assert operation["output"]["results"]["vm size"] == {"vm_size": "Standard_D4as_v5"}
    # every resource was written exactly once over eight runs
    assert sorted(fake_arm.writes.values()) == [1, 1, 1, 1, 1]
    assert [kind for kind, _, _ in fake_azure.kube.applies] == ["Namespace", "ServiceAccount", "ConfigMap",
                                                              "Deployment", "Service", "HorizontalPodAutoscaler",
                                                              "PodDisruptionBudget", "NetworkPolicy"]


def test_invalid_control_plane_spec_is_a_400_listing_fields(control_plane):
    response = control_plane.post("/api/controlplane", json={**SPEC, "subscription_id": "nope", "min_nodes": 0})
    assert response.status_code == 400
    assert {e["field"] for e in response.json()["errors"]} == {"subscription_id", "min_nodes"}


def test_cli_provision_reports_the_failed_step_then_resumes(fake_azure, control_plane, tmp_path):
    import yaml
    from typer.testing import CliRunner

    from cli.main import app

    path = tmp_path / "controlplane.yaml"
    path.write_text(yaml.safe_dump(SPEC))
    token = control_plane.headers["Authorization"].removeprefix("Bearer ")
    args = ["--api-url", str(control_plane.base_url).rstrip("/"), "--token", token, "provision", "-f", str(path)]
    fake_arm = fake_azure.arm
    fake_arm.broken = {("PUT", "/managedclusters/")}
    failed = CliRunner().invoke(app, args, env={"COLUMNS": "300"})
    assert failed.exit_code == 1
    assert "failed at step 'aks cluster'" in failed.output and "injected failure" in failed.output
    fake_arm.broken = set()
    resumed = CliRunner().invoke(app, args, env={"COLUMNS": "300"})
    assert resumed.exit_code == 0, resumed.output
    assert "[7/7] done" in resumed.output and "control plane provisioned" in resumed.output
    assert sorted(fake_arm.writes.values()) == [1, 1, 1, 1, 1]


def gateway_installs(fake_azure) -> int:
    """How often `install_gateway` ran: each one reads the cluster's endpoint from ARM."""
    return sum(path.endswith("/listclusterusercredential") for _, path in fake_azure.arm.requests)


def test_a_role_assignment_still_propagating_is_waited_out(fake_azure, control_plane):
    fake_azure.kube.forbidden_requests = 2  # Azure RBAC has not reached the API server yet
    operation = provision(control_plane, SPEC)
    assert operation["output"]["status"] == "Succeeded", operation
    assert gateway_installs(fake_azure) == 3  # refused, refused, applied
    assert operation["output"]["results"]["gateway"] == {"applied": [
        "Namespace", "ServiceAccount", "ConfigMap", "Deployment", "Service", "HorizontalPodAutoscaler",
        "PodDisruptionBudget", "NetworkPolicy"]}
    assert "aks-token" not in str(operation)  # no credential in the history or the output


def test_a_role_that_never_arrives_fails_the_gateway_step_after_the_bound(fake_azure, control_plane):
    fake_azure.kube.forbidden.add("namespaces")
    started = time.monotonic()
    output = provision(control_plane, SPEC)["output"]
    assert (output["status"], output["failed_step"]) == ("Failed", "gateway"), output
    assert output["reason"].startswith(f"the cluster still answers 403 after {RBAC_WAIT_SECONDS:g}s: the control "
                                       "plane's role assignment has not reached it"), output
    assert "(run provision again to keep waiting): patch Namespace mcpaas-system: HTTP 403" in output["reason"]
    assert time.monotonic() - started >= RBAC_WAIT_SECONDS and gateway_installs(fake_azure) >= 3
    assert fake_azure.kube.applies == []
