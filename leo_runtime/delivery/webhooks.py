"""Webhook batches: the pieces every webhook bot shares (README, "Webhook batches").

- Identity: webhook ids, ``whsec_`` secrets, batch URLs, intervals and their bounds.
- Matching: a webhook as a `Subscription` (its query AND its partner's scope).
- Snapshots: the change record of an object as a true-up line (``op: snapshot``).
- Notifications: the thin ``batch.ready`` body and its Standard Webhooks signature
  (``webhook-id`` = the batch id, stable across retries; ``webhook-timestamp``;
  ``webhook-signature: v1,<base64 HMAC-SHA256>``, and after a secret rotation a second one, made
  with the old secret, until it expires).
- Partners' own controls: rotating a secret, replaying chosen batches.
- Retries: what an attempt's answer means (2xx delivered; 410 gone; anything else, a timeout or a
  refused connection retried on ``webhooks.retry_schedule``, ``Retry-After`` honoured).
- `DeliveryService`: the asyncio engine that POSTs, with bounded concurrency across webhooks and
  one notification at a time per webhook, on an event loop of its own (see its docstring).

The sealing itself is the store's (`Store.commit_run` applies the ops the bots yield), so the
partner API's webhooks and the ``batcher``/``webhook_sender`` bots of pipelines.yaml share it.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import logging
import math
import os
import re
import secrets
import threading
import time
from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from email.utils import parsedate_to_datetime
from typing import TYPE_CHECKING, Any

import orjson

from .. import __version__, meters
from ..errors import InputError, LeoError, NotFound, QuotaExceeded
from ..safetext import shown
from ..store import Store
from ..store.base import ObjectRecord
from ..store.base_webhooks import BatchListing, DeliveryOutcome, DueDelivery, WebhookRecord, WebhookStatusRow
from ..timeutil import format_time, now_ms, parse_duration
from .callbacks import CallbackRefused, connect_refusal, guarded_resolver
from .subscriptions import Subscription, compile_subscription

log = logging.getLogger("leo.webhooks")

WEBHOOK_PREFIX = "wh_"
SECRET_PREFIX = "whsec_"
BOT_PREFIX = "bot:"
"""Ids of batcher bots' subscriptions in the webhooks table: ``bot:<bot id>``."""
MIN_INTERVAL_SECONDS = 1
MAX_INTERVAL_SECONDS = 7 * 86400
MAX_RETRY_AFTER_SECONDS = 86400
PARTNER_SENDER = ""
"""The destination name of a partner webhook's own callback in the deliveries table."""
ERROR_TEXT_LIMIT = 300
DEFAULT_EXPIRE_OLD_AFTER = 86400
"""Seconds the old secret keeps signing after a rotation, unless asked otherwise (Svix's 24 hours)."""
MAX_EXPIRE_OLD_AFTER = 7 * 86400
MAX_REPLAY_BATCHES = 1000
"""Batch ids one chosen replay may name (the batches list shows at most as many at once)."""

if TYPE_CHECKING:
    import asyncio


# -- identity ------------------------------------------------------------------------------------
def new_webhook_id() -> str:
    """A webhook id: ``wh_`` and 16 URL-safe random characters."""
    return WEBHOOK_PREFIX + secrets.token_urlsafe(12)


def new_secret() -> str:
    """A signing secret as Standard Webhooks writes them: ``whsec_`` and base64 of 32 random bytes."""
    return SECRET_PREFIX + base64.b64encode(os.urandom(32)).decode()


def secret_key(secret: str) -> bytes:
    """The HMAC key of a secret: the base64-decoded part of a ``whsec_`` secret, or the UTF-8
    bytes of any other text (a secret an integrator chose for a webhook_sender bot)."""
    if secret.startswith(SECRET_PREFIX):
        try:
            return base64.b64decode(secret[len(SECRET_PREFIX):], validate=True)
        except ValueError:
            pass
    return secret.encode()


