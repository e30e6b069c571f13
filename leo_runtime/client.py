"""The leo-runtime partner client: Get Object, webhook batches and streams, in one file.

This module needs only `httpx` and the standard library (it imports nothing else of
leo-runtime), so you can ``pip install leo-runtime`` or copy this file into your project.

Get an object::

    from leo_runtime.client import LeoClient

    client = LeoClient("https://leo.example.com", token="leo_...")
    item = client.get_object("inventory", "SKU-1")      # None when unknown or outside your scope
    print(item["version"], item["data"])

Consume a stream: every change of your objects, in order per key, with your own checkpoints::

    stream = client.create_stream("inventory", query={"quantity": {"lt": 5}}, partitions=4)

    def handle(records):                    # a list of change records, each with its "position"
        for record in records:
            upsert(record["key"], record["version"], record["data"])   # apply by version: replays are harmless

    client.consume(stream["id"], handle, workers=4)      # until Ctrl-C (or client.stop())

`consume` leases the partitions (one worker reads one partition at a time, across all your
processes), waits for records (long poll), calls your handler and commits the checkpoint only
after the handler returns. If the handler raises, nothing is committed and the same records are
read again; if your process dies, the next consumer starts after the last commit. Delivery is
therefore at least once: apply records by ``version`` (or skip a ``(key, version)`` you have seen).

Receive webhook batches::

    hook = client.create_webhook("inventory", "https://you.example.com/leo", interval="PT5M")
    secret = hook["secret"]                              # shown once: keep it

    # in your web framework's handler for POST /leo:
    notice = verify_webhook(secret, request.headers, request.body)   # raises WebhookVerificationError
    for record in client.fetch_batch(notice["data"]["url"]):        # streamed, one record at a time
        upsert(record["key"], record["version"], record["data"])

Every call honours ``429 Too Many Requests`` by waiting ``Retry-After`` and trying again. Errors
are `LeoAPIError` (with ``status`` and the server's ``detail``). `AsyncLeoClient` is the asyncio
twin of `LeoClient`, with the same methods to ``await``.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import email.utils
import hashlib
import hmac
import inspect
import json
import logging
import threading
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, TypeVar
from urllib.parse import parse_qs, quote, urlsplit

import httpx

try:  # decoding large pages is the client's main cost: orjson does it 2-3x faster when it is there
    from orjson import loads as _json_loads
except ImportError:  # pragma: no cover - vendored without orjson
    _json_loads = json.loads

__all__ = ["AsyncLeoClient", "LeoAPIError", "LeoClient", "WebhookVerificationError", "verify_webhook"]

T = TypeVar("T")
log = logging.getLogger("leo.client")

Record = dict[str, Any]
Handler = Callable[[list[Record]], Any]

MAX_RETRY_AFTER = 300.0
"""The longest a 429's Retry-After is obeyed (seconds); a longer one is cut to this."""


class LeoAPIError(Exception):
    """The API refused a call: ``status`` (404, 409, 410, 422, ...) and the server's ``detail``."""

    def __init__(self, status: int, detail: str, response: httpx.Response | None = None) -> None:
        super().__init__(f"{status}: {detail}")
        self.status = status
        self.detail = detail
        self.response = response


class WebhookVerificationError(Exception):
    """A webhook notification whose signature, headers or timestamp do not check out."""


# -- webhook signatures ---------------------------------------------------------------------------------
def verify_webhook(secret: str, headers: Mapping[str, str] | Any, body: bytes | str, *, tolerance: float = 300,
                   now: float | None = None) -> Any:
    """Check a webhook notification (Standard Webhooks) and return its decoded JSON body.

    ``secret`` is the webhook's ``whsec_...`` secret; ``headers`` the request's headers (any
    mapping, any case); ``body`` the raw body exactly as received (bytes: do not re-encode parsed
    JSON). The signature is ``v1,<base64 HMAC-SHA256(key, "{webhook-id}.{webhook-timestamp}.{body}")>``
    where the key is the base64-decoded part of the secret after ``whsec_``; the timestamp must be
    within `tolerance` seconds of now (a replayed old notification is refused). Raises
    `WebhookVerificationError` saying what is wrong. ``webhook-id`` is stable across retries of
    one notification: use it to ignore a notification you have already handled.
    """
    items = headers.items() if hasattr(headers, "items") else headers
    lowered = {str(name).lower(): value for name, value in items}
    msg_id, stamp, signatures = (lowered.get(name) for name in ("webhook-id", "webhook-timestamp", "webhook-signature"))
    if not (msg_id and stamp and signatures):
        raise WebhookVerificationError("missing webhook-id, webhook-timestamp or webhook-signature header")
    try:
        sent_at = int(stamp)
    except ValueError:
        raise WebhookVerificationError("webhook-timestamp is not a number of seconds") from None
    current = time.time() if now is None else now
    if abs(current - sent_at) > tolerance:
        raise WebhookVerificationError(f"webhook-timestamp is more than {tolerance:g} s away from now (a replay?)")
    raw = body.encode() if isinstance(body, str) else bytes(body)
    key_text = secret.removeprefix("whsec_")
    try:
        key = base64.b64decode(key_text + "=" * (-len(key_text) % 4), validate=True)
    except ValueError:
        raise WebhookVerificationError("the secret is not a whsec_ secret (base64 after 'whsec_')") from None
    expected = hmac.new(key, f"{msg_id}.{stamp}.".encode() + raw, hashlib.sha256).digest()
    for candidate in str(signatures).split():
        version, _, value = candidate.partition(",")
        if version != "v1":
            continue
        try:
            given = base64.b64decode(value, validate=True)
        except ValueError:
            continue
        if hmac.compare_digest(expected, given):
            try:
                return json.loads(raw)
            except ValueError:
                raise WebhookVerificationError("the body is not JSON") from None
    raise WebhookVerificationError("no webhook-signature matches: wrong secret, or the body was changed")


