"""Container secrets in the rendered manifests: a Kubernetes Secret without values,
`valueFrom.secretKeyRef` in the container, and a config hash that follows the references."""

from __future__ import annotations

import base64
import json
import subprocess

from shared import manifests
from shared.manifests import CONFIG_HASH_ANNOTATION, RenderOptions
from shared.models import ServerSpec
from tests.tooling import tool
from tests.unit.test_manifests_scan import AKS_KUBERNETES_VERSION, SKIPS

REF_1 = "mcpaas-secret://mcpaas-weather-API-KEY-0123456789ab/" + "1" * 32
REF_2 = "mcpaas-secret://mcpaas-weather-API-KEY-0123456789ab/" + "2" * 32


def spec(ref: str = REF_1, **extra) -> ServerSpec:
    return ServerSpec.model_validate({"name": "weather", "kind": "container", "container": {
        "image": "ghcr.io/acme/weather:1.0", "env": {"REGION": "eu"}, "secrets": {"API_KEY": {"ref": ref}},
        **extra}})


def by_kind(objects: list[dict]) -> dict[str, dict]:
    return {obj["kind"]: obj for obj in objects}


def test_the_secret_comes_before_the_deployment_and_holds_no_data():
    objects = manifests.render(spec())
    kinds = [obj["kind"] for obj in objects]
    assert kinds.index("Secret") < kinds.index("Deployment")
    secret = by_kind(objects)["Secret"]
    assert secret["metadata"]["name"] == "weather" and secret["type"] == "Opaque"
    assert "data" not in secret and "stringData" not in secret


def test_the_container_reads_secrets_through_secret_key_ref_and_env_inline():
    container = by_kind(manifests.render(spec()))["Deployment"]["spec"]["template"]["spec"]["containers"][0]
    assert container["env"] == [
        {"name": "REGION", "value": "eu"},
        {"name": "API_KEY", "valueFrom": {"secretKeyRef": {"name": "weather", "key": "API_KEY"}}}]


def test_a_new_reference_changes_the_config_hash_and_the_manifest_hash():
    def annotation(s: ServerSpec) -> str:
        return by_kind(manifests.render(s))["Deployment"]["spec"]["template"]["metadata"]["annotations"][
            CONFIG_HASH_ANNOTATION]

    assert annotation(spec(REF_1)) == annotation(spec(REF_1))
    assert annotation(spec(REF_1)) != annotation(spec(REF_2))
    assert manifests.manifest_hash(spec(REF_1)) != manifests.manifest_hash(spec(REF_2))


def test_a_spec_without_secrets_renders_as_before():
    plain = ServerSpec.model_validate({"name": "weather", "kind": "container",
                                       "container": {"image": "ghcr.io/acme/weather:1.0", "env": {"REGION": "eu"}}})
    assert "Secret" not in by_kind(manifests.render(plain))
    # the hash input of a secret-free container is unchanged, so upgrading rolls no pods
    assert manifests.config_hash(plain.container) == manifests.sha256_of({"env": {"REGION": "eu"}, "path": "/mcp"})


def test_fill_secret_encodes_values_and_leaves_the_rendered_object_alone():
    secret = by_kind(manifests.render(spec()))["Secret"]
    filled = manifests.fill_secret(secret, {"API_KEY": "k3y ✓"})
    assert base64.b64decode(filled["data"]["API_KEY"]).decode() == "k3y ✓"
    assert "data" not in secret


def test_dry_run_preview_never_prints_a_value():
    for kind, section in (("container", {"image": "ghcr.io/acme/weather:1.0"}), ("package", {"command": "uvx"})):
        unsealed = ServerSpec.model_validate({"name": "weather", "kind": kind, kind: {
            **section, "secrets": {"API_KEY": {"value": "hunter2-preview"}}}})
        preview = manifests.preview_yaml(unsealed)
        assert "API_KEY" in preview and "hunter2-preview" not in preview


def test_manifests_with_a_filled_secret_validate_and_pass_checkov(tmp_path):
    objects = manifests.render(spec(), RenderOptions(workload_client_id="00000000-0000-0000-0000-000000000001"))
    objects = [manifests.fill_secret(o, {"API_KEY": "x"}) if o["kind"] == "Secret" else o for o in objects]
    path = tmp_path / "weather.yaml"
    path.write_text(manifests.to_yaml(objects))
    validated = subprocess.run([tool("kubernetes-validate"), "--strict", "-k", AKS_KUBERNETES_VERSION, str(path)],
                               capture_output=True, text=True, timeout=120)
    assert validated.returncode == 0 and validated.stdout.count("passed") == len(objects), validated.stdout
    scanned = subprocess.run([tool("checkov"), "-f", str(path), "--framework", "kubernetes", "--quiet",
                              "--skip-download", "-o", "json", "--skip-check", ",".join(s["id"] for s in SKIPS)],
                             capture_output=True, text=True, timeout=300)
    report = json.loads(scanned.stdout)
    failed = [(c["check_id"], c["resource"]) for c in report["results"]["failed_checks"]]
    assert report["summary"]["failed"] == 0, failed