def parse_interval(value: Any, where: str = "interval") -> int:
    """An interval in milliseconds from seconds (a number) or a duration (``PT5M``, ``5m``),
    between `MIN_INTERVAL_SECONDS` and `MAX_INTERVAL_SECONDS`; `InputError` naming `where`."""
    if isinstance(value, bool) or not isinstance(value, int | float | str):
        raise InputError(f"{where}: give seconds (a number) or an ISO 8601 duration like 'PT5M'")
    try:
        seconds = parse_duration(value, what=where)
    except ValueError as exc:
        raise InputError(f"{where}: {exc}") from None
    if not math.isfinite(seconds) or not MIN_INTERVAL_SECONDS <= seconds <= MAX_INTERVAL_SECONDS:
        raise InputError(f"{where}: must be between {MIN_INTERVAL_SECONDS} second and {MAX_INTERVAL_SECONDS // 86400} "
                         f"days (P7D), not {value!r}")
    return round(seconds * 1000)


def check_all_mode_interval(mode: str, interval_ms: int, minimum_seconds: float) -> None:
    """`QuotaExceeded` when a ``mode: all`` webhook's interval is under ``server.limits.all_mode_min_interval``:
    each of its intervals seals a snapshot of every matching object."""
    if mode == "all" and interval_ms < minimum_seconds * 1000:
        raise QuotaExceeded("all_mode_min_interval", minimum_seconds,
                            f"a webhook with mode all seals a snapshot of every matching object each interval, so its "
                            f"interval is at least {minimum_seconds:g} s (PT{minimum_seconds:g}S), not "
                            f"{interval_seconds(interval_ms):g} s")


def interval_seconds(ms: int) -> int | float:
    """An interval as the API shows it: seconds, whole when they are."""
    return ms // 1000 if ms % 1000 == 0 else ms / 1000


def router_id(object_type: str) -> str:
    """The system bot that routes `object_type`'s changes to partner webhooks."""
    return f"webhooks:{object_type}"


def batch_url(base_url: str, batch_id: str) -> str:
    """Where a batch is downloaded: ``{server.public_url}/v1/batches/{id}``."""
    return f"{base_url.rstrip('/')}/v1/batches/{batch_id}"


def public_webhook_id(webhook_id: str) -> str:
    """The id a notification names: a partner webhook's id, or a batcher bot's own id."""
    return webhook_id.removeprefix(BOT_PREFIX)


# -- matching and snapshots ---------------------------------------------------------------------
def subscription_of(webhook: WebhookRecord, scope_json: str | None) -> Subscription:
    """A webhook as a subscription: its query AND its partner's scope."""
    query = orjson.loads(webhook.query_json) if webhook.query_json else None
    return compile_subscription(webhook.id, webhook.object_type or "", query, scope_json)


def snapshot_line(record: ObjectRecord) -> str:
    """A true-up line: the object's change record at its current version with ``op: snapshot``
    and no changed fields (its stored JSON spliced in untouched)."""
    return (
        f'{{"object_type":{orjson.dumps(record.object_type).decode()},"key":{orjson.dumps(record.key).decode()},'
        f'"op":"snapshot","version":{record.version},"changed_at":"{format_time(record.changed_at)}",'
        f'"changed_fields":[],"data":{record.data_json}}}'
    )


# -- notifications ------------------------------------------------------------------------------
def notification_body(webhook_id: str, batch_id: str, url: str, records: int, true_up: bool, created_at: int) -> bytes:
    """The thin ``batch.ready`` notification (compact JSON; the same bytes on every retry)."""
    return orjson.dumps({
        "type": "batch.ready",
        "timestamp": format_time(created_at),
        "data": {"webhook_id": public_webhook_id(webhook_id), "batch_id": batch_id, "url": url, "records": records,
                 "true_up": true_up},
    })


def sign(key: bytes, message_id: str, timestamp: int, body: bytes) -> str:
    """``v1,<base64 HMAC-SHA256(key, "{id}.{timestamp}.{body}")>`` (Standard Webhooks)."""
    digest = hmac.new(key, f"{message_id}.{timestamp}.".encode() + body, hashlib.sha256).digest()
    return "v1," + base64.b64encode(digest).decode()


def signed_headers(keys: bytes | Sequence[bytes], message_id: str, body: bytes,
                   timestamp: int | None = None) -> dict[str, str]:
    """The headers of one attempt (the timestamp is the attempt's: receivers check its age). With
    several keys (a rotation: the new secret's first), ``webhook-signature`` holds one signature
    per key, separated by spaces, as Standard Webhooks allows: a receiver accepts any that matches."""
    stamp = int(time.time()) if timestamp is None else timestamp
    signing = (keys,) if isinstance(keys, bytes) else keys
    return {
        "content-type": "application/json",
        "user-agent": f"leo-runtime/{__version__}",
        "webhook-id": message_id,
        "webhook-timestamp": str(stamp),
        "webhook-signature": " ".join(sign(key, message_id, stamp, body) for key in signing),
    }


