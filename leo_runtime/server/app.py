"""The FastAPI application `leo run` serves.

The app sees the store and an `ApiContext`: the settings it needs and what the runtime lends it
(a health snapshot, a way to wait for a queue to grow). It never reaches into the runtime, so
`create_app` also serves tests and tools without one. Routes live in one module per concern
(objects, webhooks, streams, admin), each an `APIRouter` added here.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

from fastapi import FastAPI

from .. import __version__
from ..config import PipelinesFile
from ..store import Store
from . import admin, auth, objects
from .problems import install_handlers

HealthSnapshot = Callable[[], dict[str, Any]]
"""Returns the runtime's health as plain data: ``status`` (``ok`` or ``degraded``) and details."""

QueueWaiter = Callable[[str, int, float], Awaitable[bool]]
"""``await wait(queue, after, timeout)``: True as soon as `queue` grows past `after`, False on timeout."""


@dataclass
class ApiContext:
    """What the HTTP API is handed: settings from pipelines.yaml and the runtime's lent parts."""

    settings: PipelinesFile = field(default_factory=lambda: PipelinesFile(version=1))
    health: HealthSnapshot | None = None
    wait: QueueWaiter | None = None


def create_app(store: Store, context: ApiContext | None = None) -> FastAPI:
    """The API over `store`."""
    context = context or ApiContext()
    app = FastAPI(title="leo-runtime", version=__version__, description="Change-data delivery for trading partners.")
    app.state.store = store
    app.state.context = context
    install_handlers(app)
    auth.install(app)
    objects.install(app)
    admin.install(app)

    @app.get("/healthz", tags=["health"], summary="Liveness and bot states (no token needed)")
    async def healthz() -> dict[str, Any]:
        answer: dict[str, Any] = {"status": "ok", "version": __version__}
        if context.health is not None:
            answer.update(context.health())
        return answer

    return app
