"""The callback guard: partner callbacks never reach loopback, private or metadata addresses.

No test here resolves a name outside this machine: names are `localhost` (the hosts file) or
literal addresses, and the connection-time guard is exercised against loopback only.
"""

from __future__ import annotations

import asyncio
import ipaddress

import pytest

from leo_runtime.delivery.callbacks import (
    CallbackRefused,
    check_callback_url,
    connect_refusal,
    forbidden_reason,
    guarded_resolver,
    literal_address,
)
from leo_runtime.errors import InputError

REFUSED_HOSTS = [
    "127.0.0.1", "127.1", "2130706433", "0x7f000001", "0177.0.0.1", "0x7f.1", "017700000001", "0.0.0.0", "0",
    "10.0.0.5", "172.16.3.4", "192.168.1.1", "100.64.0.1", "169.254.169.254", "224.0.0.1", "255.255.255.255",
    "[::1]", "[::]", "[::ffff:127.0.0.1]", "[::ffff:7f00:1]", "[::ffff:169.254.169.254]", "[64:ff9b::a9fe:a9fe]",
    "[2002:7f00:1::]", "[::127.0.0.1]", "[fe80::1]", "[fc00::1]", "[fd00:ec2::254]", "[ff02::1]", "[2001:db8::1]",
    "localhost", "LOCALHOST.", "api.localhost",
]


@pytest.mark.parametrize("host", REFUSED_HOSTS)
def test_loopback_private_link_local_and_metadata_addresses_are_refused(host: str) -> None:
    with pytest.raises(InputError, match=r"^callback_url: .*(address|name), which partner callbacks may not reach"):
        check_callback_url(f"https://{host}/hook", allow_private=False)
    assert check_callback_url(f"https://{host}/hook", allow_private=True) == f"https://{host}/hook"


@pytest.mark.parametrize("address", ["8.8.8.8", "1.1.1.1", "2606:4700:4700::1111", "93.184.216.34"])
def test_public_addresses_pass(address: str) -> None:
    host = f"[{address}]" if ":" in address else address
    assert check_callback_url(f"https://{host}:8443/h?x=1", allow_private=False)
    assert forbidden_reason(ipaddress.ip_address(address)) is None


@pytest.mark.parametrize(
    ("url", "reason"),
    [
        ("ftp://8.8.8.8/x", "must be an http or https URL"),
        ("file:///etc/passwd", "must be an http or https URL"),
        ("gopher://8.8.8.8:70/", "must be an http or https URL"),
        ("//8.8.8.8/x", "must be an http or https URL"),
        ("https:///x", "has no host"),
        ("https://user:pass@8.8.8.8/x", "must not hold credentials"),
        ("https://user@8.8.8.8/x", "must not hold credentials"),
        ("https://8.8.8.8/x#frag", "must not hold a fragment"),
        ("https://8.8.8.8:0/x", "port 0"),
        ("https://8.8.8.8:99999/x", "not a valid URL"),
        ("https://8.8.8.8/a b", "spaces or control characters"),
        ("https://8.8.8.8/\r\nX-Injected: 1", "spaces or control characters"),
        ("https://8.8.8.8/" + "a" * 3000, "longer than 2,048"),
        ("", "give the URL"),
    ],
)
def test_malformed_callback_urls_are_refused_whatever_the_setting(url: str, reason: str) -> None:
    for allow in (False, True):
        with pytest.raises(InputError, match=reason):
            check_callback_url(url, allow_private=allow)


def test_literal_addresses_are_read_in_every_form_a_resolver_takes() -> None:
    assert literal_address("2130706433") == ipaddress.ip_address("127.0.0.1")
    assert literal_address("0x7f.0.0.1") == ipaddress.ip_address("127.0.0.1")
    assert literal_address("[::ffff:10.0.0.1]") == ipaddress.ip_address("::ffff:10.0.0.1")
    assert literal_address("fe80::1%eth0") == ipaddress.ip_address("fe80::1")
    assert literal_address("partner.example") is None
    assert literal_address("1e100.net") is None


def test_the_connection_is_checked_again_whatever_the_url_said() -> None:
    # A literal address (the resolver never sees those) is refused before connecting...
    assert "127.0.0.1 is a loopback" in (connect_refusal("http://127.0.0.1:9/x", False) or "")
    assert "127.0.0.1 is a loopback" in (connect_refusal("http://2130706433/x", False) or "")
    assert connect_refusal("http://127.0.0.1:9/x", True) is None
    # ...and a name is refused by the resolver when it resolves (now, rebound) to such an address.
    async def resolve() -> None:
        resolver = guarded_resolver(allow_private=False)
        try:
            with pytest.raises(CallbackRefused, match=r"localhost resolves to .*loopback"):
                await resolver.resolve("localhost", 80)
        finally:
            await resolver.close()
        allowing = guarded_resolver(allow_private=True)
        try:
            assert await allowing.resolve("localhost", 80)
        finally:
            await allowing.close()

    asyncio.run(resolve())