# -- retries --------------------------------------------------------------------------------------
def parse_retry_after(value: str | None, now: float | None = None) -> float | None:
    """Seconds a ``Retry-After`` header asks for (delta-seconds or an HTTP date), at most a day."""
    if not value:
        return None
    text = value.strip()
    if text.isdigit():
        return float(min(int(text[:12]), MAX_RETRY_AFTER_SECONDS))
    try:
        moment = parsedate_to_datetime(text)
    except (TypeError, ValueError, IndexError, OverflowError):
        return None
    if moment is None or moment.tzinfo is None:
        return None
    seconds = moment.timestamp() - (time.time() if now is None else now)
    return min(max(seconds, 0.0), MAX_RETRY_AFTER_SECONDS)


def judge(
    delivery: DueDelivery,
    schedule: Sequence[float],
    attempted_at: int,
    *,
    status: int | None,
    error: str | None,
    retry_after: float | None = None,
) -> DeliveryOutcome:
    """The outcome of one attempt: 2xx delivered; 410 gone (the webhook is disabled, its
    notifications wait for it to be turned on again); anything else is retried after the next
    step of `schedule` (or after ``Retry-After``), until the schedule runs out."""
    if status is not None and 200 <= status < 300:
        return DeliveryOutcome(delivery.batch, delivery.sender, delivery.webhook, attempted_at, True, None, status)
    if status == 410:
        return DeliveryOutcome(delivery.batch, delivery.sender, delivery.webhook, attempted_at, False, attempted_at, status,
                               error, gone=True)
    step = delivery.round  # retries already made in this round (the first attempt is round 0)
    if step >= len(schedule):
        return DeliveryOutcome(delivery.batch, delivery.sender, delivery.webhook, attempted_at, False, None, status, error)
    delay = retry_after if retry_after is not None else schedule[step]
    return DeliveryOutcome(delivery.batch, delivery.sender, delivery.webhook, attempted_at, False,
                           attempted_at + round(delay * 1000), status, error)


def outcome_name(outcome: DeliveryOutcome) -> str:
    """An attempt's outcome in one word (the ``outcome`` label of ``leo_webhook_deliveries_total``):
    ``delivered``, ``retry`` (a retry is scheduled), ``failed`` (retries ran out) or ``disabled`` (410)."""
    if outcome.delivered:
        return "delivered"
    if outcome.gone:
        return "disabled"
    return "retry" if outcome.next_attempt_at is not None else "failed"


# -- what a partner (or an operator) asks of a webhook --------------------------------------------
class BatchExpired(LeoError):
    """A batch named for a replay is past its retention (HTTP 410)."""


def check_expire_old_after(value: Any, where: str = "expire_old_after") -> int:
    """Seconds the old secret keeps signing after a rotation: a whole number from 0 (it stops at
    once) to `MAX_EXPIRE_OLD_AFTER`; `InputError` naming `where` otherwise."""
    if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value <= MAX_EXPIRE_OLD_AFTER:
        raise InputError(f"{where}: give whole seconds from 0 (the old secret stops at once) to "
                         f"{MAX_EXPIRE_OLD_AFTER:,} (7 days), not {shown(value)}")
    return value


def rotate_secret(store: Store, webhook_id: str, expire_old_after: int, now: int) -> tuple[WebhookRecord, str]:
    """Give a partner webhook a new secret (returned, shown only this once); the old one signs
    beside it for `expire_old_after` seconds (see `Store.rotate_webhook_secret`). `NotFound` for
    an unknown webhook or a batcher bot's (its webhook_sender's secret is in pipelines.yaml)."""
    seconds = check_expire_old_after(expire_old_after)
    secret = new_secret()
    rotated = store.rotate_webhook_secret(webhook_id, secret, now + seconds * 1000 if seconds else None, now)
    if rotated is None:
        raise NotFound(f"no partner webhook {shown(webhook_id)} to rotate the secret of")
    return rotated, secret


