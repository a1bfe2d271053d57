"""The azd hooks (infra/hooks/*.sh) pass shellcheck and do what azure.yaml relies on.

Nothing here reaches Azure, so the hooks run for real against recording stand-ins of
`az`, `kubectl` and `kubelogin` on PATH (the process boundary); what the hook pipes to
`kubectl apply` is the real output of shared.manifests.render_gateway.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from pathlib import Path

import pytest
import yaml

from tests.tooling import REPO

HOOKS = sorted((REPO / "infra" / "hooks").glob("*.sh"))
# records its name, arguments and (for `kubectl apply`) stdin; fails when FAIL_<name> is set
RECORDER = """#!/bin/sh
name="$(basename "$0")"
echo "$name $*" >> "$CALLS"
if [ "$name $1" = "kubectl apply" ]; then cat > "$APPLIED"; fi
if [ -n "$(eval echo "\\${FAIL_$name:-}")" ]; then exit 3; fi
exit 0
"""
ENV = {
    "AZURE_RESOURCE_GROUP": "rg-test", "AZURE_AKS_CLUSTER_NAME": "aks-test", "AZURE_CONTAINER_REGISTRY_NAME": "acrtest",
    "AZURE_CONTAINER_REGISTRY_ENDPOINT": "acrtest.azurecr.io",
    "AZURE_GATEWAY_CLIENT_ID": "0000aaaa-1111-2222-3333-444455556666",
    "AZURE_GATEWAY_DNS_LABEL": "mcpaas-gw-abc", "MCPAAS_GATEWAY_NAMESPACE": "gw-test",
    "AZURE_FUNCTION_APP_NAME": "func-test", "AZURE_REGISTRY_TOPIC_NAME": "evgt-acrtest",
    "AZURE_RESOURCE_GROUP_TOPIC_NAME": "evgt-rg-test",
    "AZURE_APIM_SERVICE_ID": "/subscriptions/s/resourceGroups/rg-test/providers/Microsoft.ApiManagement/service/apim",
}


def test_hooks_pass_shellcheck() -> None:
    shellcheck = shutil.which("shellcheck")
    assert shellcheck, "shellcheck missing: apt-get install -y shellcheck (`make deps` installs it)"
    assert HOOKS, "no hook scripts found"
    done = subprocess.run([shellcheck, "--shell=sh", "--severity=style", *map(str, HOOKS)],
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stdout + done.stderr


def run_hook(name: str, tmp_path: Path, drop: str | None = None,
             **extra: str) -> tuple[subprocess.CompletedProcess, list[str]]:
    """Run infra/hooks/`name` with `ENV` (minus `drop`, plus `extra`) and the recorders on
    PATH; its result and the recorded calls, one line each."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir(exist_ok=True)
    for tool in ("az", "kubectl", "kubelogin"):
        (bin_dir / tool).write_text(RECORDER)
        (bin_dir / tool).chmod(0o755)
    env = {"PATH": f"{bin_dir}:/usr/bin:/bin", "HOME": str(tmp_path), "CALLS": str(tmp_path / "calls"),
           "APPLIED": str(tmp_path / "applied.yaml"), "PYTHON": str(REPO / ".venv" / "bin" / "python"),
           **ENV, **extra}
    if drop:
        env.pop(drop)
    done = subprocess.run(["sh", str(REPO / "infra" / "hooks" / name)], cwd=REPO, env=env,
                          capture_output=True, text=True, timeout=120)
    calls = (tmp_path / "calls").read_text().splitlines() if (tmp_path / "calls").exists() else []
    return done, calls


