"""Remote URL clearance (issue 10 item 5, `shared.egress`): the address policy at spec
validation. Name resolution of test names is steered through `socket.getaddrinfo`;
nothing here opens a connection."""

from __future__ import annotations

import ipaddress
import socket

import pytest

from shared.clearance import problems
from shared.egress import EgressPolicy, EgressRefused
from shared.models import ServerSpec
from shared.settings import Settings

REAL_GETADDRINFO = socket.getaddrinfo
# host patterns admit everything here, so what is tested is the address policy
ANY_HOST = Settings(clearance_remote_hosts="*")


def remote(url: str) -> ServerSpec:
    return ServerSpec.model_validate({"name": "r", "kind": "remote", "remote": {"url": url}})


def refusal(url: str, settings: Settings = ANY_HOST) -> str:
    found = problems(remote(url), settings)
    assert [p["field"] for p in found] == ["remote.url"], found
    return found[0]["message"]


@pytest.mark.parametrize(("url", "kind"), [
    ("http://127.0.0.1:9/mcp", "loopback"), ("http://127.8.9.10/mcp", "loopback"), ("http://[::1]:9/mcp", "loopback"),
    ("http://10.0.0.1/mcp", "private"), ("http://10.255.255.53/mcp", "private"), ("http://172.16.0.1/mcp", "private"),
    ("http://172.31.255.254/mcp", "private"), ("http://192.168.1.1/mcp", "private"),
    ("http://169.254.169.254/metadata", "link-local"), ("http://[fe80::1]/mcp", "link-local"),
    ("http://[fc00::1]/mcp", "unique-local"), ("http://[fd12:3456::1]/mcp", "unique-local"),
    ("http://0.0.0.0:7071/mcp", "unspecified"), ("http://[::]/mcp", "unspecified"),
    ("http://100.64.0.1/mcp", "shared (CGNAT)"), ("http://[::ffff:127.0.0.1]/mcp", "loopback"),
    ("http://[::ffff:a9fe:a9fe]/mcp", "link-local"), ("http://[64:ff9b::a00:1]/mcp", "private"),
    ("http://[2002:c0a8:101::]/mcp", "private"), ("http://224.0.0.1/mcp", "multicast"),
    ("http://2130706433/mcp", "loopback"), ("http://0x7f.1/mcp", "loopback"), ("http://127.1/mcp", "loopback"),
    ("http://3232235777/mcp", "private"), ("http://localhost:9/mcp", "loopback"),
    ("http://something.localhost/mcp", "loopback"), ("http://LOCALHOST./mcp", "loopback"),
])
def test_non_public_addresses_are_refused_by_default(url, kind):
    assert " address (not opted in by remote_allowed_networks)" in refusal(url)
    assert kind in refusal(url)


def test_a_dns_name_is_judged_by_every_address_it_resolves_to(monkeypatch):
    answers = {"mixed.test": ["8.8.8.8", "10.1.2.3"], "public.test": ["8.8.8.8"], "inside.test": ["192.168.0.7"]}

    def getaddrinfo(host, port, *args, **kwargs):
        if host not in answers:  # no real DNS query leaves the test
            raise socket.gaierror(socket.EAI_NONAME, "Name or service not known")
        return [info for address in answers[host] for info in REAL_GETADDRINFO(address, port, *args, **kwargs)]

    monkeypatch.setattr(socket, "getaddrinfo", getaddrinfo)
    assert problems(remote("https://public.test/mcp"), ANY_HOST) == []
    assert "host 'mixed.test': 10.1.2.3 is a private address" in refusal("https://mixed.test/mcp")
    assert "host 'inside.test': 192.168.0.7 is a private address" in refusal("https://inside.test/mcp")
    assert "does not resolve" in refusal("https://nothing.invalid/mcp")


def test_host_patterns_come_first_so_unlisted_names_are_never_resolved(monkeypatch):
    monkeypatch.setattr(socket, "getaddrinfo", lambda *a, **k: pytest.fail(f"resolved {a[0]}"))
    assert refusal("https://attacker.example/mcp", Settings()) == (
        "host 'attacker.example' is not on the clearance allowlist")


def test_a_deployment_opts_ranges_in_by_cidr():
    loopback = Settings(clearance_remote_hosts="*", remote_allowed_networks="127.0.0.0/8,::1/128")
    for url in ("http://127.0.0.1:9/mcp", "http://localhost:9/mcp", "http://[::1]:9/mcp", "http://[::ffff:127.0.0.2]:9/"):
        assert problems(remote(url), loopback) == [], url
    assert "private" in refusal("http://10.0.0.1/mcp", loopback)
    private = Settings(clearance_remote_hosts="*", remote_allowed_networks="10.0.0.0/8")
    assert problems(remote("http://10.20.30.40/mcp"), private) == []
    assert "private" in refusal("http://172.16.0.1/mcp", private)


def test_the_platforms_own_endpoints_stay_refused_inside_an_opted_in_range():
    settings = Settings(clearance_remote_hosts="*", remote_allowed_networks="127.0.0.0/8", api_port=7199,
                        gateway_port=8199)
    assert "port 7199 is the control plane of this platform" in refusal("http://127.0.0.1:7199/api/servers", settings)
    assert "port 8199 is the gateway of this platform" in refusal("http://localhost:8199/servers/x/mcp", settings)
    assert problems(remote("http://127.0.0.1:8200/mcp"), settings) == []
    bound_everywhere = Settings(clearance_remote_hosts="*", remote_allowed_networks="127.0.0.0/8",
                                gateway_host="0.0.0.0", gateway_port=8299)
    assert "the gateway of this platform" in refusal("http://127.0.0.1:8299/mcp", bound_everywhere)


def test_the_policy_checks_every_address_before_any_is_used():
    policy = EgressPolicy(allowed=(ipaddress.ip_network("127.0.0.0/8"),))
    assert policy.checked_addresses("127.0.0.1", 80) == [ipaddress.ip_address("127.0.0.1")]
    with pytest.raises(EgressRefused, match="link-local"):
        policy.checked_addresses("169.254.169.254", 80)
    assert policy.refusal(ipaddress.ip_address("8.8.8.8"), 443) is None


def test_bad_network_settings_fail_at_start():
    with pytest.raises(ValueError, match="does not appear to be an IPv4 or IPv6 network"):
        Settings(remote_allowed_networks="loopback")
