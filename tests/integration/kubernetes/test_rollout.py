"""The kubernetes activities through the official client against the fake API server."""

from __future__ import annotations

from shared import servers
from shared.models import ServerSpec
from shared.store import get_store

from activities import kubernetes


def call(activity, job):
    """Run an activity's user function as the Functions worker would."""
    return activity._function.get_user_function()(job)


def container_spec(image: str, **extra) -> dict:
    return {"name": "weather", "kind": "container", "container": {"image": image, "port": 8080, **extra}}


def job(spec: dict, revision: int = 1, action: str = "create") -> dict:
    return {"name": spec["name"], "operation_id": f"op{revision}", "actor": "test", "action": action,
            "revision": revision, "spec": spec}


def poll(op: dict, limit: int = 5) -> dict:
    for _ in range(limit):
        state = call(kubernetes.rollout_status, op)
        if state["state"] != "progressing":
            return state
    return state


def test_apply_uses_server_side_apply_and_a_good_rollout_completes(fake_kube):
    spec = container_spec("ghcr.io/acme/weather:1.0")
    applied = call(kubernetes.apply_manifests, job(spec))
    assert applied["generation"] == 1 and applied["poll_seconds"] > 0
    kinds = [kind for kind, _, manager in fake_kube.kube.applies if manager == "mcpaas"]
    assert kinds == ["Namespace", "ServiceAccount", "Deployment", "Service", "HorizontalPodAutoscaler",
                     "PodDisruptionBudget", "NetworkPolicy"]
    first = call(kubernetes.rollout_status, job(spec))
    assert first["state"] == "progressing"  # the controller has only just observed generation 1
    assert poll(job(spec)) == {"state": "complete", "reason": "", "ready": 1, "desired": 1}

    # re-applying the same revision is a no-op: same generation, nothing rolls
    assert call(kubernetes.apply_manifests, job(spec))["generation"] == 1
    assert call(kubernetes.rollout_status, job(spec))["state"] == "complete"
    # an env change changes the pod template's config hash: a new generation rolls out
    changed = container_spec("ghcr.io/acme/weather:1.0", env={"REGION": "eu"})
    assert call(kubernetes.apply_manifests, job(changed, 2, "update"))["generation"] == 2
    assert poll(job(changed, 2, "update"))["state"] == "complete"


def test_image_pull_backoff_fails_with_the_pod_event(fake_kube):
    fake_kube.kube.bad_images.add("ghcr.io/acme/weather:nope")
    spec = container_spec("ghcr.io/acme/weather:nope")
    call(kubernetes.apply_manifests, job(spec))
    state = poll(job(spec))
    assert state["state"] == "failed"
    assert "ImagePullBackOff" in state["reason"] and "not found" in state["reason"]


def test_missed_progress_deadline_fails(fake_kube):
    fake_kube.kube.stalled_images.add("ghcr.io/acme/weather:slow")
    spec = container_spec("ghcr.io/acme/weather:slow")
    call(kubernetes.apply_manifests, job(spec))
    state = poll(job(spec))
    assert state["state"] == "failed" and "progress deadline (300 s)" in state["reason"]


def test_restore_reapplies_the_last_good_revision_or_deletes_a_failed_first(fake_kube):
    store = get_store()
    good, bad = container_spec("ghcr.io/acme/weather:1.0"), container_spec("ghcr.io/acme/weather:2.0")
    fake_kube.kube.bad_images.add("ghcr.io/acme/weather:2.0")
    servers.accept_create(store, ServerSpec.model_validate(good), "op1")
    servers.record_revision(store, name="weather", number=1, spec=good, actor="t", operation_id="op1")
    # a failed first deploy leaves nothing behind
    call(kubernetes.apply_manifests, job(good))
    assert call(kubernetes.restore_manifests, job(good)) == 0
    assert fake_kube.kube.get("deployments", "mcp-servers", "weather") is None

    call(kubernetes.apply_manifests, job(good))
    assert poll(job(good))["state"] == "complete"
    servers.finish_operation(store, name="weather", operation_id="op1", succeeded=True, revision=1)
    servers.accept_update(store, ServerSpec.model_validate(bad), "op2")
    servers.record_revision(store, name="weather", number=2, spec=bad, actor="t", operation_id="op2")
    call(kubernetes.apply_manifests, job(bad, 2, "update"))
    assert poll(job(bad, 2, "update"))["state"] == "failed"

    assert call(kubernetes.restore_manifests, job(bad, 2, "update")) == 1
    deployment = fake_kube.kube.get("deployments", "mcp-servers", "weather")
    assert deployment["spec"]["template"]["spec"]["containers"][0]["image"] == "ghcr.io/acme/weather:1.0"
    assert poll(job(good))["state"] == "complete"
    pods = [key for key in fake_kube.kube.objects if key[0] == "pods"]
    assert pods and all("-g3-" in name for _, _, name in pods)  # the bad pods are gone
