"""Container secrets through the official client against the fake API server: the Secret's
data comes from the secret store at apply time, a rotated reference rolls the pods, and
dropping or deleting the server's secrets removes the Secret (NFR-SEC-002)."""

from __future__ import annotations

import base64

import pytest

from activities import kubernetes
from shared.secrets import get_secret_store
from shared.secrets.intake import secret_name
from tests.integration.kubernetes.test_rollout import call, container_spec, job, poll

NS = "mcp-servers"


@pytest.fixture
def secrets(fake_kube):
    return get_secret_store()  # in the fixture's fresh data dir


def stored(fake_kube, plural: str, name: str = "weather") -> dict | None:
    return fake_kube.kube.get(plural, NS, name)


def test_the_secret_is_filled_from_the_store_and_a_rotation_rolls_the_pods(fake_kube, secrets):
    ref = secrets.put(secret_name("weather", "API_KEY"), "first-value")
    spec = container_spec("ghcr.io/acme/weather:1.0", secrets={"API_KEY": {"ref": ref}})
    assert call(kubernetes.apply_manifests, job(spec))["generation"] == 1
    kinds = [kind for kind, _, _ in fake_kube.kube.applies]
    assert kinds.index("Secret") < kinds.index("Deployment")
    secret = stored(fake_kube, "secrets")
    assert base64.b64decode(secret["data"]["API_KEY"]).decode() == "first-value"
    env = stored(fake_kube, "deployments")["spec"]["template"]["spec"]["containers"][0]["env"]
    assert env == [{"name": "API_KEY", "valueFrom": {"secretKeyRef": {"name": "weather", "key": "API_KEY"}}}]
    assert poll(job(spec))["state"] == "complete"

    rotated = secrets.put(secret_name("weather", "API_KEY"), "second-value")
    spec2 = container_spec("ghcr.io/acme/weather:1.0", secrets={"API_KEY": {"ref": rotated}})
    assert call(kubernetes.apply_manifests, job(spec2, 2, "update"))["generation"] == 2  # the pods roll
    assert base64.b64decode(stored(fake_kube, "secrets")["data"]["API_KEY"]).decode() == "second-value"
    assert poll(job(spec2, 2, "update"))["state"] == "complete"


def test_a_revision_without_secrets_removes_the_secret_and_delete_removes_it_too(fake_kube, secrets):
    ref = secrets.put(secret_name("weather", "API_KEY"), "v")
    call(kubernetes.apply_manifests, job(container_spec("ghcr.io/acme/weather:1.0", secrets={"API_KEY": {"ref": ref}})))
    call(kubernetes.apply_manifests, job(container_spec("ghcr.io/acme/weather:1.0"), 2, "update"))
    assert stored(fake_kube, "secrets") is None
    call(kubernetes.apply_manifests, job(container_spec("ghcr.io/acme/weather:1.0", secrets={"API_KEY": {"ref": ref}}),
                                         3, "update"))
    assert stored(fake_kube, "secrets") is not None
    kubernetes.delete_objects("weather")
    assert stored(fake_kube, "secrets") is None and stored(fake_kube, "deployments") is None


def test_a_missing_secret_fails_the_apply_naming_the_variable_not_a_value(fake_kube, secrets):
    ref = secrets.put(secret_name("weather", "API_KEY"), "gone-value")
    secrets.delete(secret_name("weather", "API_KEY"))
    spec = container_spec("ghcr.io/acme/weather:1.0", secrets={"API_KEY": {"ref": ref}})
    with pytest.raises(LookupError, match="API_KEY") as raised:
        call(kubernetes.apply_manifests, job(spec))
    assert "gone-value" not in str(raised.value)
    assert stored(fake_kube, "deployments") is None  # nothing after the Secret was applied