def test_postprovision_builds_the_image_and_applies_the_rendered_gateway(tmp_path: Path) -> None:
    done, calls = run_hook("postprovision.sh", tmp_path, MCPAAS_STORE="cosmos", MCPAAS_KUBE_NAMESPACE="srv-test")
    assert done.returncode == 0, done.stderr
    build = re.match(r"az acr build --registry acrtest --image mcpaas-gateway:(\S+) --file Dockerfile \.$", calls[0])
    assert build, calls
    # the control plane renders package-server pods with the image just built
    assert calls[1] == ("az functionapp config appsettings set --resource-group rg-test --name func-test "
                        f"--settings MCPAAS_GATEWAY_IMAGE=acrtest.azurecr.io/mcpaas-gateway:{build.group(1)} "
                        "--output none")
    assert calls[2].startswith("az aks get-credentials --resource-group rg-test --name aks-test")
    assert calls[3].startswith("kubelogin convert-kubeconfig --login azurecli")
    assert calls[4].startswith("kubectl apply --server-side")
    objects = list(yaml.safe_load_all((tmp_path / "applied.yaml").read_text()))
    assert objects[0] == {**objects[0], "kind": "Namespace"} and objects[0]["metadata"]["name"] == "gw-test"
    account = next(o for o in objects if o["kind"] == "ServiceAccount")
    assert account["metadata"]["namespace"] == "gw-test"
    assert account["metadata"]["annotations"]["azure.workload.identity/client-id"] == ENV["AZURE_GATEWAY_CLIENT_ID"]
    # the servers' namespace, which the control plane's namespace-scoped role cannot create
    assert objects[-1]["kind"] == "Namespace" and objects[-1]["metadata"]["name"] == "srv-test"
    assert objects[-1]["metadata"]["labels"]["pod-security.kubernetes.io/enforce"] == "restricted"
    deployment = next(o for o in objects if o["kind"] == "Deployment")
    container = deployment["spec"]["template"]["spec"]["containers"][0]
    assert container["image"] == f"acrtest.azurecr.io/mcpaas-gateway:{build.group(1)}"
    # the gateway's settings: the MCPAAS_* outputs in azd's environment, through a ConfigMap
    config = next(o for o in objects if o["kind"] == "ConfigMap")
    assert container["envFrom"] == [{"configMapRef": {"name": config["metadata"]["name"]}}]
    assert config["data"]["MCPAAS_GATEWAY_NAMESPACE"] == "gw-test" and config["data"]["MCPAAS_STORE"] == "cosmos"
    assert config["data"]["MCPAAS_GATEWAY_PACKAGE_PODS"] == "true"
    annotate = next(c for c in calls if c.startswith("kubectl annotate"))
    assert "--namespace gw-test service --selector app.kubernetes.io/component=gateway" in annotate
    assert annotate.endswith("service.beta.kubernetes.io/azure-dns-label-name=mcpaas-gw-abc")
    services = [o for o in objects if o["kind"] == "Service"]
    assert len(services) == 1 and services[0]["metadata"]["labels"]["app.kubernetes.io/component"] == "gateway"
    assert calls[-1].startswith("kubectl rollout status --namespace gw-test deployment")


@pytest.mark.parametrize("hook", ["postprovision.sh", "postdeploy.sh"])
def test_a_hook_outside_azd_stops_before_touching_anything(hook: str, tmp_path: Path) -> None:
    done, calls = run_hook(hook, tmp_path, drop="AZURE_RESOURCE_GROUP")
    assert done.returncode != 0 and "AZURE_RESOURCE_GROUP" in done.stderr
    assert calls == []


def test_postprovision_stops_at_a_failed_image_build(tmp_path: Path) -> None:
    done, calls = run_hook("postprovision.sh", tmp_path, FAIL_az="1")
    assert done.returncode != 0
    assert len(calls) == 1 and calls[0].startswith("az acr build")


def test_postdeploy_deploys_the_event_subscriptions_with_their_parameters(tmp_path: Path) -> None:
    done, calls = run_hook("postdeploy.sh", tmp_path)
    assert done.returncode == 0, done.stderr
    assert len(calls) == 1
    args = calls[0].split()
    assert args[:4] == ["az", "deployment", "group", "create"]
    assert args[args.index("--resource-group") + 1] == "rg-test"
    template = REPO / args[args.index("--template-file") + 1]
    given = dict(a.split("=", 1) for a in args[args.index("--parameters") + 1:] if "=" in a)
    declared = re.findall(r"^param (\w+) ", template.read_text(), re.MULTILINE)
    assert sorted(given) == sorted(declared)
    assert given == {"registryTopicName": "evgt-acrtest", "functionAppName": "func-test",
                     "resourceGroupTopicName": "evgt-rg-test", "apimServiceId": ENV["AZURE_APIM_SERVICE_ID"]}


def test_ci_installs_shellcheck() -> None:
    """CI runs `make test`, whose `deps` step installs shellcheck (with bubblewrap and redis)."""
    assert re.search(r"^make test$", (REPO / ".ci" / "run").read_text(), re.MULTILINE)
    makefile = (REPO / "Makefile").read_text()
    assert re.search(r"^test: deps\b", makefile, re.MULTILINE)
    assert re.search(r"^TEST_DEPS :=[^\n]*\bshellcheck:shellcheck\b", makefile, re.MULTILINE)
    assert os.access(REPO / ".ci" / "run", os.X_OK)


def test_postprovision_gives_up_when_the_cluster_keeps_refusing_the_apply(tmp_path: Path) -> None:
    done, calls = run_hook("postprovision.sh", tmp_path, FAIL_kubectl="1", HOOK_APPLY_ATTEMPTS="1")
    assert done.returncode != 0
    assert calls[-1].startswith("kubectl apply") and not any(c.startswith("kubectl annotate") for c in calls)