# -- requests, shared by both clients ------------------------------------------------------------------
@dataclass
class _Call:
    """One API call: what to send and which statuses mean success."""

    method: str
    path: str
    params: dict[str, Any] | None = None
    body: Any = None
    headers: dict[str, str] = field(default_factory=dict)
    ok: tuple[int, ...] = (200,)
    missing_is_none: bool = False  # 404 answers None (Get Object)
    timeout: float | None = None


LIST_PAGE = 1000
"""Items asked per page of a list (the API's largest page)."""


def _path(*parts: object) -> str:
    return "/".join(quote(str(part), safe="") for part in parts)


def _lease(lease_id: str | None) -> dict[str, str]:
    return {"Lease-Id": lease_id} if lease_id else {}


def _retry_after(response: httpx.Response) -> float:
    """Seconds a 429 asks to wait: delta-seconds or an HTTP date (1 s when absent or unreadable)."""
    value = response.headers.get("retry-after", "1").strip()
    try:
        seconds = float(value)
    except ValueError:
        try:
            seconds = email.utils.parsedate_to_datetime(value).timestamp() - time.time()
        except (TypeError, ValueError):
            seconds = 1.0
    return min(max(seconds, 0.0), MAX_RETRY_AFTER)


def _next_page(call: _Call, response: httpx.Response) -> _Call | None:
    """The call for the page after `response` (its ``Link: <...>; rel="next"``), or None. Only
    the cursor is taken from the link: the call goes where this one went, with the same token."""
    link = response.links.get("next", {}).get("url")
    cursor = parse_qs(urlsplit(link).query).get("cursor", [None])[0] if link else None
    if cursor is None:
        return None
    return _Call(call.method, call.path, params={**(call.params or {}), "cursor": cursor}, headers=call.headers,
                 ok=call.ok, timeout=call.timeout)


def _result(call: _Call, response: httpx.Response) -> Any:
    if response.status_code in call.ok:
        return _json_loads(response.content) if response.content else None
    if call.missing_is_none and response.status_code == 404:
        return None
    try:
        detail = response.json().get("detail") or response.reason_phrase
    except ValueError:
        detail = response.text[:500] or response.reason_phrase
    raise LeoAPIError(response.status_code, str(detail), response)


