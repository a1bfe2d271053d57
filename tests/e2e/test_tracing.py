"""One trace from the REST call through the orchestration and activities to the gateway and
the server's child process (issue 6, item 4), read back from the JSON logs and the child's env."""

from __future__ import annotations

import json
import secrets
import sys

import pytest

from tests.e2e.helpers import authed, wait_status

pytestmark = pytest.mark.usefixtures("shell_launchers")  # clearance opt-ins (tests/e2e/conftest.py)


def trace_ids_in(log_path) -> set[str]:
    """trace_id of every JSON log line of a platform process."""
    ids = set()
    for line in log_path.read_text(errors="replace").splitlines():
        try:
            record = json.loads(line)
        except ValueError:
            continue
        if isinstance(record, dict) and record.get("trace_id"):
            ids.add(record["trace_id"])
    return ids


def test_a_deploy_is_one_trace_from_rest_call_to_child_process(platform):
    trace_id = secrets.token_hex(16)
    # written in the child's own directory: the only one its sandbox lets it write
    seen = platform.data_dir / "servers" / "traced" / "traceparents"
    script = f'echo "$TRACEPARENT" >> traceparents; exec {sys.executable} -m catalog.echo.server'
    spec = {"name": "traced", "kind": "package", "package": {"command": "sh", "args": ["-c", script]}}
    response = authed.post(f"{platform.api}/api/servers", json=spec, timeout=30,
                           headers={"traceparent": f"00-{trace_id}-{secrets.token_hex(8)}-01"})
    assert response.status_code == 202, response.text
    assert wait_status(platform.api, "traced", {"Running", "Error"})["status"] == "Running"

    assert trace_id in trace_ids_in(platform.data_dir / "devhost.log")  # trigger and activities
    assert trace_id in trace_ids_in(platform.data_dir / "gateway.log")  # the probe's MCP requests
    child_trace_ids = {line.split("-")[1] for line in seen.read_text().split() if line.count("-") == 3}
    assert trace_id in child_trace_ids  # the stdio child started for the probe's session
