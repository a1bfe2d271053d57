"""Where a `remote` server may point (NFR-SEC-004): the address policy of the gateway's egress.

A remote URL is a request the platform makes on a spec author's behalf, from inside the
platform's network: pointed at loopback it reaches the control plane, the gateway's own
admin routes, Redis or the Cosmos emulator; at link-local, the cloud metadata endpoint
(169.254.169.254, managed identity tokens); at private ranges, the VNet. So by default an
address is refused unless it is globally reachable (`ipaddress`'s `is_global`, which follows
the IANA special-purpose registries: loopback 127/8 and ::1, private 10/8, 172.16/12,
192.168/16, link-local 169.254/16 and fe80::/10, unique-local fc00::/7, CGNAT 100.64/10,
unspecified 0.0.0.0 and ::, documentation and reserved ranges) and not multicast.
IPv4-mapped and IPv4-compatible IPv6 forms (``::ffff:127.0.0.1``) are judged as the IPv4
address they carry. A deployment opts ranges in with `remote_allowed_networks` (CIDRs).
The platform's own control plane and gateway endpoints (`api_url`, `gateway_url`, and the
bind address and port of each) are refused even inside an opted-in range.

Names are resolved with `socket.getaddrinfo` and every address must pass, so numeric
forms (``2130706433``, ``0x7f.1``, ``0177.0.0.1``) and DNS names are judged by the
address they reach; ``localhost`` and ``*.localhost`` are loopback without asking DNS
(RFC 6761 section 6.3). The gateway repeats the check at every connect and connects to the
address it checked (`gateway.upstreams.proxy`), so a name re-pointed after validation (DNS
rebinding) gains nothing.
"""

from __future__ import annotations

import ipaddress
import socket
from dataclasses import dataclass

import httpx

from shared.settings import Settings

Address = ipaddress.IPv4Address | ipaddress.IPv6Address
Network = ipaddress.IPv4Network | ipaddress.IPv6Network

_CGNAT = ipaddress.ip_network("100.64.0.0/10")
_UNIQUE_LOCAL = ipaddress.ip_network("fc00::/7")
_NAT64 = ipaddress.ip_network("64:ff9b::/96")
_LOOPBACK = (ipaddress.ip_address("127.0.0.1"), ipaddress.ip_address("::1"))


class EgressRefused(Exception):
    """The address policy refuses a host: it resolves to a refused address, or not at all."""


def _kind(address: Address) -> str:
    """A short name of why an address is not public (for messages)."""
    for test, name in ((address.is_loopback, "loopback"), (address.is_unspecified, "unspecified"),
                       (address.is_link_local, "link-local"), (address.is_multicast, "multicast"),
                       (address in _CGNAT, "shared (CGNAT)"), (address in _UNIQUE_LOCAL, "unique-local"),
                       (address.is_private, "private")):
        if test:
            return name
    return "reserved"


def _unwrap(address: Address) -> Address:
    """The IPv4 address an IPv6 address carries, if it carries one: IPv4-mapped
    (::ffff:a.b.c.d), IPv4-compatible (::a.b.c.d, deprecated), NAT64 (64:ff9b::a.b.c.d,
    which a NAT64 router forwards to a.b.c.d) and 6to4 (2002:aabb:ccdd::)."""
    if not isinstance(address, ipaddress.IPv6Address):
        return address
    if address.ipv4_mapped is not None:
        return address.ipv4_mapped
    if address.sixtofour is not None:
        return address.sixtofour
    if (int(address) >> 32 == 0 and int(address) > 1) or address in _NAT64:
        return ipaddress.IPv4Address(int(address) & 0xFFFFFFFF)
    return address