class _API:
    """The API's calls as `_Call`s, one per client method: each client sends them its own way
    (blocking or awaited)."""

    @staticmethod
    def get_object(object_type: str, key: str) -> _Call:
        return _Call("GET", f"/v1/objects/{_path(object_type)}/{_path(key)}", missing_is_none=True)

    @staticmethod
    def create_webhook(object_type: str, callback_url: str, interval: str | float, query: Mapping[str, Any] | None,
                       mode: str) -> _Call:
        body: dict[str, Any] = {"object_type": object_type, "callback_url": callback_url, "interval": interval,
                                "mode": mode}
        if query is not None:
            body["query"] = dict(query)
        return _Call("POST", "/v1/webhooks", body=body, ok=(201,))

    @staticmethod
    def true_up(webhook_id: str) -> _Call:
        return _Call("POST", f"/v1/webhooks/{_path(webhook_id)}/true-up", ok=(202,))

    @staticmethod
    def list_batches(webhook_id: str, status: str, limit: int) -> _Call:
        return _Call("GET", f"/v1/webhooks/{_path(webhook_id)}/batches", params={"status": status, "limit": limit})

    @staticmethod
    def replay(webhook_id: str, batch_ids: Sequence[str] | None) -> _Call:
        body = {"batch_ids": list(batch_ids)} if batch_ids is not None else None
        return _Call("POST", f"/v1/webhooks/{_path(webhook_id)}/replay", body=body, ok=(202,))

    @staticmethod
    def rotate_secret(webhook_id: str, expire_old_after: int) -> _Call:
        return _Call("POST", f"/v1/webhooks/{_path(webhook_id)}/rotate-secret",
                     body={"expire_old_after": expire_old_after})

    @staticmethod
    def create_stream(object_type: str, query: Mapping[str, Any] | None, partitions: int, start_at: str) -> _Call:
        body: dict[str, Any] = {"object_type": object_type, "partitions": partitions, "start_at": start_at}
        if query is not None:
            body["query"] = dict(query)
        return _Call("POST", "/v1/streams", body=body, ok=(201,))

    @staticmethod
    def get_stream(stream_id: str) -> _Call:
        return _Call("GET", f"/v1/streams/{_path(stream_id)}")

    @staticmethod
    def list_streams() -> _Call:
        return _Call("GET", "/v1/streams", params={"limit": LIST_PAGE})

    @staticmethod
    def delete_stream(stream_id: str) -> _Call:
        return _Call("DELETE", f"/v1/streams/{_path(stream_id)}", ok=(204,))

    @staticmethod
    def reset_stream(stream_id: str, to: str, partitions: Sequence[int] | None) -> _Call:
        body: dict[str, Any] = {"to": to}
        if partitions is not None:
            body["partitions"] = list(partitions)
        return _Call("POST", f"/v1/streams/{_path(stream_id)}/reset", body=body)

    @staticmethod
    def read(stream_id: str, partition: int, after: str | None, limit: int, wait: float, lease_id: str | None) -> _Call:
        params: dict[str, Any] = {"limit": limit, "wait": wait}
        if after is not None:
            params["after"] = after
        return _Call("GET", _path("v1", "streams", stream_id, "partitions", partition, "records"), params=params,
                     headers=_lease(lease_id), timeout=wait + 30)

    @staticmethod
    def commit(stream_id: str, partition: int, position: str, generation: int, lease_id: str | None) -> _Call:
        return _Call("PUT", f"/v1/streams/{_path(stream_id)}/partitions/{partition}/checkpoint",
                     body={"position": position, "generation": generation}, headers=_lease(lease_id), ok=(204,))

    @staticmethod
    def lease(stream_id: str, partition: int, ttl_seconds: float, renew: str | None) -> _Call:
        return _Call("POST", f"/v1/streams/{_path(stream_id)}/partitions/{partition}/lease",
                     body={"ttl_seconds": ttl_seconds}, headers=_lease(renew))

    @staticmethod
    def release(stream_id: str, partition: int, lease_id: str) -> _Call:
        return _Call("DELETE", f"/v1/streams/{_path(stream_id)}/partitions/{partition}/lease", headers=_lease(lease_id),
                     ok=(204,))


class _Calls:
    """Where the calls go and with which token (the headers, and batch URLs checked)."""

    def __init__(self, base_url: str, token: str) -> None:
        self.base_url = base_url.rstrip("/")
        self.token = token

    def headers(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.token}", "Accept": "application/json"}

    def batch_url(self, url: str) -> str:
        """A batch URL from a notification, refused unless it points at this API (the token goes
        with the request: a forged notification must not send it elsewhere)."""
        if not (url.startswith(self.base_url + "/") or url.startswith("/")):
            raise ValueError(f"batch URL {url[:200]!r} is not on {self.base_url}; refusing to send the token there")
        return url


