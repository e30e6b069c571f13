"""``GET /metrics``: Prometheus text (or OpenMetrics when asked), written by prometheus-client.

Two kinds of values, as CONTRACT section 10 says:

- Counters and histograms of what THIS process did: bot runs (the runner), webhook delivery
  attempts (the delivery engine), Get Object calls and every HTTP request (`MeasuredRequests`,
  an ASGI middleware around the whole app, so the stream-read fast lane is measured too). The
  layers below the server call `leo_runtime.meters` hooks; `PrometheusMeters` is the process's
  implementation, installed by ``leo run``.
- Gauges read from the store at scrape time (`StoreGauges`, a custom collector over
  `operations.metrics_report`): lag, heads, unfetched batches, stream lag, hosts. Every host
  answers the same. One computation serves all scrapes within `SNAPSHOT_SECONDS`.

Labels stay bounded: bot, pipeline, queue, partner and stream names (things an operator or a
quota bounds), route templates (never a raw path), a fixed set of methods, status codes.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator, Mapping
from typing import Any

from fastapi import APIRouter, FastAPI, Request, Response
from prometheus_client import CollectorRegistry, Counter, Histogram, disable_created_metrics
from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.exposition import choose_encoder
from starlette.concurrency import run_in_threadpool
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from ..delivery.webhooks import BOT_PREFIX
from ..meters import Meters
from ..operations import STORE_BOT_STATES, metrics_report
from ..store import Store
from .auth import PARTNER_SCOPE_KEY, require_admin
from .problems import problem_responses

disable_created_metrics()  # no `_created` series beside every counter: this process is the only exporter

GET_OBJECT_ROUTE = "/v1/objects/{object_type}/{key}"
"""Get Object's route template: its requests are also counted per partner and status."""
UNMATCHED_ROUTE = "unmatched"
"""The route label of a request no route took (a 404 for an unknown path)."""
METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"})
HTTP_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0)
DELIVERY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 15.0, 30.0, 60.0)
SNAPSHOT_SECONDS = 2.0
"""Scrapes within this many seconds of one another share one reading of the store."""

FileBots = Callable[[], "set[str] | None"]
"""The bot ids of the pipelines file in force (None: unknown), for the ``removed`` state."""


class PrometheusMeters(Meters):
    """The process's counters and histograms, in a registry of their own (never the client's
    global one) together with the store gauges. Labelled children are kept in a dict, so a hot
    path pays one dict lookup and the metric's own lock."""

    counts = True

    def __init__(self, store: Store, file_bots: FileBots | None = None) -> None:
        self.store = store
        self.registry = CollectorRegistry()
        registry = self.registry
        self._read = Counter("leo_bot_events_read", "Events bots read in committed runs, on this host",
                             ["pipeline", "bot"], registry=registry)
        self._written = Counter("leo_bot_events_written", "Events bots wrote in committed runs, on this host",
                                ["pipeline", "bot", "queue"], registry=registry)
        self._runs = Counter("leo_bot_runs", "Bot runs on this host by outcome (ok: committed, error: failed)",
                             ["pipeline", "bot", "outcome"], registry=registry)
        self._deliveries = Counter("leo_webhook_deliveries", "Webhook notification attempts on this host by outcome "
                                   "(delivered, retry, failed: retries ran out, disabled: the callback answered 410)",
                                   ["partner", "outcome"], registry=registry)
        self._delivery_seconds = Histogram("leo_webhook_delivery_duration_seconds",
                                           "How long a webhook notification attempt took, on this host", ["partner"],
                                           buckets=DELIVERY_BUCKETS, registry=registry)
        self._get_object = Counter("leo_get_object_requests", "Get Object calls answered by this host, by partner "
                                   "and status ('' for a call without a valid partner token)", ["partner", "status"],
                                   registry=registry)
        self._http = Histogram("leo_http_request_duration_seconds", "HTTP requests answered by this host, by route "
                               "template, method and status", ["route", "method", "status"], buckets=HTTP_BUCKETS,
                               registry=registry)
        self._children: dict[tuple[Any, ...], Any] = {}
        self._partners: dict[int, str] = {}
        registry.register(StoreGauges(store, file_bots or (lambda: None), self._learn_partners))

    def _child(self, metric: Any, *labels: str) -> Any:
        key = (metric, *labels)
        child = self._children.get(key)
        if child is None:  # two threads may both get here: labels() hands both the same child
            child = self._children[key] = metric.labels(*labels)
        return child

    # -- the hooks -----------------------------------------------------------------------------------
    def bot_run(self, pipeline: str, bot: str, *, ok: bool, read: int = 0, written: Mapping[str, int] | None = None) -> None:
        self._child(self._runs, pipeline, bot, "ok" if ok else "error").inc()
        if ok:
            self._child(self._read, pipeline, bot).inc(read)
            for queue, count in (written or {}).items():
                self._child(self._written, pipeline, bot, queue).inc(count)

    def webhook_delivery(self, webhook: int, sender: str, outcome: str, seconds: float) -> None:
        partner = self._partner(webhook, sender)
        self._child(self._deliveries, partner, outcome).inc()
        self._child(self._delivery_seconds, partner).observe(seconds)

    def http_request(self, route: str, method: str, status: int, seconds: float, partner: str | None) -> None:
        code = str(status)
        self._child(self._http, route, method if method in METHODS else "other", code).observe(seconds)
        if route == GET_OBJECT_ROUTE:
            self._child(self._get_object, partner or "", code).inc()

    # -- a webhook's partner, for the labels -------------------------------------------------------------
    def _partner(self, webhook: int, sender: str) -> str:
        """The partner a webhook row belongs to (a webhook_sender bot's notifications: ``bot:<id>``)."""
        if sender:
            return BOT_PREFIX + sender
        name = self._partners.get(webhook)
        if name is None:  # a webhook not seen yet: one read of the (small) webhooks and partners tables
            names = {record.id: record.name for record in self.store.partners()}
            self._learn_partners({hook.rid: names.get(hook.partner_id, "") for hook in self.store.webhooks()
                                  if hook.partner_id is not None})
            name = self._partners.get(webhook, "")
        return name

    def _learn_partners(self, partners: Mapping[int, str]) -> None:
        if len(self._partners) > 100_000:  # deleted webhooks' rows never come back
            self._partners = {}
        self._partners.update(partners)


