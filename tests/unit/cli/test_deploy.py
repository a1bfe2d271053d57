"""`mcpaas deploy`: spec sources, local validation, create vs update, and waiting."""

from __future__ import annotations

import json

import httpx

from tests.unit.cli.conftest import server_doc

ECHO_YAML = """\
name: echo
kind: package
description: Echo tools
package:
  command: python
  args: ["-m", "catalog.echo.server"]
"""

RUNNING = {"status": "Running", "revision": 1, "latest_revision": 1,
           "endpoint": "http://127.0.0.1:8080/servers/echo/mcp", "operation_id": None}


def test_deploy_from_yaml_creates_and_waits_until_running(tmp_path, plane, clock, invoke):
    spec_file = tmp_path / "echo.yaml"
    spec_file.write_text(ECHO_YAML)
    plane.script["echo"] = [{"status": "Pending"}, {"status": "Deploying"},
                            {"status": "Deploying"}, RUNNING]

    result = invoke("deploy", "-f", str(spec_file))

    assert result.exit_code == 0, result.output
    assert ("GET", "/api/servers/echo") in plane.calls()
    post = next(r for r in plane.requests if r.method == "POST")
    assert post.url.path == "/api/servers"
    assert json.loads(post.content) == {
        "name": "echo", "kind": "package", "description": "Echo tools", "owner_team": "",
        "enabled": True, "package": {"command": "python", "args": ["-m", "catalog.echo.server"],
                                     "env": {}}}
    # Each status change is shown once, in order, then the endpoint.
    lines = [line.strip() for line in result.stderr.splitlines()]
    assert lines.index("Pending") < lines.index("Deploying") < lines.index("Running")
    assert lines.count("Deploying") == 1
    assert "echo is Running at http://127.0.0.1:8080/servers/echo/mcp" in result.stdout
    assert "operation op-1" in result.stderr
    assert clock.sleeps and all(s == 0.5 for s in clock.sleeps)


def test_deploy_from_stdin_json(plane, invoke):
    plane.script["rem"] = [dict(RUNNING, endpoint="http://gw/servers/rem/mcp")]
    spec = {"name": "rem", "kind": "remote", "remote": {"url": "https://example.com/mcp"}}

    result = invoke("deploy", "-f", "-", input=json.dumps(spec))

    assert result.exit_code == 0, result.output
    assert "rem is Running at http://gw/servers/rem/mcp" in result.stdout


def test_deploy_from_flags_builds_package_spec(plane, invoke):
    plane.script["tools"] = [RUNNING]

    result = invoke("deploy", "--name", "tools", "--command", "uvx", "--arg", "mcp-server-time",
                    "--arg", "--local-timezone=UTC", "--env", "TZ=UTC", "--env", "A=b=c",
                    "--description", "time tools")

    assert result.exit_code == 0, result.output
    body = json.loads(next(r for r in plane.requests if r.method == "POST").content)
    assert body["kind"] == "package"
    assert body["description"] == "time tools"
    assert body["package"] == {"command": "uvx", "args": ["mcp-server-time", "--local-timezone=UTC"],
                               "env": {"TZ": "UTC", "A": "b=c"}}


def test_deploy_remote_url_flag_builds_remote_spec(plane, invoke):
    result = invoke("deploy", "--name", "far", "--remote-url", "https://example.com/mcp", "--no-wait")

    assert result.exit_code == 0, result.output
    body = json.loads(next(r for r in plane.requests if r.method == "POST").content)
    assert body["kind"] == "remote" and body["remote"] == {"url": "https://example.com/mcp"}
    # --no-wait: one existence check, the POST, and no polling.
    assert plane.calls() == [("GET", "/api/servers/far"), ("POST", "/api/servers")]