# -- the blocking client -----------------------------------------------------------------------------------
class LeoClient:
    """The partner API, blocking (see the module docstring for a tour).

    ``base_url`` is where leo-runtime's API answers (``https://leo.example.com``), ``token`` your
    partner token. ``max_retries`` bounds how often one call is retried after a 429. Use it as a
    context manager, or call `close` when done.
    """

    def __init__(self, base_url: str, token: str, *, timeout: float = 30.0, max_retries: int = 5,
                 transport: httpx.BaseTransport | None = None) -> None:
        self._calls = _Calls(base_url, token)
        self.base_url = self._calls.base_url
        self.token = token
        self.max_retries = max_retries
        self._timeout = timeout
        self._http = httpx.Client(base_url=self.base_url, headers=self._calls.headers(), timeout=timeout,
                                  transport=transport)
        self._consumer: AsyncLeoClient | None = None
        self._consumer_lock = threading.Lock()
        self._stop_asked = False

    def __enter__(self) -> LeoClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        """Close the connections."""
        self._http.close()

    def _request(self, call: _Call) -> httpx.Response:
        for attempt in range(self.max_retries + 1):
            response = self._http.request(call.method, call.path, params=call.params, json=call.body,
                                          headers=call.headers, timeout=call.timeout or self._timeout)
            if response.status_code == 429 and attempt < self.max_retries:
                time.sleep(_retry_after(response))
                continue
            return response
        raise AssertionError("unreachable")

    def _send(self, call: _Call) -> Any:
        return _result(call, self._request(call))

    def _send_all(self, call: _Call) -> list[Any]:
        """Every item of a paged list, page after page."""
        items: list[Any] = []
        following: _Call | None = call
        while following is not None:
            response = self._request(following)
            items.extend(_result(following, response))
            following = _next_page(following, response)
        return items

    # objects and webhooks
    def get_object(self, object_type: str, key: str) -> Record | None:
        """The current state of one object (``{object_type, key, version, changed_at, data}``), or
        None when it is unknown, deleted or outside your scope. At most 10 calls/s are served
        (429s are waited out): for many objects, use a stream or webhook batches instead."""
        return self._send(_API.get_object(object_type, key))

    def create_webhook(self, object_type: str, callback_url: str, interval: str | float = "PT5M", *,
                       query: Mapping[str, Any] | None = None, mode: str = "changes") -> Record:
        """Register a webhook: every `interval` (seconds or ``PT5M``) the matching changes are sealed
        into one batch and a signed notification holding its URL is POSTed to `callback_url`.
        ``mode="all"`` sends every matching object each time. The answer's ``secret`` is shown only
        now: keep it for `verify_webhook`."""
        return self._send(_API.create_webhook(object_type, callback_url, interval, query, mode))

    def true_up(self, webhook_id: str) -> None:
        """Ask for a true-up: the webhook's next batch holds every matching object (``op: snapshot``)."""
        self._send(_API.true_up(webhook_id))

    def list_batches(self, webhook_id: str, *, status: str = "all", limit: int = 100) -> list[Record]:
        """The webhook's retained batches, newest first (``status="unfetched"``: never downloaded),
        each with its URL and its notification's delivery."""
        return self._send(_API.list_batches(webhook_id, status, limit))

    def replay(self, webhook_id: str, batch_ids: Sequence[str] | None = None) -> int:
        """Notify again every batch not downloaded yet, or exactly `batch_ids` (all or nothing:
        `LeoAPIError` 404 or 410 when one is not a retained batch of the webhook, and then nothing
        is sent). Returns how many batches are notified again."""
        return self._send(_API.replay(webhook_id, batch_ids))["replayed"]

    def rotate_secret(self, webhook_id: str, expire_old_after: int = 86400) -> Record:
        """A new signing secret (``secret``, shown only now); the old one signs notifications too
        for `expire_old_after` seconds, so receivers can switch without missing one."""
        return self._send(_API.rotate_secret(webhook_id, expire_old_after))

    def fetch_batch(self, url: str) -> Iterator[Record]:
        """The records of a batch (the ``url`` of a notification), one at a time as they download:
        a large batch never sits in memory. Raises `LeoAPIError` (410 once retention passed) and
        ValueError for a URL that is not on this API."""
        target = self._calls.batch_url(url)
        for attempt in range(self.max_retries + 1):
            with self._http.stream("GET", target, headers={"Accept": "application/x-ndjson",
                                                           "Accept-Encoding": "gzip"}) as response:
                if response.status_code == 429 and attempt < self.max_retries:
                    time.sleep(_retry_after(response))
                    continue
                if response.status_code != 200:
                    response.read()
                    _result(_Call("GET", target), response)
                count = 0
                for line in response.iter_lines():
                    if line.strip():
                        count += 1
                        yield _json_loads(line)
                _check_count(response, count)
                return

    # streams
    def create_stream(self, object_type: str, *, query: Mapping[str, Any] | None = None, partitions: int = 1,
                      start_at: str = "now") -> Record:
        """A stream of the type's changes that match `query` (and your scope). ``partitions`` (1-64)
        lets that many consumers read in parallel; records of one key stay in order in one
        partition. ``start_at``: ``now``, ``earliest`` or an RFC 3339 time."""
        return self._send(_API.create_stream(object_type, query, partitions, start_at))

    def get_stream(self, stream_id: str) -> Record:
        """A stream with its generation and, per partition, checkpoint, head and lag."""
        return self._send(_API.get_stream(stream_id))

    def list_streams(self) -> list[Record]:
        """Your streams, oldest first (every page of them)."""
        return self._send_all(_API.list_streams())

    def delete_stream(self, stream_id: str) -> None:
        """Delete a stream (it stops gathering changes at once)."""
        self._send(_API.delete_stream(stream_id))

    def reset_stream(self, stream_id: str, to: str, *, partitions: Sequence[int] | None = None) -> Record:
        """Move checkpoints to just before the first record at or after `to` (``earliest``,
        ``latest``, an RFC 3339 time or ``-PT1H``): consumers replay from there. The stream's
        generation grows, so commits of records read before the reset are refused."""
        return self._send(_API.reset_stream(stream_id, to, partitions))

    def read(self, stream_id: str, partition: int, *, after: str | None = None, limit: int = 1000, wait: float = 0,
             lease_id: str | None = None) -> Record:
        """One read: ``{records, next_position, head, generation}``. Without `after` it starts after
        the checkpoint; with nothing there it waits up to `wait` seconds (max 60) for a record."""
        return self._send(_API.read(stream_id, partition, after, limit, wait, lease_id))

    def commit(self, stream_id: str, partition: int, position: str, generation: int, *,
               lease_id: str | None = None) -> None:
        """Move the partition's checkpoint to `position` (records up to it are done)."""
        self._send(_API.commit(stream_id, partition, position, generation, lease_id))

    def lease(self, stream_id: str, partition: int, ttl_seconds: float = 30, *, renew: str | None = None) -> Record:
        """Lease a partition (``{lease_id, expires_at, ...}``), or renew your lease `renew`."""
        return self._send(_API.lease(stream_id, partition, ttl_seconds, renew))

    def release(self, stream_id: str, partition: int, lease_id: str) -> None:
        """Give a lease up so another consumer can take the partition at once."""
        self._send(_API.release(stream_id, partition, lease_id))

    def consume(self, stream_id: str, handler: Handler, workers: int = 1, *, limit: int = 1000, wait: float = 20,
                lease_seconds: float = 30) -> None:
        """Process a stream until Ctrl-C or `stop()`: ``handler(records)`` is called with up to
        `limit` records of one partition at a time, and the partition's checkpoint is committed
        only after it returns.

        - ``workers`` partitions are processed at once (each worker leases its share of the
          partitions; several processes may consume the same stream, each partition is read by
          one of them at a time). With more workers than partitions the extra ones wait.
        - The handler runs in a worker thread; with ``workers > 1`` it is called from several
          threads at once (one per partition), so guard what it shares.
        - If it raises, nothing is committed and the same records are read again (after a pause
          that grows with each failure). Make it idempotent: apply records by ``version``.
        - Ctrl-C (or `stop()` from any thread, the handler included) stops cleanly: reads in
          progress are dropped, a handler in progress finishes and its records are committed,
          leases are given back, and `consume` returns.
        - Lost connections are retried with backoff; a 410 (records older than retention) is
          raised: reset the stream, then consume again.
        """
        async def run() -> None:
            async with AsyncLeoClient(self.base_url, self.token, timeout=self._timeout,
                                      max_retries=self.max_retries) as consumer:
                with self._consumer_lock:
                    self._consumer = consumer
                    stop_now = self._stop_asked
                if stop_now:
                    return
                try:
                    await consumer.consume(stream_id, handler, workers, limit=limit, wait=wait,
                                           lease_seconds=lease_seconds)
                finally:
                    with self._consumer_lock:
                        self._consumer = None

        self._stop_asked = False
        with contextlib.suppress(KeyboardInterrupt, asyncio.CancelledError):
            asyncio.run(run())

    def stop(self) -> None:
        """Make a running `consume` stop cleanly (thread-safe; the handler may call it)."""
        with self._consumer_lock:
            self._stop_asked = True
            consumer = self._consumer
        if consumer is not None:
            consumer.stop()