class StoreGauges:
    """The gauges read from the store at scrape time (a prometheus-client custom collector)."""

    def __init__(self, store: Store, file_bots: FileBots, learn: Callable[[Mapping[int, str]], None]) -> None:
        self.store = store
        self.file_bots = file_bots
        self._learn = learn
        self._lock = threading.Lock()
        self._taken = 0.0
        self._report: dict[str, Any] | None = None

    def report(self) -> dict[str, Any]:
        """`operations.metrics_report`, computed at most once per `SNAPSHOT_SECONDS` (concurrent
        scrapes wait for the one computing it)."""
        with self._lock:
            if self._report is None or time.monotonic() - self._taken > SNAPSHOT_SECONDS:
                self._report = metrics_report(self.store, self.file_bots())
                self._taken = time.monotonic()
            return self._report

    def collect(self) -> Iterator[Metric]:
        report = self.report()
        lag = GaugeMetricFamily("leo_bot_lag_events", "Events after a bot's checkpoint in each queue it reads",
                                labels=["pipeline", "bot", "queue"])
        lag_seconds = GaugeMetricFamily("leo_bot_lag_seconds", "How long the oldest event after a bot's checkpoint "
                                        "has waited (0 when none waits)", labels=["pipeline", "bot", "queue"])
        state = GaugeMetricFamily("leo_bot_state", "1 for the bot's current state (as the store tells it), 0 for "
                                  "the others", labels=["pipeline", "bot", "state"])
        for bot in report["bots"]:
            for row in bot["lags"]:
                lag.add_metric([bot["pipeline"], bot["bot"], row["queue"]], row["lag"])
                lag_seconds.add_metric([bot["pipeline"], bot["bot"], row["queue"]], row["lag_seconds"])
            for name in STORE_BOT_STATES:
                state.add_metric([bot["pipeline"], bot["bot"], name], 1.0 if bot["state"] == name else 0.0)
        heads = GaugeMetricFamily("leo_queue_head_position", "Position of the newest event appended to a queue",
                                  labels=["queue"])
        for queue, head in sorted(report["queues"].items()):
            heads.add_metric([queue], head)
        unfetched = GaugeMetricFamily("leo_webhook_unfetched_batches", "Sealed, unexpired batches a partner has not "
                                      "downloaded yet", labels=["partner"])
        for partner, count in sorted(report["unfetched"].items()):
            unfetched.add_metric([partner], count)
        streams = GaugeMetricFamily("leo_stream_lag_events", "Records after a stream's checkpoints (all partitions)",
                                    labels=["partner", "stream"])
        for stream in report["streams"]:
            streams.add_metric([stream["partner"], stream["stream"]], stream["lag"])
        hosts = GaugeMetricFamily("leo_hosts", "Live hosts (leo run processes) on the store")
        hosts.add_metric([], report["hosts"])
        yield from (lag, lag_seconds, state, heads, unfetched, streams, hosts)


class MeasuredRequests:
    """ASGI middleware: each HTTP request's duration by route template, method and status, and
    the partner whose token it carried (Get Object counts per partner)."""

    def __init__(self, app: ASGIApp, meters: Meters) -> None:
        self.app = app
        self.meters = meters

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        status = 500  # what the client gets when the app fails before answering

        async def sending(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        try:
            await self.app(scope, receive, sending)
        finally:
            route = scope.get("route")
            template = getattr(route, "path_format", None) or UNMATCHED_ROUTE
            partner = scope.get(PARTNER_SCOPE_KEY)
            self.meters.http_request(template, scope["method"], status, time.perf_counter() - started,
                                     getattr(partner, "name", None))


router = APIRouter(tags=["operations"])


@router.get("/metrics", summary="Prometheus metrics", response_class=Response,
            responses={200: {"content": {"text/plain": {}}, "description": "Prometheus text format (OpenMetrics "
                                                                          "when the Accept header asks for it)"},
                       **problem_responses(401, 403)})
async def metrics(request: Request) -> Response:
    """Counters of what this host did and gauges read from the store (CONTRACT section 10). Needs
    the admin token unless ``server.metrics_public: true``."""
    if not request.app.state.context.settings.server.metrics_public:
        await require_admin(request)
    encoder, content_type = choose_encoder(request.headers.get("accept", ""))
    body = await run_in_threadpool(encoder, request.app.state.meters.registry)
    return Response(body, media_type=content_type, headers={"Cache-Control": "no-store"})


def install(app: FastAPI, meters: PrometheusMeters | None) -> None:
    """Serve ``/metrics`` and measure every request. `meters`: the process's (``leo run``
    installs them); without, the app gets meters of its own that count only its requests."""
    if meters is None:
        meters = PrometheusMeters(app.state.store)
    app.state.meters = meters
    app.include_router(router)
    app.add_middleware(MeasuredRequests, meters=meters)
