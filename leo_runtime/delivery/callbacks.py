"""The callback guard: a partner's callback URL may not point the runtime at itself or its network.

Partners choose where the runtime POSTs. Unless ``server.allow_private_callbacks`` is true, a
callback must reach a public address: loopback, private, shared (CGNAT), link-local (cloud
metadata at 169.254.169.254 included), multicast, unspecified, reserved and documentation
ranges are refused, for IPv4 and IPv6 alike, with IPv4 hidden inside IPv6 unwrapped
(``::ffff:127.0.0.1``, NAT64, 6to4, IPv4-compatible) and the numeric forms some resolvers accept
read as the address they name (``2130706433``, ``0177.0.0.1``, ``0x7f.1``, ``127.1``).

The check runs twice: when the URL is registered (the host is resolved and every address it
gives must pass) and again at every connection, inside the resolver the HTTP client uses
(`GuardedResolver`), so a name that resolves elsewhere later (DNS rebinding) is refused before a
byte is sent. Redirects are never followed, so a public callback cannot bounce the POST inward.
"""

from __future__ import annotations

import ipaddress
import re
import socket
from typing import Any
from urllib.parse import urlsplit

from ..errors import InputError

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address

MAX_URL_LENGTH = 2048
_NAT64 = ipaddress.ip_network("64:ff9b::/96")
_NAT64_LOCAL = ipaddress.ip_network("64:ff9b:1::/48")
_IPV4_COMPATIBLE = ipaddress.ip_network("::/96")
_TEREDO = ipaddress.ip_network("2001::/32")
# What an old-style numeric host may look like: decimal, octal or hex parts, 1 to 4 of them.
_NUMERIC_HOST = re.compile(r"^(?:0[xX][0-9a-fA-F]*|[0-9]+)(?:\.(?:0[xX][0-9a-fA-F]*|[0-9]+)){0,3}\.?$")
_CONTROL = re.compile(r"[\x00-\x20\x7f]")


def forbidden_reason(address: IPAddress) -> str | None:
    """Why the runtime may not call `address` (None: it may): the kind of range it is in."""
    if isinstance(address, ipaddress.IPv6Address):
        embedded = _embedded_ipv4(address)
        if embedded is not None:
            reason = forbidden_reason(embedded)
            return f"{reason} (inside an IPv6 address)" if reason else None
        if address in _TEREDO:
            return "a tunnel (Teredo)"
    if address.is_loopback:
        return "a loopback"
    if address.is_unspecified:
        return "an unspecified"
    if address.is_link_local:
        return "a link-local (cloud metadata lives there)"
    if address.is_multicast:
        return "a multicast"
    if address.is_private:
        return "a private"
    if not address.is_global:
        return "a non-public (shared, reserved or documentation)"
    return None


def _embedded_ipv4(address: ipaddress.IPv6Address) -> ipaddress.IPv4Address | None:
    if address.ipv4_mapped is not None:
        return address.ipv4_mapped
    if address.sixtofour is not None:
        return address.sixtofour
    if address in _NAT64 or address in _NAT64_LOCAL or (address in _IPV4_COMPATIBLE and int(address) > 1):
        return ipaddress.IPv4Address(int(address) & 0xFFFFFFFF)
    return None


def literal_address(host: str) -> IPAddress | None:
    """The address a URL host names literally, in any form a resolver would take (None: a name)."""
    text = host[1:-1] if host.startswith("[") and host.endswith("]") else host
    text = text.split("%", 1)[0]  # an IPv6 zone (fe80::1%eth0)
    try:
        return ipaddress.ip_address(text)
    except ValueError:
        pass
    if _NUMERIC_HOST.match(text):
        try:
            return ipaddress.IPv4Address(socket.inet_aton(text.rstrip(".")))
        except OSError:
            return None
    return None