def test_deploy_existing_server_puts_and_waits_for_new_revision(plane, invoke):
    spec = {"name": "echo", "kind": "remote", "remote": {"url": "https://a.example/mcp"}}
    plane.servers["echo"] = server_doc("echo", spec, **RUNNING)
    # Still Running on revision 1 while revision 2 deploys: that must not count as done.
    plane.script["echo"] = [{}, {"status": "Running"}, {"status": "Deploying"},
                            {"status": "Running", "revision": 2}]

    result = invoke("deploy", "--name", "echo", "--remote-url", "https://b.example/mcp")

    assert result.exit_code == 0, result.output
    assert ("PUT", "/api/servers/echo") in plane.calls()
    assert ("POST", "/api/servers") not in plane.calls()
    # One existence check, then polls until revision 2 is Running (not the first Running).
    assert sum(1 for c in plane.calls() if c == ("GET", "/api/servers/echo")) == 4
    assert "Deploying" in result.stderr


def test_deploy_error_status_prints_reason_and_exits_1(plane, invoke):
    plane.script["bad"] = [{"status": "Deploying"},
                           {"status": "Error", "status_reason": "command not found: nope",
                            "operation_id": None}]

    result = invoke("deploy", "--name", "bad", "--command", "nope")

    assert result.exit_code == 1
    assert "command not found: nope" in result.stderr
    assert "deploy of bad failed" in result.stderr


def test_deploy_times_out(plane, clock, invoke):
    plane.script["slow"] = [{"status": "Deploying"}] * 1000

    result = invoke("deploy", "--name", "slow", "--command", "x", "--timeout", "3")

    assert result.exit_code == 1
    assert "timed out after 3s" in result.stderr
    assert clock.now >= 3


def test_local_validation_errors_exit_2_without_sending(tmp_path, plane, invoke):
    spec_file = tmp_path / "bad.yaml"
    spec_file.write_text("name: Bad_Name\nkind: package\nremote: {url: 'ftp://x'}\n")

    result = invoke("deploy", "-f", str(spec_file))

    assert result.exit_code == 2
    assert "invalid server spec" in result.stderr
    assert "name: must be a DNS-1123 label" in result.stderr
    assert "package: required when kind is 'package'" in result.stderr
    assert "remote" in result.stderr
    assert plane.requests == []


def test_flag_and_file_errors_exit_2(tmp_path, plane, invoke):
    assert invoke("deploy").exit_code == 2
    assert invoke("deploy", "--command", "x").exit_code == 2  # no --name
    result = invoke("deploy", "--name", "x", "--command", "x", "--env", "NOEQUALS")
    assert result.exit_code == 2 and "KEY=VALUE" in result.stderr
    result = invoke("deploy", "-f", str(tmp_path / "missing.yaml"))
    assert result.exit_code == 2 and "cannot read spec file" in result.stderr
    (tmp_path / "list.yaml").write_text("- a\n- b\n")
    assert invoke("deploy", "-f", str(tmp_path / "list.yaml")).exit_code == 2
    assert plane.requests == []


def test_problem_json_from_server_is_rendered(plane, invoke):
    def reject(request: httpx.Request) -> httpx.Response:
        if request.method == "GET":
            return httpx.Response(404, json={"title": "Not Found", "status": 404, "detail": "x"})
        return httpx.Response(400, headers={"Content-Type": "application/problem+json"}, json={
            "type": "about:blank", "title": "Bad Request", "status": 400,
            "detail": "the server spec is invalid",
            "errors": [{"field": "package.command", "message": "not on the allow list"}]})

    result = invoke("deploy", "--name", "x", "--command", "rm", transport=httpx.MockTransport(reject))

    assert result.exit_code == 1
    assert "Bad Request: the server spec is invalid" in result.stderr
    assert "package.command: not on the allow list" in result.stderr


def test_unreachable_control_plane(plane, invoke):
    plane.down = True

    result = invoke("deploy", "--name", "x", "--command", "x")

    assert result.exit_code == 1
    assert "control plane not reachable at http://127.0.0.1:7071" in result.stderr
    assert "mcpaas up" in result.stderr