def resolve(host: str, port: int) -> list[Address]:
    """Every address `host` reaches on `port` (literal IPs as they are; ``localhost`` and
    ``*.localhost`` as 127.0.0.1 and ::1 without DNS; else `socket.getaddrinfo`).

    Raises EgressRefused when the name does not resolve. Blocking (DNS).
    """
    name = host.strip("[]").rstrip(".").lower()
    if name == "localhost" or name.endswith(".localhost"):
        return list(_LOOPBACK)
    try:
        return [ipaddress.ip_address(name)]
    except ValueError:
        pass
    try:
        infos = socket.getaddrinfo(name, port, type=socket.SOCK_STREAM)
    except (OSError, UnicodeError) as error:
        raise EgressRefused(f"host '{host}' does not resolve ({error})") from None
    # sockaddr[0] may carry an IPv6 zone (fe80::1%eth0): the zone does not change the range;
    # str(): typeshed allows an int there (AF_CAN and co.), which getaddrinfo never returns for IP
    return list(dict.fromkeys(ipaddress.ip_address(str(info[4][0]).split("%", 1)[0]) for info in infos))


def url_endpoint(url: str) -> tuple[str, int]:
    """(host, port) of an http(s) URL as httpx, the client that connects, parses it.

    Raises EgressRefused for a URL httpx cannot parse or without a host.
    """
    try:
        parsed = httpx.URL(url)
    except (httpx.InvalidURL, TypeError, ValueError) as error:
        raise EgressRefused(f"URL is not valid ({error})") from None
    if not parsed.host:
        raise EgressRefused("URL has no host")
    return parsed.host, parsed.port or (443 if parsed.scheme == "https" else 80)


@dataclass(frozen=True)
class EgressPolicy:
    """Which (address, port) a `remote` server may reach.

    Attributes:
        allowed: opted-in networks (`Settings.remote_allowed_networks`).
        own: the platform's own endpoints as (address, port, what), always refused.
    """

    allowed: tuple[Network, ...] = ()
    own: frozenset[tuple[Address, int, str]] = frozenset()

    @classmethod
    def from_settings(cls, settings: Settings) -> EgressPolicy:
        """The policy of `settings`: its opted-in networks and the control plane's and
        gateway's endpoints (URLs and bind addresses; a name that does not resolve here
        contributes nothing, an unspecified bind address stands for loopback)."""
        endpoints = (("the control plane", settings.api_url), ("the gateway", settings.gateway_url),
                     ("the control plane", f"http://{_bracket(settings.api_host)}:{settings.api_port}"),
                     ("the gateway", f"http://{_bracket(settings.gateway_host)}:{settings.gateway_port}"))
        own: set[tuple[Address, int, str]] = set()
        for what, url in endpoints:
            try:
                host, port = url_endpoint(url)
                addresses = resolve(host, port)
            except EgressRefused:
                continue
            for address in addresses:
                for reached in (_LOOPBACK if address.is_unspecified else (address,)):
                    own.add((_unwrap(reached), port, what))
        allowed = tuple(ipaddress.ip_network(cidr, strict=False) for cidr in settings.remote_allowed_networks)
        return cls(allowed=allowed, own=frozenset(own))

    def refusal(self, address: Address, port: int) -> str | None:
        """Why `address`:`port` is refused (None: admitted)."""
        address = _unwrap(address)
        for own_address, own_port, what in self.own:
            if own_address == address and own_port == port:
                return f"{address} port {port} is {what} of this platform"
        if address.is_global and not address.is_multicast:
            return None
        if any(address in network for network in self.allowed):
            return None
        kind = _kind(address)
        article = "an" if kind[0] in "aeiou" else "a"
        return f"{address} is {article} {kind} address (not opted in by remote_allowed_networks)"

    def checked_addresses(self, host: str, port: int) -> list[Address]:
        """Resolve `host` and check every address (all must pass, so a name cannot mix a
        public address with a private one and win the race). Blocking (DNS).

        Raises EgressRefused naming the first refused address.
        """
        addresses = resolve(host, port)
        for address in addresses:
            if (reason := self.refusal(address, port)) is not None:
                shown = "" if host.strip("[]") == str(address) else f"host '{host}': "
                raise EgressRefused(shown + reason)
        return addresses

    def check_url(self, url: str) -> str | None:
        """Why a remote URL is refused (None: admitted). Resolves its host (blocking)."""
        try:
            host, port = url_endpoint(url)
            self.checked_addresses(host, port)
        except EgressRefused as refused:
            return str(refused)
        return None


def _bracket(host: str) -> str:
    return f"[{host}]" if ":" in host and not host.startswith("[") else host

