"""Where a tenant's MCP server may be: a public address, never the platform's own network.

A server named by a tenant (registered by a tenant admin, or given inline in a request) is a
URL the platform will call from inside its network, so it must not reach the platform's own
services (the database, the replicas, a cloud's metadata endpoint): its host must resolve only
to global addresses, unless the operator lists the host in ``mcp_allowed_hosts`` (host names,
addresses or networks such as ``10.0.0.0/8``). The check runs when a server is registered and
again before each connection, since a name may resolve differently later; and the connection
goes to the addresses the check saw, not to a fresh lookup of the name (which a DNS server
could answer with a private address the second time).
"""

from __future__ import annotations

import ipaddress
import socket
from collections.abc import Callable, Iterable
from urllib.parse import urlsplit

from tokenmill.errors import InvalidRequest

Address = ipaddress.IPv4Address | ipaddress.IPv6Address
Resolver = Callable[[str], list[str]]


def resolve(host: str) -> list[str]:
    try:
        infos = socket.getaddrinfo(host, None, proto=socket.IPPROTO_TCP)
    except socket.gaierror:
        return []
    return sorted({str(info[4][0]) for info in infos})


class UrlGuard:
    def __init__(self, allowed_hosts: Iterable[str] = (), resolver: Resolver = resolve) -> None:
        self._names: set[str] = set()
        self._networks: list[ipaddress.IPv4Network | ipaddress.IPv6Network] = []
        for entry in allowed_hosts:
            try:
                self._networks.append(ipaddress.ip_network(entry, strict=False))
            except ValueError:
                self._names.add(entry.lower().rstrip("."))
        self._resolve = resolver

    def check(self, url: str, param: str, *, trusted: bool = False) -> tuple[str, ...]:
        """Raises ``InvalidRequest`` (naming ``param``) unless the platform may call ``url``;
        returns the addresses it may call it at (none: by its name, a host the operator
        trusts)."""
        parts = urlsplit(url)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise InvalidRequest(
                f"'{param}' must be an http:// or https:// URL with a host.", param=param
            )
        if parts.username or parts.password:
            raise InvalidRequest(
                f"'{param}' must not carry credentials; send them as headers.", param=param
            )
        host = parts.hostname.lower().rstrip(".")
        if trusted or host in self._names:
            return ()
        addresses = self._addresses(host)
        if not addresses:
            raise InvalidRequest(f"'{param}': the host {host!r} does not resolve.", param=param)
        for address in addresses:
            if any(address in network for network in self._networks):
                continue
            if not address.is_global:
                raise InvalidRequest(
                    f"'{param}': {host!r} resolves to {address}, an address on a private, "
                    "loopback or reserved network, which MCP servers may not use (an operator "
                    "may allow it with mcp_allowed_hosts).",
                    param=param,
                    code="mcp_server_not_allowed",
                )
        return tuple(str(address) for address in addresses)

    def _addresses(self, host: str) -> list[Address]:
        try:
            return [ipaddress.ip_address(host)]
        except ValueError:
            pass
        found: list[Address] = []
        for text in self._resolve(host):
            address = ipaddress.ip_address(text.split("%")[0])
            if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
                address = address.ipv4_mapped
            found.append(address)
        return found
