"""`mcpaas deploy` sends a spec file's secret values to the control plane (JSON dumping
alone would mask them as asterisks), and its dry run prints none."""

from __future__ import annotations

from cli.specs import spec_payload, validate_spec


def test_the_payload_carries_values_and_references_as_given():
    spec = validate_spec({"name": "echo", "kind": "package", "package": {
        "command": "uvx", "args": ["mcp-server-time"],
        "secrets": {"TOKEN": {"value": "cli-secret"}, "KEPT": {"ref": "mcpaas-secret://n/" + "1" * 32}}}})
    payload = spec_payload(spec)
    assert payload["package"]["secrets"] == {"TOKEN": {"value": "cli-secret"},
                                             "KEPT": {"ref": "mcpaas-secret://n/" + "1" * 32}}
    assert validate_spec(payload) == spec


def test_specs_without_secrets_send_no_secrets_field():
    spec = validate_spec({"name": "web", "kind": "container", "container": {"image": "ghcr.io/a/b:1"}})
    payload = spec_payload(spec)
    assert "secrets" not in payload["container"] and validate_spec(payload) == spec
