"""Diagnostics of container servers through the official client against the fake API server:
events, pod logs, replica counts and scaling events, readiness-driven status, delete."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

import pytest

from activities import kubernetes
from shared import kubernetes as cluster
from shared import servers
from shared.errors import UnprocessableError
from shared.models import Server, ServerSpec
from shared.settings import get_settings
from shared.store import get_store
from tests.integration.kubernetes.test_rollout import call, container_spec, job, poll
from triggers.diagnostics import ClusterUnavailableError, container_logs, ensure_container, reconcile

NS = "mcp-servers"
GOOD = "ghcr.io/acme/weather:1.0"


def running(fake_kube, spec: dict, revision: int = 1) -> None:
    """Accept, apply and finish revision `revision` of `spec` as the deploy would."""
    store = get_store()
    model = ServerSpec.model_validate(spec)
    if revision == 1:
        servers.accept_create(store, model, f"op{revision}")
    else:
        servers.accept_update(store, model, f"op{revision}")
    servers.record_revision(store, name=model.name, number=revision, spec=spec, actor="t",
                            operation_id=f"op{revision}")
    op = job(spec, revision, "create" if revision == 1 else "update")
    call(kubernetes.apply_manifests, op)
    assert poll(op)["state"] == "complete"
    servers.finish_operation(store, name=model.name, operation_id=f"op{revision}", succeeded=True,
                             revision=revision)


def test_events_are_the_servers_own_newest_first_and_limited(fake_kube):
    running(fake_kube, container_spec(GOOD))
    other = {**container_spec(GOOD), "name": "weather-eu"}
    call(kubernetes.apply_manifests, job(other))
    poll(job(other))

    events = cluster.server_events("weather")
    objects = {event.object for event in events}
    assert objects == {"Deployment/weather", "Pod/weather-g1-0"}  # nothing of weather-eu
    times = [event.time for event in events]
    assert times == sorted(times, reverse=True)
    assert [(e.reason, e.message) for e in events if e.object == "Deployment/weather"] == [
        ("ScalingReplicaSet", "Scaled up replica set weather-g1 to 1")]
    assert [e.reason for e in events if e.object == "Pod/weather-g1-0"] == ["Started", "Scheduled"]
    assert len(cluster.server_events("weather", limit=2)) == 2


def test_a_replaced_bad_pods_events_stay_visible_after_the_restore(fake_kube):
    running(fake_kube, container_spec(GOOD))
    bad = container_spec("ghcr.io/acme/weather:2.0")
    fake_kube.kube.bad_images.add("ghcr.io/acme/weather:2.0")
    servers.accept_update(get_store(), ServerSpec.model_validate(bad), "op2")
    call(kubernetes.apply_manifests, job(bad, 2, "update"))
    assert poll(job(bad, 2, "update"))["state"] == "failed"
    assert call(kubernetes.restore_manifests, job(bad, 2, "update")) == 1
    poll(job(container_spec(GOOD)))
    assert "weather-g2-0" not in fake_kube.kube.pods(NS, "weather")

    warnings = [e for e in cluster.server_events("weather") if e.type == "Warning"]
    assert [(w.object, w.reason) for w in warnings] == [("Pod/weather-g2-0", "Failed")]
    assert "not found" in warnings[0].message


def test_pod_logs_merge_pods_by_time_with_tail_and_since(fake_kube):
    running(fake_kube, container_spec(GOOD))
    fake_kube.kube.scale(NS, "weather", 2)
    now = datetime.now(timezone.utc)
    fake_kube.kube.logs.clear()
    fake_kube.kube.log("weather-g1-0", "old line", now - timedelta(hours=2))
    fake_kube.kube.log("weather-g1-1", "first", now - timedelta(seconds=30))
    fake_kube.kube.log("weather-g1-0", "second", now - timedelta(seconds=20))
    fake_kube.kube.log("weather-g1-1", "third", now - timedelta(seconds=10))

    lines = cluster.pod_logs("weather", tail=100, since=now - timedelta(minutes=1))
    assert [line.split(" ", 1)[1] for line in lines] == [
        "[weather-g1-1] first", "[weather-g1-0] second", "[weather-g1-1] third"]
    stamp = (now - timedelta(seconds=30)).strftime("%Y-%m-%dT%H:%M:%S.%fZ")
    assert lines[0].startswith(stamp)  # the gateway's log format: UTC, microseconds
    assert [line.rsplit(" ", 1)[1] for line in cluster.pod_logs("weather", tail=2)] == ["second", "third"]
    assert len(cluster.pod_logs("weather", tail=100)) == 4
    assert cluster.pod_logs("weather", tail=0) == []


def test_logs_skip_pods_whose_container_never_started(fake_kube):
    fake_kube.kube.stalled_images.add("ghcr.io/acme/weather:slow")
    spec = container_spec("ghcr.io/acme/weather:slow")
    call(kubernetes.apply_manifests, job(spec))
    call(kubernetes.rollout_status, job(spec))
    assert cluster.pod_logs("weather") == []


def test_replica_counts_and_scaling_events_follow_the_hpa(fake_kube):
    running(fake_kube, container_spec(GOOD))
    server = servers.load_server(get_store(), "weather")[0]
    assert server.replicas is not None and server.replicas.ready == 1  # recorded by the rollout poll

    fake_kube.kube.scale(NS, "weather", 3)
    assert reconcile([server]) == 1
    server = servers.load_server(get_store(), "weather")[0]
    assert (server.replicas.desired, server.replicas.ready, server.replicas.available) == (3, 3, 3)
    assert [(e.object, e.reason) for e in server.scaling_events[:2]] == [
        ("Deployment/weather", "ScalingReplicaSet"), ("HorizontalPodAutoscaler/weather", "SuccessfulRescale")]
    assert server.scaling_events[0].message == "Scaled up replica set weather-g1 to 3"
    assert {e.reason for e in server.scaling_events} <= {"ScalingReplicaSet", "SuccessfulRescale"}


def test_status_follows_pod_readiness_between_deploys(fake_kube):
    running(fake_kube, container_spec(GOOD))
    store = get_store()
    fake_kube.kube.unready.add("weather")
    reconcile([servers.load_server(store, "weather")[0]])
    server = servers.load_server(store, "weather")[0]
    assert server.status == "Error" and server.status_reason == "no ready pods: 0 of 1 replicas ready"

    fake_kube.kube.unready.clear()
    reconcile([server])
    server = servers.load_server(store, "weather")[0]
    assert server.status == "Running" and server.status_reason == "" and server.replicas.ready == 1


def test_a_failed_deploys_error_is_not_cleared_by_ready_pods(fake_kube):
    running(fake_kube, container_spec(GOOD))
    store = get_store()
    servers.accept_update(store, ServerSpec.model_validate(container_spec("ghcr.io/acme/weather:2.0")), "op2")
    servers.finish_operation(store, name="weather", operation_id="op2", succeeded=False, revision=2,
                             reason="pod weather-g2-0: ImagePullBackOff; restored revision 1")
    reconcile([servers.load_server(store, "weather")[0]])
    server = servers.load_server(store, "weather")[0]
    assert server.status == "Error" and "ImagePullBackOff" in server.status_reason
    assert server.replicas.ready == 1


def test_delete_manifests_removes_a_container_servers_objects_only(fake_kube):
    running(fake_kube, container_spec(GOOD))
    assert call(kubernetes.delete_manifests, job(container_spec(GOOD), 0, "delete")) == 6
    assert not [key for key in fake_kube.kube.objects if key[0] not in ("namespaces", "events")]
    assert call(kubernetes.delete_manifests, job(container_spec(GOOD), 0, "delete")) == 0  # already gone

    remote = {"name": "far", "kind": "remote", "remote": {"url": "https://mcp.example.com/mcp"}}
    servers.accept_create(get_store(), ServerSpec.model_validate(remote), "op-far")
    before = len(fake_kube.kube.applies), dict(fake_kube.kube.objects)
    assert call(kubernetes.delete_manifests, job(remote, 0, "delete")) == 0
    assert (len(fake_kube.kube.applies), dict(fake_kube.kube.objects)) == before


def test_servers_without_pods_have_no_kubernetes_diagnostics(fake_kube):
    remote = ServerSpec.model_validate({"name": "far", "kind": "remote", "remote": {"url": "https://mcp.example.com/mcp"}})
    with pytest.raises(UnprocessableError, match="servers with pods only"):
        ensure_container(Server(name="far", spec=remote))
    # a package server on a Kubernetes target has pods of its own (docs/kubernetes.md)
    ensure_container(Server(name="echo", spec=ServerSpec.model_validate(
        {"name": "echo", "kind": "package", "package": {"command": "echo"}})))


async def test_cluster_failures_become_502(fake_kube, monkeypatch):
    monkeypatch.delenv("MCPAAS_KUBECONFIG")
    get_settings.cache_clear()
    with pytest.raises(ClusterUnavailableError, match="no Kubernetes target") as caught:
        await container_logs("weather", 10, None)
    assert caught.value.status == 502