def _check_count(response: httpx.Response, count: int) -> None:
    expected = response.headers.get("leo-record-count")
    if expected is not None and expected.isdigit() and int(expected) != count:
        raise LeoAPIError(response.status_code, f"the batch was cut short: {count} of {expected} records arrived",
                          response)


# -- the asyncio client ---------------------------------------------------------------------------------
@dataclass
class _Partition:
    """A worker's view of one partition: its lease, where to read next, and its failures."""

    number: int
    lease_id: str | None = None
    after: str | None = None  # None: from the checkpoint
    failures: int = 0


class AsyncLeoClient:
    """The asyncio twin of `LeoClient`: the same methods, to ``await``; `fetch_batch` is an async
    iterator; `consume` takes a plain or an ``async def`` handler (a plain one runs in a thread)."""

    def __init__(self, base_url: str, token: str, *, timeout: float = 30.0, max_retries: int = 5,
                 transport: httpx.AsyncBaseTransport | None = None) -> None:
        self._calls = _Calls(base_url, token)
        self.base_url = self._calls.base_url
        self.token = token
        self.max_retries = max_retries
        self._timeout = timeout
        self._http = httpx.AsyncClient(base_url=self.base_url, headers=self._calls.headers(), timeout=timeout,
                                       transport=transport, limits=httpx.Limits(max_connections=200))
        self._loop: asyncio.AbstractEventLoop | None = None
        self._workers: list[asyncio.Task[None]] = []
        self._stopping = False

    async def __aenter__(self) -> AsyncLeoClient:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        """Close the connections."""
        await self._http.aclose()

    async def _request(self, call: _Call) -> httpx.Response:
        for attempt in range(self.max_retries + 1):
            response = await self._http.request(call.method, call.path, params=call.params, json=call.body,
                                                headers=call.headers, timeout=call.timeout or self._timeout)
            if response.status_code == 429 and attempt < self.max_retries:
                await asyncio.sleep(_retry_after(response))
                continue
            return response
        raise AssertionError("unreachable")

    async def _send(self, call: _Call) -> Any:
        return _result(call, await self._request(call))

    async def _send_all(self, call: _Call) -> list[Any]:
        """See `LeoClient._send_all`."""
        items: list[Any] = []
        following: _Call | None = call
        while following is not None:
            response = await self._request(following)
            items.extend(_result(following, response))
            following = _next_page(following, response)
        return items

    async def get_object(self, object_type: str, key: str) -> Record | None:
        """See `LeoClient.get_object`."""
        return await self._send(_API.get_object(object_type, key))

    async def create_webhook(self, object_type: str, callback_url: str, interval: str | float = "PT5M", *,
                             query: Mapping[str, Any] | None = None, mode: str = "changes") -> Record:
        """See `LeoClient.create_webhook`."""
        return await self._send(_API.create_webhook(object_type, callback_url, interval, query, mode))

    async def true_up(self, webhook_id: str) -> None:
        """See `LeoClient.true_up`."""
        await self._send(_API.true_up(webhook_id))

    async def list_batches(self, webhook_id: str, *, status: str = "all", limit: int = 100) -> list[Record]:
        """See `LeoClient.list_batches`."""
        return await self._send(_API.list_batches(webhook_id, status, limit))

    async def replay(self, webhook_id: str, batch_ids: Sequence[str] | None = None) -> int:
        """See `LeoClient.replay`."""
        return (await self._send(_API.replay(webhook_id, batch_ids)))["replayed"]

    async def rotate_secret(self, webhook_id: str, expire_old_after: int = 86400) -> Record:
        """See `LeoClient.rotate_secret`."""
        return await self._send(_API.rotate_secret(webhook_id, expire_old_after))

    async def fetch_batch(self, url: str) -> AsyncIterator[Record]:
        """See `LeoClient.fetch_batch` (``async for record in client.fetch_batch(url)``)."""
        target = self._calls.batch_url(url)
        for attempt in range(self.max_retries + 1):
            async with self._http.stream("GET", target, headers={"Accept": "application/x-ndjson",
                                                                 "Accept-Encoding": "gzip"}) as response:
                if response.status_code == 429 and attempt < self.max_retries:
                    await asyncio.sleep(_retry_after(response))
                    continue
                if response.status_code != 200:
                    await response.aread()
                    _result(_Call("GET", target), response)
                count = 0
                async for line in response.aiter_lines():
                    if line.strip():
                        count += 1
                        yield _json_loads(line)
                _check_count(response, count)
                return

    async def create_stream(self, object_type: str, *, query: Mapping[str, Any] | None = None, partitions: int = 1,
                            start_at: str = "now") -> Record:
        """See `LeoClient.create_stream`."""
        return await self._send(_API.create_stream(object_type, query, partitions, start_at))

    async def get_stream(self, stream_id: str) -> Record:
        """See `LeoClient.get_stream`."""
        return await self._send(_API.get_stream(stream_id))

    async def list_streams(self) -> list[Record]:
        """See `LeoClient.list_streams`."""
        return await self._send_all(_API.list_streams())

    async def delete_stream(self, stream_id: str) -> None:
        """See `LeoClient.delete_stream`."""
        await self._send(_API.delete_stream(stream_id))

    async def reset_stream(self, stream_id: str, to: str, *, partitions: Sequence[int] | None = None) -> Record:
        """See `LeoClient.reset_stream`."""
        return await self._send(_API.reset_stream(stream_id, to, partitions))

    async def read(self, stream_id: str, partition: int, *, after: str | None = None, limit: int = 1000,
                   wait: float = 0, lease_id: str | None = None) -> Record:
        """See `LeoClient.read`."""
        return await self._send(_API.read(stream_id, partition, after, limit, wait, lease_id))

    async def commit(self, stream_id: str, partition: int, position: str, generation: int, *,
                     lease_id: str | None = None) -> None:
        """See `LeoClient.commit`."""
        await self._send(_API.commit(stream_id, partition, position, generation, lease_id))

    async def lease(self, stream_id: str, partition: int, ttl_seconds: float = 30, *,
                    renew: str | None = None) -> Record:
        """See `LeoClient.lease`."""
        return await self._send(_API.lease(stream_id, partition, ttl_seconds, renew))

    async def release(self, stream_id: str, partition: int, lease_id: str) -> None:
        """See `LeoClient.release`."""
        await self._send(_API.release(stream_id, partition, lease_id))

    # -- consuming --------------------------------------------------------------------------------------
    def stop(self) -> None:
        """Make a running `consume` stop cleanly (thread-safe)."""
        self._stopping = True
        loop = self._loop
        if loop is not None and not loop.is_closed():
            with contextlib.suppress(RuntimeError):  # the loop closed meanwhile: consume is over
                loop.call_soon_threadsafe(self._cancel_workers)

    def _cancel_workers(self) -> None:
        for task in self._workers:
            task.cancel()

    async def consume(self, stream_id: str, handler: Handler, workers: int = 1, *, limit: int = 1000,
                      wait: float = 20, lease_seconds: float = 30) -> None:
        """See `LeoClient.consume`. Returns after `stop()`; when the task running it is cancelled,
        a handler in progress finishes and commits first, then the cancellation goes on."""
        if workers < 1:
            raise ValueError("workers must be 1 or more")
        self._loop = asyncio.get_running_loop()
        self._stopping = False
        stream = await self.get_stream(stream_id)
        if self._stopping:  # stop() came while the stream was read: nothing is leased yet
            return
        numbers = [part["partition"] for part in stream["partitions"]]
        shares = [numbers[index::workers] for index in range(min(workers, len(numbers)))]
        call = _as_coroutine(handler)
        wait = min(wait, lease_seconds / 3)  # a lease is renewed between reads
        self._workers = [
            asyncio.create_task(self._work(stream_id, [_Partition(n) for n in share], call, limit, wait, lease_seconds),
                                name=f"leo-consumer-{index}")
            for index, share in enumerate(shares)
        ]
        try:
            await asyncio.gather(*self._workers)
        except asyncio.CancelledError:
            # Every worker was cancelled once (by stop(), or with this task): cancelling them
            # again, or this task once more, must not cut short what they finish on the way out
            # (a commit, giving leases back).
            with contextlib.suppress(asyncio.CancelledError):
                await _finish(asyncio.gather(*self._workers, return_exceptions=True))
            if not self._stopping:
                raise
        except BaseException:
            for task in self._workers:
                task.cancel()
            await asyncio.gather(*self._workers, return_exceptions=True)
            raise
        finally:
            self._workers = []

    async def _work(self, stream_id: str, partitions: list[_Partition], handler: Callable[[list[Record]], Awaitable[Any]],
                    limit: int, wait: float, lease_seconds: float) -> None:
        """One worker: lease its partitions, read them in turn, hand records over, commit."""
        renewing = asyncio.create_task(self._renew(stream_id, partitions, lease_seconds))
        busy = True
        try:
            while True:
                held = [part for part in partitions if part.lease_id or await self._take(stream_id, part, lease_seconds)]
                if not held:  # every partition of this worker is read elsewhere: try again later
                    await asyncio.sleep(min(lease_seconds / 3, 5))
                    continue
                wait_each = wait if len(held) == 1 else (0 if busy else min(wait, 1.0) / len(held))
                busy = False
                for part in held:
                    busy |= await self._step(stream_id, part, handler, limit, wait_each)
        finally:
            # One unit that a further cancellation cannot cut (a consume cancelled again and again
            # cancels its workers again): waiting for the renewals to stop, then giving leases back.
            renewing.cancel()
            await _finish(self._give_back(stream_id, partitions, after=renewing))

    async def _step(self, stream_id: str, part: _Partition, handler: Callable[[list[Record]], Awaitable[Any]],
                    limit: int, wait: float) -> bool:
        """Read one page of a partition and process it; True when it held records."""
        try:
            page = await self.read(stream_id, part.number, after=part.after, limit=limit, wait=wait,
                                   lease_id=part.lease_id)
        except LeoAPIError as exc:
            if exc.status == 409:  # the lease expired and was taken: read from the checkpoint once leased again
                log.warning("stream %s partition %d: %s", stream_id, part.number, exc.detail)
                part.lease_id = part.after = None
                return False
            if exc.status in (404, 410, 401, 403, 422):
                raise
            await self._pause(part, exc)
            return False
        except httpx.TransportError as exc:
            await self._pause(part, exc)
            return False
        if not page["records"]:
            part.after = page["next_position"]
            return False
        # Once records are handed over, they are processed and committed even if the consumer is
        # stopped meanwhile; the stop waits for that, then goes on.
        failure = await _finish(self._process(stream_id, part, handler, page))
        if failure is not None:
            await self._pause(part, failure)  # outside the shield: a stop does not wait for the pause
        return True

    async def _process(self, stream_id: str, part: _Partition, handler: Callable[[list[Record]], Awaitable[Any]],
                       page: Record) -> Exception | None:
        """Call the handler, then commit; the handler's error when it failed (nothing committed)."""
        try:
            await handler(page["records"])
        except Exception as exc:
            part.after = None  # read again from the checkpoint: the same records come back
            log.error("stream %s partition %d: the handler failed on %d record(s); they will be read again: %r",
                      stream_id, part.number, len(page["records"]), exc)
            return exc
        for attempt in range(5):
            try:
                await self.commit(stream_id, part.number, page["next_position"], page["generation"],
                                  lease_id=part.lease_id)
                part.after = page["next_position"]
                part.failures = 0
                return None
            except LeoAPIError as exc:
                if exc.status == 409:  # reset meanwhile, or the lease was lost: read from the checkpoint
                    log.warning("stream %s partition %d: commit refused (%s); reading from the checkpoint", stream_id,
                                part.number, exc.detail)
                    part.after = None
                    if "lease" in exc.detail.lower():
                        part.lease_id = None
                    return None
                raise
            except httpx.TransportError as exc:
                log.warning("stream %s partition %d: commit failed (%r), retrying", stream_id, part.number, exc)
                await asyncio.sleep(min(0.2 * 2 ** attempt, 5))
        part.after = None  # the commit never went through: the records will be read again
        return None

    async def _pause(self, part: _Partition, error: BaseException) -> None:
        part.failures += 1
        delay = min(0.5 * 2 ** (part.failures - 1), 30.0)
        log.warning("stream partition %d: %r; retrying in %.1fs", part.number, error, delay)
        await asyncio.sleep(delay)

    async def _take(self, stream_id: str, part: _Partition, lease_seconds: float) -> bool:
        async def take() -> None:  # a lease granted while the consumer stops is recorded, so it is given back
            held = await self.lease(stream_id, part.number, lease_seconds)
            part.lease_id, part.after = held["lease_id"], None

        try:
            await _finish(take())
        except LeoAPIError as exc:
            if exc.status == 409:
                return False
            raise
        except httpx.TransportError as exc:
            await self._pause(part, exc)
            return False
        return True

    async def _renew(self, stream_id: str, partitions: list[_Partition], lease_seconds: float) -> None:
        """Renew the worker's leases every third of their time to live (the handler may be slow)."""
        while True:
            await asyncio.sleep(lease_seconds / 3)
            for part in partitions:
                if part.lease_id is None:
                    continue
                try:
                    await self.lease(stream_id, part.number, lease_seconds, renew=part.lease_id)
                except LeoAPIError as exc:
                    if exc.status == 409:
                        part.lease_id = part.after = None
                except httpx.TransportError:
                    pass  # tried again at the next round; the lease outlives two of them

    async def _give_back(self, stream_id: str, partitions: list[_Partition], *, after: asyncio.Task[None]) -> None:
        """Give the partitions' leases back once `after` (the renewals, cancelled) has ended."""
        await asyncio.gather(after, return_exceptions=True)
        for part in partitions:
            if part.lease_id is not None:
                with contextlib.suppress(LeoAPIError, httpx.HTTPError):
                    await asyncio.wait_for(self.release(stream_id, part.number, part.lease_id), 5)
                part.lease_id = None


async def _finish(work: Awaitable[T]) -> T:
    """Await `work` to its end even when the caller is cancelled meanwhile (once or again), then
    let the cancellation go on: what must not be cut short (processing records and committing
    them, taking or giving back a lease) is never left half done by a stop."""
    task = asyncio.ensure_future(work)
    cancelled = False
    while not task.done():
        try:
            await asyncio.wait((task,))
        except asyncio.CancelledError:
            cancelled = True
    if cancelled:
        if not task.cancelled():
            task.exception()  # seen: the stop is what the caller hears about
        raise asyncio.CancelledError
    return task.result()


def _as_coroutine(handler: Handler) -> Callable[[list[Record]], Awaitable[Any]]:
    """An ``async def`` handler as it is; a plain one run in a worker thread (the loop stays free)."""
    if inspect.iscoroutinefunction(handler):
        return handler  # type: ignore[return-value]

    async def in_thread(records: list[Record]) -> Any:
        result = await asyncio.to_thread(handler, records)
        if inspect.isawaitable(result):
            return await result
        return result

    return in_thread
