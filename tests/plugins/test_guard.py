"""The guard on tenant-given MCP URLs: only global addresses, unless the operator allows a host
or a network, or the registration is a platform admin's; malformed URLs are 400s.

A fake resolver stands in for DNS: no test here asks a real name server."""

from __future__ import annotations

import pytest

from tokenmill.errors import InvalidRequest
from tokenmill.plugins.guard import UrlGuard

PUBLIC = "93.184.216.34"
NAMES = {
    "mcp.example.com": [PUBLIC],
    "v6.example.com": ["2606:2800:220:1:248:1893:25c8:1946"],
    "localhost": ["127.0.0.1", "::1"],
    "split.example.com": [PUBLIC, "10.0.0.7"],
    "mapped.example.com": ["::ffff:10.0.0.7"],
    "scoped.example.com": ["fe80::1%eth0"],
    "internal.mcp": ["10.0.0.7"],
    "in-range.corp": ["10.1.2.3"],
    "out-of-range.corp": ["10.2.0.1"],
}


def fake_resolver(host: str) -> list[str]:
    return NAMES.get(host, [])


def no_dns(host: str) -> list[str]:
    raise AssertionError(f"the guard asked DNS for {host!r}")


def guard(*allowed: str) -> UrlGuard:
    return UrlGuard(allowed, resolver=fake_resolver)


def refused(check: UrlGuard, url: str, **kwargs: bool) -> InvalidRequest:
    with pytest.raises(InvalidRequest) as error:
        check.check(url, "tools[0].server_url", **kwargs)
    assert error.value.status == 400
    assert error.value.param == "tools[0].server_url"
    return error.value


@pytest.mark.parametrize(
    "url",
    [
        "http://127.0.0.1:8000/mcp",
        "http://127.9.9.9/mcp",
        "http://10.0.0.1/mcp",
        "http://172.16.5.4/mcp",
        "http://192.168.1.10/mcp",
        "http://169.254.169.254/latest/meta-data/",
        "http://0.0.0.0:8000/mcp",
        "http://[::1]:8000/mcp",
        "http://[fd00::1]/mcp",
        "http://[::ffff:127.0.0.1]/mcp",
        "http://[::ffff:169.254.169.254]/mcp",
        "http://localhost:8000/mcp",
        "http://split.example.com/mcp",  # one public and one private address
        "http://mapped.example.com/mcp",  # resolves to an IPv4-mapped private address
        "http://scoped.example.com/mcp",  # a link-local IPv6 address with a scope
    ],
)
def test_a_private_loopback_or_link_local_host_is_refused(url: str) -> None:
    error = refused(guard(), url)

    assert error.code == "mcp_server_not_allowed"
    assert "mcp_allowed_hosts" in error.message


@pytest.mark.parametrize(
    "url",
    [
        "https://mcp.example.com/mcp",
        "http://MCP.Example.COM./mcp",
        "https://v6.example.com:8443/mcp",
        f"https://{PUBLIC}/mcp",
        "https://[2606:4700:4700::1111]/mcp",
    ],
)
def test_a_host_on_public_addresses_is_allowed(url: str) -> None:
    guard().check(url, "url")


def test_an_address_in_the_url_is_checked_without_dns() -> None:
    check = UrlGuard(resolver=no_dns)

    check.check(f"https://{PUBLIC}/mcp", "url")
    refused(check, "http://127.0.0.1/mcp")


def test_an_allowed_host_name_may_be_private() -> None:
    check = guard("Internal.MCP")

    check.check("http://internal.mcp:9000/mcp", "url")
    check.check("http://INTERNAL.mcp./mcp", "url")
    assert refused(check, "http://localhost/mcp").code == "mcp_server_not_allowed"


def test_an_allowed_network_admits_its_addresses_only() -> None:
    check = guard("10.1.0.0/16", "::1")

    check.check("http://in-range.corp/mcp", "url")
    check.check("http://10.1.200.1/mcp", "url")
    check.check("http://[::1]/mcp", "url")
    assert refused(check, "http://out-of-range.corp/mcp").code == "mcp_server_not_allowed"
    assert refused(check, "http://10.2.0.1/mcp").code == "mcp_server_not_allowed"
    # localhost is 127.0.0.1 as well as ::1: the first is outside every allowed network.
    assert refused(check, "http://localhost/mcp").code == "mcp_server_not_allowed"


def test_a_trusted_url_skips_the_address_check_but_not_its_form() -> None:
    check = UrlGuard(resolver=no_dns)

    check.check("http://127.0.0.1:8000/mcp", "url", trusted=True)
    check.check("http://mcp.internal:8000/mcp", "url", trusted=True)
    refused(check, "file:///etc/passwd", trusted=True)
    refused(check, "http://user:pw@127.0.0.1/mcp", trusted=True)


@pytest.mark.parametrize(
    "url",
    [
        "http://user:pw@mcp.example.com/mcp",
        "https://token@mcp.example.com/mcp",
        "ftp://mcp.example.com/mcp",
        "file:///etc/passwd",
        "ws://mcp.example.com/mcp",
        "gopher://mcp.example.com/",
        "mcp.example.com/mcp",
        "http:///mcp",
        "https://",
        "",
    ],
)
def test_a_malformed_url_is_a_400(url: str) -> None:
    error = refused(guard(), url)

    assert error.code != "mcp_server_not_allowed"


def test_credentials_in_the_url_are_refused_before_anything_else() -> None:
    error = refused(UrlGuard(resolver=no_dns), "https://alice:hunter2@mcp.example.com/mcp")

    assert "headers" in error.message


def test_a_host_that_does_not_resolve_is_a_400() -> None:
    error = refused(guard(), "https://nowhere.invalid/mcp")

    assert "does not resolve" in error.message
    assert error.code != "mcp_server_not_allowed"
