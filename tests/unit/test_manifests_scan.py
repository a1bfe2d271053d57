"""Rendered manifests pass `kubernetes-validate` for the AKS version we target and `checkov`."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import yaml

from shared import manifests
from shared.manifests import RenderOptions
from shared.models import ServerSpec
from tests.tooling import REPO, tool

# the AKS minor we target: https://learn.microsoft.com/azure/aks/supported-kubernetes-versions
AKS_KUBERNETES_VERSION = "1.33.0"
SKIPS = yaml.safe_load((REPO / "shared" / "manifests.checkov-skips.yaml").read_text())
SPECS = [
    {"name": "weather", "kind": "container", "container": {"image": "ghcr.io/acme/weather:1.0"}},
    {"name": "search", "kind": "container",
     "container": {"image": "contoso.azurecr.io/search@sha256:" + "a" * 64, "port": 9000, "path": "/",
                   "env": {"LOG_LEVEL": "debug"}, "resources": {"cpu": "1", "memory": "1Gi"},
                   "autoscaling": {"min_replicas": 2, "max_replicas": 10}}},
    {"name": "stopped", "kind": "container", "container": {"image": "ghcr.io/acme/x:2", "replicas": 0}},
    # package servers in their own pods (issue 11 item 4, shared.package_pods)
    {"name": "fetch", "kind": "package", "owner_team": "blue",
     "package": {"command": "uvx", "args": ["mcp-server-fetch"], "install": ["uvx", "--help"],
                 "secrets": {"API_KEY": {"ref": "https://kv.vault.azure.net/secrets/fetch-API-KEY/1"}},
                 "limits": {"memory_mb": 512}, "network": "none"}},
    {"name": "clock", "kind": "package", "package": {"command": "uvx", "args": ["mcp-server-time"]}},
]


def write_rendered(directory: Path) -> list[Path]:
    options = RenderOptions(workload_client_id="00000000-0000-0000-0000-000000000001",
                            gateway_image="contoso.azurecr.io/mcpaas-gateway@sha256:" + "b" * 64)
    paths = []
    for data in SPECS:
        path = directory / f"{data['name']}.yaml"
        path.write_text(manifests.to_yaml(manifests.render(ServerSpec.model_validate(data), options)))
        paths.append(path)
    return paths


def test_every_rendered_object_validates_strictly_for_the_aks_version(tmp_path):
    paths = write_rendered(tmp_path)
    result = subprocess.run([tool("kubernetes-validate"), "--strict", "-k", AKS_KUBERNETES_VERSION,
                             *map(str, paths)], capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stdout + result.stderr
    # 6 + 6 + 5 (no HPA when stopped) + 6 + 5 (package pods: no Secret without secrets)
    assert result.stdout.count("passed") == 28


def test_checkov_finds_nothing_beyond_the_listed_skips(tmp_path):
    assert all(skip["reason"].strip() for skip in SKIPS)
    write_rendered(tmp_path)
    result = subprocess.run([tool("checkov"), "-d", str(tmp_path), "--framework", "kubernetes", "--quiet",
                             "--skip-download", "-o", "json",
                             "--skip-check", ",".join(skip["id"] for skip in SKIPS)],
                            capture_output=True, text=True, timeout=300)
    report = json.loads(result.stdout)
    summary = report["summary"]
    failed = [(c["check_id"], c["resource"]) for c in report["results"]["failed_checks"]]
    assert summary["failed"] == 0 and summary["parsing_errors"] == 0, failed
    assert summary["passed"] > 50 and summary["resource_count"] >= 28  # checkov also counts containers
