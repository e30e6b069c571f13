"""A callback that cannot be reached is told in plain words: the host and the operating system's
reason, never the HTTP client's internals (aiohttp says ``ssl:default`` even for http://)."""

from __future__ import annotations

import asyncio
import socket

import pytest

from leo_runtime.delivery.webhooks import DeliveryService, _network_error, _parse_url


def closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


async def attempt(url: str) -> str:
    """One POST the way `DeliveryService` sends it (its own transport and resolver); the error told."""
    service = DeliveryService(timeout=5, max_in_flight=4, allow_private=True, schedule=[1])
    try:
        await service._post(_parse_url(url), {"content-type": "application/json"}, b"{}")
    except Exception as exc:
        return _network_error(exc)
    finally:
        if service._transport is not None:
            await service._transport.aclose()
    raise AssertionError(f"{url} answered")


@pytest.mark.parametrize("scheme", ["http", "https"])
def test_a_refused_connection_names_the_host_and_the_reason(scheme: str) -> None:
    port = closed_port()
    error = asyncio.run(attempt(f"{scheme}://127.0.0.1:{port}/hook"))
    assert error == f"cannot connect to 127.0.0.1:{port}: connection refused"
    assert "ssl" not in error and "Connect call failed" not in error


def test_an_unknown_host_names_the_host() -> None:
    error = asyncio.run(attempt("http://no-such-host.invalid/hook"))
    assert error.startswith("cannot connect to no-such-host.invalid:80: ") and "ssl" not in error
