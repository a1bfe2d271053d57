"""Security clearance over the real REST API (issue 10 items 3 and 5), default settings:
every inline-code launcher form and every non-public remote URL is refused with a 422
problem listing the field, and each refusal is in the audit trail (`GET /api/audit`).
Non-loopback remote URLs are only validated here: nothing connects to them."""

from __future__ import annotations

from tests.e2e.helpers import authed

INLINE_FORMS = {
    "sh-c": ["sh", "-c", "cat /etc/passwd"], "bash-c": ["bash", "-c", "id"], "bash-ec": ["bash", "-ec", "id"],
    "python-c": ["python", "-c", "import os"], "python3-c": ["python3", "-c", "import os"],
    "python-ic": ["python", "-Ic", "import os"], "python-stdin": ["python", "-"],
    "node-e": ["node", "-e", "1"], "node-eval": ["node", "--eval=1"], "node-p": ["node", "-p", "1"],
    "node-print": ["node", "--print", "1"], "node-pe": ["node", "-pe", "1"],
    "deno-eval": ["deno", "eval", "1"], "perl-e": ["perl", "-e", "1"], "ruby-e": ["ruby", "-e", "1"],
    "pwsh-command": ["pwsh", "-Command", "1"], "env-sh-c": ["env", "sh", "-c", "id"],
    "busybox-sh": ["busybox", "sh", "-c", "id"], "sh-s": ["sh", "-s"],
    "uv-run-python-c": ["uv", "run", "python", "-c", "1"], "npx-c": ["npx", "-c", "id"],
    "npm-exec-c": ["npm", "exec", "-c", "id"],
}
FETCHES = {
    "npx-p-evil": ["npx", "-p", "evil", "mcp-server-x"], "uvx-from-evil": ["uvx", "--from", "evil", "x"],
    "uvx-with-evil": ["uvx", "--with", "evil", "mcp-server-x"],
    "pip-git": ["pip", "install", "git+https://example.invalid/mcp.git"], "npm-file": ["npm", "install", "file:./pkg"],
    "npx-tarball": ["npx", "https://example.invalid/mcp-1.0.tgz"], "abs-path": ["/tmp/evil/python", "-m", "x"],
}
REMOTES = {
    "lo": "http://127.0.0.1:9/mcp", "lo-high": "http://127.1.2.3/mcp", "lo6": "http://[::1]:9/mcp",
    "ten": "http://10.1.2.3/mcp", "one72": "http://172.16.5.4/mcp", "one92": "http://192.168.1.10/mcp",
    "metadata": "http://169.254.169.254/metadata/identity/oauth2/token", "ula": "http://[fd00::1]/mcp",
    "name-lo": "http://localhost:7071/api/servers", "sub-lo": "http://something.localhost/mcp",
    "decimal": "http://2130706433/mcp", "hex": "http://0x7f.1/mcp", "mapped": "http://[::ffff:127.0.0.1]/mcp",
}


def refused_in_audit(api: str, name: str) -> bool:
    page = authed.get(f"{api}/api/audit", params={"server": name, "action": "server.clearance"}, timeout=10).json()
    return any(event["result"] == "refused" for event in page["items"])


def post_refused(api: str, spec: dict, field: str) -> dict:
    response = authed.post(f"{api}/api/servers", json=spec, timeout=30)
    assert response.status_code == 422, f"{spec}: {response.status_code} {response.text}"
    assert response.headers["content-type"].startswith("application/problem+json")
    body = response.json()
    assert field in {error["field"] for error in body["errors"]}, body
    return body


def test_inline_code_launchers_and_unlisted_fetches_are_refused_and_audited(platform):
    for prefix, forms in (("inline", INLINE_FORMS), ("fetch", FETCHES)):
        for key, argv in forms.items():
            name = f"{prefix}-{key}"
            post_refused(platform.api, {"name": name, "kind": "package",
                                        "package": {"command": argv[0], "args": argv[1:]}}, "package.command")
            assert refused_in_audit(platform.api, name), name
    # the same argv as an install step of an admitted server
    install = {"name": "install-sh", "kind": "package",
               "package": {"command": "mcp-server-time", "install": ["sh", "-c", "curl x | sh"]}}
    assert "package.install" in {e["field"] for e in post_refused(platform.api, install, "package.install")["errors"]}
    assert refused_in_audit(platform.api, "install-sh")
    assert authed.get(f"{platform.api}/api/servers", timeout=10).json()["items"] == []


def test_non_public_remote_urls_are_refused_and_audited(platform):
    for key, url in REMOTES.items():
        name = f"remote-{key}"
        post_refused(platform.api, {"name": name, "kind": "remote", "remote": {"url": url}}, "remote.url")
        assert refused_in_audit(platform.api, name), name
    assert authed.get(f"{platform.api}/api/servers", timeout=10).json()["items"] == []


def test_the_address_policy_holds_when_host_patterns_admit_every_name(request, monkeypatch):
    """With the host allowlist opened (`*`), the refusals come from the address policy."""
    monkeypatch.setenv("MCPAAS_CLEARANCE_REMOTE_HOSTS", "*")
    platform = request.getfixturevalue("platform")
    for key, url in REMOTES.items():
        body = post_refused(platform.api, {"name": f"open-{key}", "kind": "remote", "remote": {"url": url}},
                            "remote.url")
        assert "address refused" in body["detail"], body


def test_an_opted_in_range_is_admitted_but_not_the_control_plane_itself(request, monkeypatch):
    monkeypatch.setenv("MCPAAS_REMOTE_ALLOWED_NETWORKS", "127.0.0.0/8")
    platform = request.getfixturevalue("platform")
    ok = authed.post(f"{platform.api}/api/servers",
                     json={"name": "near", "kind": "remote", "remote": {"url": "http://127.0.0.1:9/mcp"}}, timeout=30)
    assert ok.status_code == 202, ok.text
    own = post_refused(platform.api, {"name": "self", "kind": "remote",
                                      "remote": {"url": f"{platform.api}/api/servers"}}, "remote.url")
    assert "control plane of this platform" in own["detail"]
    gateway = post_refused(platform.api, {"name": "gw", "kind": "remote",
                                          "remote": {"url": f"{platform.gateway}/servers/near/mcp"}}, "remote.url")
    assert "gateway of this platform" in gateway["detail"]