def check_callback_url(url: Any, *, allow_private: bool, where: str = "callback_url") -> str:
    """Validate a partner's callback URL; return it. Raises `InputError` naming `where` (HTTP 422).

    http or https, a host, no credentials (the signature proves who calls), no fragment, at most
    2,048 characters; unless `allow_private`, every address the host is or resolves to must be
    public (see the module docstring).
    """
    if not isinstance(url, str) or not url:
        raise InputError(f"{where}: give the URL the runtime POSTs to, like https://partner.example/hooks/leo")
    if len(url) > MAX_URL_LENGTH:
        raise InputError(f"{where}: longer than {MAX_URL_LENGTH:,} characters")
    if _CONTROL.search(url):
        raise InputError(f"{where}: holds spaces or control characters; percent-encode them")
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError as exc:
        raise InputError(f"{where}: not a valid URL ({exc})") from None
    if parts.scheme.lower() not in ("http", "https"):
        raise InputError(f"{where}: must be an http or https URL, not {parts.scheme or 'one without a scheme'!r}")
    host = parts.hostname
    if not host:
        raise InputError(f"{where}: has no host")
    if parts.username is not None or parts.password is not None:
        raise InputError(f"{where}: must not hold credentials (user:password@); the webhook-signature header "
                         "proves the notification comes from this runtime")
    if parts.fragment or url.endswith("#"):
        raise InputError(f"{where}: must not hold a fragment (#...): it is never sent")
    if port == 0:
        raise InputError(f"{where}: port 0 is not a port to call")
    if allow_private:
        return url
    address = literal_address(host)
    addresses = [address] if address is not None else _resolve(host, port, where)
    for resolved in addresses:
        reason = forbidden_reason(resolved)
        if reason:
            named = f"{host} resolves to {resolved}, " if address is None else f"{resolved} is "
            raise InputError(f"{where}: {named}{reason} address, which partner callbacks may not reach "
                             "(server.allow_private_callbacks is false)")
    return url


def _resolve(host: str, port: int | None, where: str) -> list[IPAddress]:
    lowered = host.lower().rstrip(".")
    if lowered == "localhost" or lowered.endswith(".localhost"):
        raise InputError(f"{where}: {host} is a loopback name, which partner callbacks may not reach "
                         "(server.allow_private_callbacks is false)")
    try:
        infos = socket.getaddrinfo(host, port or 443, type=socket.SOCK_STREAM)
    except (OSError, UnicodeError) as exc:
        raise InputError(f"{where}: cannot resolve {host} ({getattr(exc, 'strerror', None) or exc}); give a host "
                         "that resolves to a public address") from None
    addresses = []
    for *_, sockaddr in infos:
        try:
            addresses.append(ipaddress.ip_address(str(sockaddr[0]).split("%", 1)[0]))
        except ValueError:
            continue
    if not addresses:
        raise InputError(f"{where}: {host} resolves to no IP address")
    return addresses


class CallbackRefused(OSError):
    """A connection the guard refused (its message says which address and why)."""


def guarded_resolver(allow_private: bool) -> Any:
    """An aiohttp resolver that drops every address `forbidden_reason` refuses (all refused: a
    `CallbackRefused`), so the check holds at connection time whatever DNS says by then."""
    from aiohttp.abc import AbstractResolver
    from aiohttp.resolver import DefaultResolver

    class GuardedResolver(AbstractResolver):
        def __init__(self) -> None:
            self._inner = DefaultResolver()

        async def resolve(self, host: str, port: int = 0, family: socket.AddressFamily = socket.AF_INET) -> list[Any]:
            infos = await self._inner.resolve(host, port, family)
            if allow_private:
                return infos
            allowed, refused = [], []
            for info in infos:
                address = ipaddress.ip_address(str(info["host"]).split("%", 1)[0])
                reason = forbidden_reason(address)
                (refused if reason else allowed).append((info, address, reason))
            if not allowed:
                _, address, reason = refused[0]
                raise CallbackRefused(f"refused to connect: {host} resolves to {address}, {reason} address "
                                      "(server.allow_private_callbacks is false)")
            return [info for info, _, _ in allowed]

        async def close(self) -> None:
            await self._inner.close()

    return GuardedResolver()


def connect_refusal(url: str, allow_private: bool) -> str | None:
    """For a URL whose host is a literal address (the resolver never sees those): why the guard
    refuses to connect to it, or None."""
    if allow_private:
        return None
    try:
        host = urlsplit(url).hostname
    except ValueError:
        return "refused to connect: not a valid URL"
    address = literal_address(host or "")
    if address is None:
        return None
    reason = forbidden_reason(address)
    return f"refused to connect: {address} is {reason} address (server.allow_private_callbacks is false)" if reason else None


__all__ = ["CallbackRefused", "check_callback_url", "connect_refusal", "forbidden_reason", "guarded_resolver",
           "literal_address"]
