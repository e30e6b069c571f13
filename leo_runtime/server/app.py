"""The FastAPI application `leo run` serves.

The app sees the store and an `ApiContext`: the settings it needs and what the runtime lends it
(a health snapshot, a way to wait for a queue to grow). It never reaches into the runtime, so
`create_app` also serves tests and tools without one. Routes live in one module per concern
(objects, webhooks, streams, admin), each an `APIRouter` added here.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from fastapi import FastAPI
from pydantic import BaseModel, Field

from .. import __version__
from ..config import Config, PipelinesFile
from ..delivery.system import SystemPipeline
from ..store import Store
from . import admin, auth, batches, console, metrics, objects, reference, streams, webhooks
from .edge import Edge
from .inputs import OneReading
from .problems import install_handlers

HealthSnapshot = Callable[[], dict[str, Any]]
"""Returns the runtime's health as plain data, the fields of `Health` (anything else is dropped)."""


class BotHealth(BaseModel):
    """One bot as /healthz shows it: its state and its failed runs in a row."""

    state: str
    failures: int = 0


class Health(BaseModel):
    """What /healthz answers. It needs no token, so it holds states, counts and flags only,
    never error text (bot errors and reload errors are in `leo status`)."""

    status: str = Field("ok", description="ok, or degraded (still HTTP 200) when a bot is failing or stuck or "
                                          "the last reload failed")
    version: str = __version__
    pipelines: list[str] = Field(default_factory=list)
    bots: dict[str, BotHealth] = Field(default_factory=dict)
    states: dict[str, int] = Field(default_factory=dict, description="how many bots are in each state")
    failing: list[str] = Field(default_factory=list)
    stuck: list[str] = Field(default_factory=list)
    abandoned_runs: int = Field(0, description="runs given up (stuck) whose thread has not ended yet")
    reloads: int = 0
    reload_failed: bool = Field(False, description="the last change of pipelines.yaml could not be applied")
    waiting_readers: int = 0
    connections: int = Field(0, description="HTTP connections open now (server.max_connections caps them)")

QueueWaiter = Callable[[str, int, float], Awaitable[bool]]
"""``await wait(queue, after, timeout)``: True as soon as `queue` grows past `after`, False on timeout."""


@dataclass
class ApiContext:
    """What the HTTP API is handed: settings from pipelines.yaml and the runtime's lent parts."""

    settings: PipelinesFile = field(default_factory=lambda: PipelinesFile(version=1))
    health: HealthSnapshot | None = None
    wait: QueueWaiter | None = None
    changed: Callable[[], None] | None = None
    """Tell the runtime that partner webhooks or streams changed (it reconciles their bots at once)."""
    meters: Any = None
    """The process's `PrometheusMeters` (``/metrics``); None: the app measures its own requests only."""
    config: Callable[[], Config | None] | None = None
    """The pipelines file in force (the console draws its pipelines); None: the app has none."""
    edge: Edge | None = None
    """The server's connections (long polls answer early when they near the cap)."""
    system: Sequence[SystemPipeline] = ()
    """The system pipelines the runtime runs (the console shows their bots with the file's)."""
    shared_limits: Callable[[], bool] | None = None
    """Whether other hosts serve the API too (Get Object's rate is then kept in the store)."""


def create_app(store: Store, context: ApiContext | None = None, *, partner_api: bool = True) -> FastAPI:
    """The API over `store`; without `partner_api` (a host of role ``bots``) only ``/healthz``
    and ``/metrics``."""
    context = context or ApiContext()
    app = FastAPI(title="leo-runtime", version=__version__, description="Change-data delivery for trading partners.",
                  docs_url=None, redoc_url=None)  # served by `reference`, from the package instead of a CDN
    # No redirect from a path with(out) a trailing slash: Starlette would build its Location from
    # the request's Host header. Such a path is a 404 problem like any unknown route.
    app.router.redirect_slashes = False
    app.state.store = store
    app.state.context = context
    install_handlers(app)
    app.add_middleware(OneReading)  # a repeated query parameter or single header: refused on every route
    auth.install(app)
    if partner_api:
        objects.install(app)
        webhooks.install(app)
        batches.install(app)
        admin.install(app)
        streams.install(app)
    metrics.install(app, context.meters)
    if partner_api:
        console.install(app)
        reference.install(app)

    @app.get("/healthz", tags=["health"], summary="Liveness and bot states (no token needed)")
    async def healthz() -> Health:
        """Whether `leo run` is up and how its bots fare (states, counts, flags; never error text)."""
        snapshot = context.health() if context.health is not None else {}
        # Only the fields of `Health`: whatever else a snapshot holds never reaches this open route.
        return Health.model_validate({key: snapshot[key] for key in Health.model_fields if key in snapshot})

    return app
