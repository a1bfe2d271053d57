"""The pure ServerSpec → Kubernetes translator (shared/manifests.py)."""

from __future__ import annotations

import pytest
import yaml

from shared import manifests
from shared.manifests import CONFIG_HASH_ANNOTATION, RenderOptions
from shared.models import ServerSpec


def spec(**container) -> ServerSpec:
    return ServerSpec(name="weather", kind="container",
                      container={"image": "ghcr.io/acme/weather:1.0", "port": 8080, **container})


def by_kind(objects: list[dict]) -> dict[str, dict]:
    return {obj["kind"]: obj for obj in objects}


def pod_template(objects: list[dict]) -> dict:
    return by_kind(objects)["Deployment"]["spec"]["template"]


def test_renders_every_object_in_apply_order_in_the_target_namespace():
    objects = manifests.render(spec(), RenderOptions(namespace="team-a"))
    assert [o["kind"] for o in objects] == ["ServiceAccount", "Deployment", "Service", "HorizontalPodAutoscaler",
                                            "PodDisruptionBudget", "NetworkPolicy"]
    assert {o["metadata"]["namespace"] for o in objects} == {"team-a"}
    assert all(o["metadata"]["labels"]["app.kubernetes.io/managed-by"] == "mcpaas" for o in objects)


def test_pods_are_restricted_probed_and_use_workload_identity():
    objects = manifests.render(spec(), RenderOptions(workload_client_id="client-1"))
    template = pod_template(objects)
    pod, container = template["spec"], template["spec"]["containers"][0]
    assert template["metadata"]["labels"]["azure.workload.identity/use"] == "true"
    assert pod["serviceAccountName"] == "weather" and pod["securityContext"]["runAsNonRoot"] is True
    assert by_kind(objects)["ServiceAccount"]["metadata"]["annotations"] == {
        "azure.workload.identity/client-id": "client-1"}
    assert container["securityContext"]["capabilities"] == {"drop": ["ALL"]}
    assert container["securityContext"]["allowPrivilegeEscalation"] is False
    assert container["livenessProbe"]["tcpSocket"] == container["readinessProbe"]["tcpSocket"] == {"port": "mcp"}
    assert container["resources"]["requests"] == {"cpu": "250m", "memory": "256Mi"}


def test_config_change_rolls_the_pods_through_the_hash_annotation():
    before = pod_template(manifests.render(spec(env={"REGION": "eu"})))["metadata"]["annotations"]
    after = pod_template(manifests.render(spec(env={"REGION": "us"})))["metadata"]["annotations"]
    same = pod_template(manifests.render(spec(env={"REGION": "eu"}, replicas=2)))["metadata"]["annotations"]
    assert before[CONFIG_HASH_ANNOTATION] != after[CONFIG_HASH_ANNOTATION]
    assert before == same  # scaling alone does not restart pods


def test_hpa_owns_the_replica_count_and_zero_replicas_stops_the_server():
    objects = by_kind(manifests.render(spec(autoscaling={"min_replicas": 2, "max_replicas": 5,
                                                         "cpu_percent": 60, "memory_percent": 75})))
    assert "replicas" not in objects["Deployment"]["spec"]
    hpa = objects["HorizontalPodAutoscaler"]["spec"]
    assert (hpa["minReplicas"], hpa["maxReplicas"]) == (2, 5)
    assert [(m["resource"]["name"], m["resource"]["target"]["averageUtilization"]) for m in hpa["metrics"]] == [
        ("cpu", 60), ("memory", 75)]
    stopped = by_kind(manifests.render(spec(replicas=0)))
    assert "HorizontalPodAutoscaler" not in stopped and stopped["Deployment"]["spec"]["replicas"] == 0


def test_autoscaling_max_below_min_is_refused():
    with pytest.raises(ValueError, match="at least min_replicas"):
        spec(autoscaling={"min_replicas": 4, "max_replicas": 2})


def test_network_policy_admits_only_the_gateway_on_the_server_port():
    policy = by_kind(manifests.render(spec(), RenderOptions(gateway_namespace="edge")))["NetworkPolicy"]["spec"]
    assert policy["policyTypes"] == ["Ingress"]
    [rule] = policy["ingress"]
    assert rule["ports"] == [{"protocol": "TCP", "port": 8080}]
    assert rule["from"] == [{"namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": "edge"}},
                             "podSelector": {"matchLabels": {"app.kubernetes.io/name": "mcpaas-gateway"}}}]


def test_manifest_hash_follows_rendered_objects_or_spec_json():
    assert manifests.manifest_hash(spec()) == manifests.manifest_hash(spec())
    assert manifests.manifest_hash(spec()) != manifests.manifest_hash(spec(), RenderOptions(namespace="other"))
    package = ServerSpec(name="time", kind="package", package={"command": "mcp-server-time"})
    assert manifests.manifest_hash(package) == manifests.sha256_of(package.model_dump(mode="json"))
    # a package server renders as its own pod only with the gateway image to run
    with pytest.raises(ValueError, match="MCPAAS_GATEWAY_IMAGE"):
        manifests.render(package)
    remote = ServerSpec(name="far", kind="remote", remote={"url": "https://mcp.example.com/mcp"})
    with pytest.raises(ValueError, match="only container and package servers render"):
        manifests.render(remote)


def test_yaml_round_trips_and_service_url_names_the_service():
    objects = manifests.render(spec())
    assert list(yaml.safe_load_all(manifests.to_yaml(objects))) == objects
    assert manifests.service_url(spec(), "mcp-servers") == "http://weather.mcp-servers.svc.cluster.local:8080/mcp"


def test_cli_dry_run_prints_the_rendered_objects_without_a_control_plane(tmp_path, monkeypatch):
    from typer.testing import CliRunner

    from cli.main import app
    from shared.settings import get_settings

    monkeypatch.setenv("MCPAAS_KUBE_NAMESPACE", "team-a")
    get_settings.cache_clear()
    path = tmp_path / "spec.yaml"
    path.write_text(yaml.safe_dump(spec().model_dump(mode="json")))
    try:  # nothing listens on port 9: any request would fail the command
        result = CliRunner().invoke(app, ["--api-url", "http://127.0.0.1:9", "deploy", "--dry-run", "-f", str(path)])
    finally:
        get_settings.cache_clear()
    assert result.exit_code == 0, result.output
    assert list(yaml.safe_load_all(result.stdout)) == manifests.render(spec(), RenderOptions(namespace="team-a"))


def test_gateway_replicas_learn_their_own_pod_address_for_session_forwarding():
    deployment = next(o for o in manifests.render_gateway("img") if o["kind"] == "Deployment")
    env = {e["name"]: e for e in deployment["spec"]["template"]["spec"]["containers"][0]["env"]}
    assert env["POD_IP"]["valueFrom"] == {"fieldRef": {"fieldPath": "status.podIP"}}
    assert env["MCPAAS_GATEWAY_REPLICA_URL"]["value"] == f"http://$(POD_IP):{manifests.GATEWAY_PORT}"
    assert list(env).index("POD_IP") < list(env).index("MCPAAS_GATEWAY_REPLICA_URL")  # $(VAR) needs it first