def replay_chosen(store: Store, webhook_id: str, batch_ids: Sequence[str], now: int) -> list[str]:
    """Notify again exactly the batches `batch_ids` of the webhook (distinct ids, in order), all or
    nothing: `InputError` for an empty or too long list, `NotFound` when one is not the
    webhook's (unknown, another webhook's or another partner's), `BatchExpired` when one is past
    its retention; then nothing is sent."""
    if not batch_ids:
        raise InputError("batch_ids: an empty list replays nothing; leave the body out to replay every unfetched batch")
    if len(batch_ids) > MAX_REPLAY_BATCHES:
        raise InputError(f"batch_ids: at most {MAX_REPLAY_BATCHES:,} batches per replay, not {len(batch_ids):,}")
    result = store.replay_batches(webhook_id, batch_ids, now)
    if result.unknown:
        raise NotFound(f"no batch {_listed(result.unknown)} in webhook {shown(webhook_id)}; nothing was replayed")
    if result.expired:
        raise BatchExpired(f"batch {_listed(result.expired)} is past its retention; nothing was replayed "
                           "(ask for a true-up to get every matching object again)")
    return result.replayed


def _listed(ids: Sequence[str], limit: int = 5) -> str:
    named = ", ".join(shown(id_) for id_ in ids[:limit])
    return named + (f" (and {len(ids) - limit} more)" if len(ids) > limit else "")


def batch_report(base_url: str, batch: BatchListing) -> dict[str, Any]:
    """A batch as the batches list shows it (the API and `leo webhooks batches`)."""
    return {
        "id": batch.id, "url": batch_url(base_url, batch.id), "records": batch.records, "true_up": batch.true_up,
        "created_at": format_time(batch.created_at) or "", "expires_at": format_time(batch.expires_at) or "",
        "delivered_at": format_time(batch.delivered_at), "fetched_at": format_time(batch.fetched_at),
        "attempts": batch.attempts, "next_attempt_at": format_time(batch.next_attempt_at), "last_error": batch.last_error,
    }


# -- the delivery engine ---------------------------------------------------------------------------
@dataclass(frozen=True, slots=True)
class Outgoing:
    """A notification ready to POST: the delivery it is, where to, the key to sign with, the body,
    and the key of a rotated-out secret that signs too until ``delivery.old_secret_expires_at``."""

    delivery: DueDelivery
    url: str
    key: bytes
    body: bytes
    old_key: bytes | None = None

    def keys(self, at: int) -> tuple[bytes, ...]:
        """The keys that sign an attempt made at `at` (epoch ms), the current secret's first: the
        old one's expiry is judged when the attempt is made, not when it was queued."""
        expires = self.delivery.old_secret_expires_at
        if self.old_key is None or expires is None or at >= expires:
            return (self.key,)
        return (self.key, self.old_key)


