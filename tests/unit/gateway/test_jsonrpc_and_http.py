"""Unit tests of the JSON-RPC envelope helpers and the HTTP helpers."""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path

import pytest
from starlette.requests import Request

from shared.models import PackageSource

from gateway.wire.http import check_protocol_version
from gateway.wire.jsonrpc import (MessageError, RawMessage, encoded, error_response, id_key,
                             is_notification, is_request, is_response, parse_message)
from gateway.children.stdio import child_env


def _request(headers: dict[str, str]) -> Request:
    raw = [(k.lower().encode(), v.encode()) for k, v in headers.items()]
    return Request({"type": "http", "method": "POST", "path": "/", "headers": raw})


@pytest.mark.parametrize("body", [
    b'{"jsonrpc":"2.0","id":1,"method":"ping"}',
    b'{"jsonrpc":"2.0","method":"notifications/initialized"}',
    b'{"jsonrpc":"2.0","id":"a","result":{}}',
    b'{"jsonrpc":"2.0","id":2,"error":{"code":1,"message":"x"}}',
])
def test_parse_accepts_messages(body: bytes) -> None:
    assert parse_message(body) == json.loads(body)


@pytest.mark.parametrize("body,code", [
    (b"{", -32700), (b"\xff", -32700), (b"[]", -32600), (b"3", -32600),
    (b'{"id":1,"method":"x"}', -32600), (b'{"jsonrpc":"2.0","id":1}', -32600),
    (b'{"jsonrpc":"2.0","method":5}', -32600),
    (b'{"jsonrpc":"2.0","id":true,"method":"x"}', -32600),
])
def test_parse_rejects(body: bytes, code: int) -> None:
    with pytest.raises(MessageError) as caught:
        parse_message(body)
    assert caught.value.code == code


def test_kinds_and_ids() -> None:
    assert is_request({"id": 1, "method": "m"})
    assert is_notification({"method": "m"})
    assert is_response({"id": 1, "result": {}})
    assert id_key(1) != id_key("1")
    assert len({id_key(1), id_key(1.0), id_key("1"), id_key("n1"), id_key(None)}) == 5
    assert error_response(None, -32700, "x") == {
        "jsonrpc": "2.0", "id": None, "error": {"code": -32700, "message": "x"}}


@pytest.mark.parametrize("headers,ok", [
    ({}, True),
    ({"MCP-Protocol-Version": "2025-03-26"}, True),
    ({"MCP-Protocol-Version": "2025-06-18"}, True),
    ({"MCP-Protocol-Version": "2025-11-25"}, True),
    ({"MCP-Protocol-Version": "2026-07-28"}, False),
    ({"MCP-Protocol-Version": "2024-11-05"}, False),
])
def test_protocol_version(headers: dict[str, str], ok: bool) -> None:
    answer = check_protocol_version(_request(headers))
    assert (answer is None) == ok
    if not ok:
        assert answer.status_code == 400


def test_child_env_is_an_allowlist_with_home_in_the_server_dir(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    platform = {"MCPAAS_STORE": "cosmos", "AZURE_CLIENT_SECRET": "s1", "IDENTITY_ENDPOINT": "x",
                "MSI_SECRET": "s2", "APPLICATIONINSIGHTS_CONNECTION_STRING": "s3",
                "REDIS_URL": "redis://h", "COSMOS_KEY": "k", "SOMETHING_ELSE": "y"}
    for name, value in {**platform, "LANG": "C.UTF-8", "LC_TIME": "C", "TZ": "UTC"}.items():
        monkeypatch.setenv(name, value)
    env = child_env(PackageSource(command="x", env={"FOO": "bar"}), tmp_path, {"TOKEN": "t"})
    assert not set(platform) & set(env)
    assert env["FOO"] == "bar" and env["TOKEN"] == "t"
    assert (env["LANG"], env["LC_TIME"], env["TZ"]) == ("C.UTF-8", "C", "UTC")
    assert env["PATH"].split(os.pathsep)[0] == str(Path(sys.executable).parent)
    assert env["HOME"] == str(tmp_path)
    for cache in ("XDG_CACHE_HOME", "npm_config_cache", "UV_CACHE_DIR", "PIP_CACHE_DIR"):
        assert Path(env[cache]).is_relative_to(tmp_path)


def test_child_env_lets_the_spec_set_its_own_path(tmp_path: Path) -> None:
    env = child_env(PackageSource(command="x", env={"PATH": "/opt/x/bin"}), tmp_path)
    assert env["PATH"].split(os.pathsep) == [str(Path(sys.executable).parent), "/opt/x/bin"]


def test_raw_messages_keep_their_text_until_changed():
    text = b'{"jsonrpc": "2.0", "id": 7, "result": {"x": "\\u00e9"}}'
    message = RawMessage(json.loads(text), text)
    assert message == {"jsonrpc": "2.0", "id": 7, "result": {"x": "\u00e9"}}
    assert encoded(message) is text  # relayed as it came, not re-encoded
    changed = {**message, "id": 8}
    assert json.loads(encoded(changed)) == {**message, "id": 8}
