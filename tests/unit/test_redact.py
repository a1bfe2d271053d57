"""`shared.redact`: what counts as a credential, and what is left alone; secret values taken
out of deploy-request bodies by their place in the spec."""

from __future__ import annotations

import json

import pytest

from shared.redact import REDACTED, WITHHELD_BODY, scrub_credentials, scrub_values, withhold_secret_values

JWT = "eyJhbGciOiJSUzI1NiJ9.eyJzdWIiOiJhbGljZSJ9.c2lnbmF0dXJl"


@pytest.mark.parametrize(("text", "secret"), [
    (f"upstream said 401 to Authorization: Bearer {JWT}", JWT),
    (f"token {JWT} rejected", JWT),
    ("header was Bearer opaque-token-value", "opaque-token-value"),
    ("Basic YWxpY2U6aHVudGVyMg== refused", "YWxpY2U6aHVudGVyMg=="),
    ("bad key mcpk_0123abcd_s3cr3tpart", "0123abcd_s3cr3tpart"),
    ("DefaultEndpointsProtocol=https;AccountName=a;AccountKey=QUJDRA+/==;EndpointSuffix=x", "QUJDRA+/=="),
    ("Endpoint=sb://ns/;SharedAccessKeyName=Root;SharedAccessKey=c2VjcmV0", "c2VjcmV0"),
    ("https://acct.blob.core.windows.net/c?sv=2024&sig=abc%2Fdef&se=1", "abc%2Fdef"),
    ("POST /api/fn?code=functionkey123", "functionkey123"),
    ("postgres://bob:hunter2@db:5432/app", "hunter2"),
    ("login failed: password=hunter2", "hunter2"),
    ('config {"api_key": "0123456789abcdef0123"}', "0123456789abcdef0123"),
    ("env GITHUB_TOKEN=ghp_abcdefghijklmnop", "ghp_abcdefghijklmnop"),
    ("AZURE_CLIENT_SECRET: s3cr3t~value", "s3cr3t~value"),
    ("x-api-key: k-123456", "k-123456"),
])
def test_credentials_are_replaced(text: str, secret: str) -> None:
    scrubbed = scrub_credentials(text)
    assert secret not in scrubbed and REDACTED in scrubbed


@pytest.mark.parametrize("text", [
    "server process exited with code 1 (stdout closed)",
    "could not start server process: [Errno 2] No such file or directory: 'mcp-server-time'",
    "a stdout line exceeded 4194304 bytes",
    "tokenizer failed; token_count=5",
])
def test_ordinary_diagnostics_are_left_alone(text: str) -> None:
    assert scrub_credentials(text) == text


def test_length_is_capped_and_none_stays_none() -> None:
    assert scrub_credentials(None) is None
    capped = scrub_credentials("x" * 5000, limit=100)
    assert len(capped) == 100 and capped.endswith("…")
    # a credential straddling the cut is scrubbed before the cut, not half-left
    assert JWT[:20] not in scrub_credentials("y" * 90 + f" Bearer {JWT}", limit=100)


def test_secret_values_are_withheld_from_package_and_container_specs_and_refs_kept() -> None:
    body = {"idempotency_key": "k", "spec": {
        "name": "s", "kind": "package",
        "package": {"command": "x", "env": {"PLAIN": "seen"},
                    "secrets": {"A": {"value": "alpha-value"}, "B": {"ref": "mcpaas-secret://b"},
                                "C": "bare-string", "D": {"value": {"nested": 1}}}},
        "container": {"secrets": {"E": {"value": "echo-value", "ref": "r"}}}}}
    redacted, values = withhold_secret_values(json.dumps(body).encode())
    text = redacted.decode()
    assert sorted(values) == sorted(["alpha-value", "bare-string", '{"nested": 1}', "echo-value"])
    assert all(v not in text for v in ["alpha-value", "bare-string", "nested", "echo-value"])
    document = json.loads(redacted)
    secrets = document["spec"]["package"]["secrets"]
    assert secrets == {"A": {"value": REDACTED}, "B": {"ref": "mcpaas-secret://b"}, "C": REDACTED,
                       "D": {"value": REDACTED}}
    assert document["spec"]["container"]["secrets"]["E"] == {"value": REDACTED, "ref": "r"}
    assert document["spec"]["package"]["env"] == {"PLAIN": "seen"}
    # idempotent: a second pass finds nothing more
    assert withhold_secret_values(redacted) == (redacted, [])


def test_a_bare_spec_body_is_covered_and_other_bodies_are_kept_or_withheld() -> None:
    redacted, values = withhold_secret_values(b'{"package": {"secrets": {"A": {"value": "v-1"}}}}')
    assert values == ["v-1"] and b"v-1" not in redacted
    assert withhold_secret_values(b'{"action": "ok"}') == (b'{"action": "ok"}', [])
    # not a JSON object: its secrets cannot be located, so nothing of it is kept
    for body in [b'{"spec": {"package": {"secrets": {"A": {"value": "v-2"}}},', b'["v-3"]', b"\xff\xfe"]:
        assert withhold_secret_values(body) == (WITHHELD_BODY, [])
    assert withhold_secret_values(WITHHELD_BODY) == (WITHHELD_BODY, [])


def test_scrub_values_replaces_longest_first() -> None:
    assert scrub_values("x abc abcdef y", ["abc", "abcdef", ""]) == f"x {REDACTED} {REDACTED} y"
    assert scrub_values(None, ["a"]) is None