class DeliveryService:
    """POSTs notifications on an event loop of its own (a daemon thread), for a webhook bot.

    The bot's runs feed it (`submit`) and collect what happened (`take_outcomes`), which they
    commit; its runs are short, so a slow or hanging callback holds nothing but its own
    requests. Concurrency is bounded across webhooks (``max_in_flight``) and each webhook gets
    one notification at a time, in order: when one fails, the others of that webhook wait for
    the next offer (the failed one has its retry scheduled), so a callback that is down is
    probed, not flooded. A delivery is `busy` from `submit` until its outcome was taken, so it
    is never sent twice at once. Attempts start only while the bot keeps calling `heartbeat`
    (a bot that lost its lease or was paused stops calling it): at most `idle_after` seconds on.

    HTTP is spoken through the httpx API (`httpx.Request`/`Response`, an async transport) on
    aiohttp's connection pool (``httpx_aiohttp``), with the callback guard as its resolver and
    redirects never followed. ``benchmarks/webhooks.py`` shows why: httpx's own pool slows down
    as requests in flight grow (httpcore #1035, httpx #3215); aiohttp alone would be faster
    still (httpx's request and response objects cost about a sixth), but DESIGN keeps the httpx
    API for every outgoing call.
    """

    def __init__(self, *, timeout: float, max_in_flight: int, allow_private: bool, schedule: Sequence[float],
                 idle_after: float = 5.0, transport_factory: Callable[[], Any] | None = None) -> None:
        self.timeout = timeout
        self.schedule = tuple(schedule)
        self.max_in_flight = max_in_flight
        self.allow_private = allow_private
        self.idle_after = idle_after
        self._transport_factory = transport_factory or self._aiohttp_transport
        self._timeouts = {"connect": timeout, "read": timeout, "write": timeout, "pool": timeout}
        self._lock = threading.Lock()
        self._outcomes: list[DeliveryOutcome] = []
        self._busy: set[tuple[int, str]] = set()
        self._alive_until = 0.0
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._queues: dict[tuple[int, str], deque[Outgoing]] = {}
        self._semaphore: asyncio.Semaphore | None = None
        self._transport: Any = None
        self._tasks: set[asyncio.Task[None]] = set()
        self._targets: dict[str, tuple[Any, str | None]] = {}
        self.failure: BaseException | None = None

    # -- the bot's side (any thread) -------------------------------------------------------------
    def start(self) -> None:
        """Start the event loop thread (once)."""
        import asyncio  # here: the CLI imports this module, only `leo run` sends

        if self._thread is not None:
            return
        self._loop = asyncio.new_event_loop()
        ready = threading.Event()

        def run() -> None:
            asyncio.set_event_loop(self._loop)
            self._semaphore = asyncio.Semaphore(self.max_in_flight)
            ready.set()
            self._loop.run_forever()  # type: ignore[union-attr]

        self._thread = threading.Thread(target=run, name="leo-webhook-delivery", daemon=True)
        self._thread.start()
        ready.wait()

    def heartbeat(self) -> None:
        """The bot is running: attempts may start for `idle_after` seconds more."""
        self._alive_until = time.monotonic() + self.idle_after

    def busy(self) -> set[tuple[int, str]]:
        """(batch, sender) of every delivery submitted whose outcome was not taken yet."""
        with self._lock:
            return set(self._busy)

    def submit(self, items: Sequence[Outgoing]) -> int:
        """Queue notifications (those already busy are skipped); returns how many were taken."""
        if self._loop is None:
            raise RuntimeError("DeliveryService.start() first")
        taken = []
        with self._lock:
            for item in items:
                ident = (item.delivery.batch, item.delivery.sender)
                if ident not in self._busy:
                    self._busy.add(ident)
                    taken.append(item)
        if taken:
            self._loop.call_soon_threadsafe(self._enqueue, taken)
        return len(taken)

    def take_outcomes(self) -> list[DeliveryOutcome]:
        """Outcomes since the last call (the caller commits them; they are no longer busy)."""
        with self._lock:
            outcomes, self._outcomes = self._outcomes, []
            for outcome in outcomes:
                self._busy.discard((outcome.batch, outcome.sender))
        return outcomes

    def close(self, timeout: float = 5.0) -> None:
        """Stop: queued notifications are dropped and requests in flight cancelled (their
        deliveries stay due in the store and are sent again: at least once)."""
        import asyncio  # here: the CLI imports this module, only `leo run` sends

        loop, thread = self._loop, self._thread
        if loop is None or thread is None:
            return
        future = asyncio.run_coroutine_threadsafe(self._shutdown(), loop)
        try:
            future.result(timeout)
        except Exception as exc:  # closing must not fail the bot's close()
            log.debug("webhook delivery: shutdown: %s", exc)
        loop.call_soon_threadsafe(loop.stop)
        thread.join(timeout)
        if not thread.is_alive():
            loop.close()
        self._loop = self._thread = None

    # -- the loop's side -------------------------------------------------------------------------
    def _enqueue(self, items: list[Outgoing]) -> None:
        import asyncio  # here: the CLI imports this module, only `leo run` sends

        for item in items:
            key = (item.delivery.webhook, item.delivery.sender)
            queue = self._queues.get(key)
            if queue is None:
                queue = self._queues[key] = deque()
                task = asyncio.get_running_loop().create_task(self._drain(key, queue))
                self._tasks.add(task)
                task.add_done_callback(self._tasks.discard)
            queue.append(item)

    async def _drain(self, key: tuple[int, str], queue: deque[Outgoing]) -> None:
        """One webhook's notifications, one at a time; after a failure the rest wait for the next offer."""
        try:
            while queue:
                if time.monotonic() > self._alive_until:  # the bot stopped running: start nothing new
                    break
                item = queue.popleft()
                assert self._semaphore is not None
                async with self._semaphore:
                    started = time.perf_counter()
                    outcome = await self._attempt(item)
                    meters.current().webhook_delivery(outcome.webhook, outcome.sender, outcome_name(outcome),
                                                      time.perf_counter() - started)
                with self._lock:
                    self._outcomes.append(outcome)
                if not outcome.delivered:
                    break
        except Exception as exc:  # a bug here must not lose track of what is busy
            self.failure = exc
            log.exception("webhook delivery failed unexpectedly")
        finally:
            with self._lock:
                for left in queue:
                    self._busy.discard((left.delivery.batch, left.delivery.sender))
            queue.clear()
            if self._queues.get(key) is queue:
                del self._queues[key]

    async def _attempt(self, item: Outgoing) -> DeliveryOutcome:
        import asyncio  # here: the CLI imports this module, only `leo run` sends

        delivery = item.delivery
        attempted_at = now_ms()
        status: int | None = None
        retry_after: float | None = None
        error: str | None = None
        target = self._targets.get(item.url)
        if target is None:  # parsed and judged once per callback URL
            if len(self._targets) > 10_000:
                self._targets.clear()
            target = self._targets[item.url] = (_parse_url(item.url), connect_refusal(item.url, self.allow_private))
        url, refusal = target
        if refusal is not None:
            error = refusal
        else:
            headers = signed_headers(item.keys(attempted_at), delivery.batch_id, item.body, attempted_at // 1000)
            try:
                async with asyncio.timeout(self.timeout):
                    status, retry_after, error = await self._post(url, headers, item.body)
            except TimeoutError:
                error = f"no answer within {self.timeout:g}s (webhooks.timeout)"
            except Exception as exc:
                error = _network_error(exc)
        return judge(delivery, self.schedule, attempted_at, status=status, error=error, retry_after=retry_after)

    async def _post(self, url: Any, headers: dict[str, str], body: bytes) -> tuple[int, float | None, str | None]:
        if self._transport is None:
            self._transport = self._transport_factory()
        import httpx  # here, not at the top: every `leo` command imports this module, few send

        # Headers handed over as ASCII bytes: httpx then skips guessing their encoding per header.
        raw = httpx.Headers([(name.encode(), value.encode()) for name, value in headers.items()], encoding="ascii")
        request = httpx.Request("POST", url, content=body, headers=raw, extensions={"timeout": self._timeouts})
        response = await self._transport.handle_async_request(request)
        try:
            status = response.status_code
            if 200 <= status < 300:
                return status, None, None
            snippet = b""
            async for chunk in response.aiter_raw():  # a little of the answer, for the error text
                snippet += chunk
                if len(snippet) >= ERROR_TEXT_LIMIT:
                    break
        finally:
            await response.aclose()
        error = f"HTTP {status}"
        if 300 <= status < 400:
            error += " (redirects are not followed: give the final URL as the callback)"
        text = snippet[:ERROR_TEXT_LIMIT].decode("utf-8", "replace").strip()
        if text:
            error += f": {' '.join(text.split())}"
        return status, parse_retry_after(response.headers.get("retry-after")), error

    def _aiohttp_transport(self) -> Any:
        """The httpx API on aiohttp's connection pool (DESIGN: the httpx API for every outgoing
        call, on a faster transport where fan-out matters)."""
        import aiohttp
        from httpx_aiohttp import AiohttpTransport

        connector = aiohttp.TCPConnector(limit=self.max_in_flight, limit_per_host=0,
                                         resolver=guarded_resolver(self.allow_private))
        session = aiohttp.ClientSession(connector=connector, trust_env=False, cookie_jar=aiohttp.DummyCookieJar(),
                                        auto_decompress=False)
        return AiohttpTransport(client=session)

    async def _shutdown(self) -> None:
        import asyncio  # here: the CLI imports this module, only `leo run` sends

        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        if self._transport is not None:
            await self._transport.aclose()
            self._transport = None


def _parse_url(url: str) -> Any:
    import httpx

    try:
        return httpx.URL(url)
    except Exception:  # an invalid URL fails its attempts (with the client's own message)
        return url


def _network_error(exc: BaseException) -> str:
    """What went wrong reaching a callback, in plain words: the guard's refusal as it is, else the
    host and the operating system's reason (``cannot connect to 127.0.0.1:9: connection
    refused``), never the client library's internals (aiohttp names its TLS context,
    ``ssl:default``, even for an ``http://`` URL)."""
    chain: list[BaseException] = []
    cause: BaseException | None = exc
    while cause is not None and len(chain) < 10:  # the guard's refusal may sit under the client's own errors
        if isinstance(cause, CallbackRefused):
            return str(cause)
        chain.append(cause)
        cause = cause.__cause__ or cause.__context__
    host = next((c for c in chain if isinstance(getattr(c, "host", None), str)), None)
    target = f" to {host.host}:{host.port}" if host is not None else ""  # type: ignore[attr-defined]
    os_error = next((c for c in reversed(chain) if isinstance(c, OSError) and type(c).__module__ in ("builtins", "socket")),
                    None)
    if os_error is not None:
        reason = _OS_REASONS.get(type(os_error).__name__) or os_error.strerror or str(os_error)
        return f"cannot connect{target}: {' '.join(reason.split())}"[:ERROR_TEXT_LIMIT]
    text = _CLIENT_NOISE.sub("", str(exc) or type(exc).__name__)
    return f"cannot connect: {' '.join(text.split())[:ERROR_TEXT_LIMIT]}"


_OS_REASONS = {"ConnectionRefusedError": "connection refused", "ConnectionResetError": "connection reset by the peer",
               "ConnectionAbortedError": "connection aborted"}
_CLIENT_NOISE = re.compile(r" ssl:\S+")


# -- operators' view -------------------------------------------------------------------------------
def delivery_state(row: WebhookStatusRow) -> str:
    """``disabled`` (a 410), ``failing`` (a notification ran out of retries and none got through
    since), ``retrying`` (a notification waits for a retry) or ``ok``."""
    if row.webhook.status == "disabled":
        return "disabled"
    if row.webhook.failing:
        return "failing"
    if row.retrying:
        return "retrying"
    return "ok"


def webhook_report(rows: Sequence[WebhookStatusRow]) -> list[dict[str, Any]]:
    """Webhooks as `leo status` and `leo webhooks list --json` show them."""
    now = now_ms()
    report = []
    for row in rows:
        webhook = row.webhook
        report.append({
            "id": public_webhook_id(webhook.id) if webhook.partner_id is None else webhook.id,
            "partner": row.partner,
            "kind": "partner" if webhook.partner_id is not None else "batcher",
            "object_type": webhook.object_type,
            "source_queue": webhook.source_queue,
            "interval": interval_seconds(webhook.interval_ms),
            "mode": webhook.mode,
            "status": webhook.status,
            "delivery": delivery_state(row),
            "last_batch": row.last_batch_id,
            "last_batch_at": format_time(webhook.last_batch_at),
            "unfetched": row.unfetched,
            "retrying": row.retrying,
            "failed": row.exhausted,
            "next_run_at": format_time(webhook.next_run_at),
            "last_delivered_at": format_time(webhook.last_delivered_at),
            "last_error": webhook.last_error,
            "old_secret_expires_at": format_time(webhook.old_secret_expires_at) if webhook.old_secret_live(now) else None,
        })
    return report


__all__ = [
    "BOT_PREFIX",
    "DEFAULT_EXPIRE_OLD_AFTER",
    "MAX_EXPIRE_OLD_AFTER",
    "MAX_INTERVAL_SECONDS",
    "MAX_REPLAY_BATCHES",
    "MIN_INTERVAL_SECONDS",
    "PARTNER_SENDER",
    "BatchExpired",
    "DeliveryService",
    "Outgoing",
    "batch_report",
    "batch_url",
    "check_expire_old_after",
    "delivery_state",
    "interval_seconds",
    "judge",
    "new_secret",
    "new_webhook_id",
    "notification_body",
    "outcome_name",
    "parse_interval",
    "parse_retry_after",
    "public_webhook_id",
    "replay_chosen",
    "rotate_secret",
    "router_id",
    "secret_key",
    "sign",
    "signed_headers",
    "snapshot_line",
    "subscription_of",
    "webhook_report",
]
