"""The FastAPI application `leo run` serves.

Errors are ``application/problem+json`` (RFC 9457: ``type``, ``title``, ``status``, ``detail``).
Later routes (objects, webhooks, streams) are added here with `APIRouter`s.
"""

from __future__ import annotations

from http import HTTPStatus
from typing import TYPE_CHECKING, Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException

from .. import __version__
from ..errors import LeoError
from ..store import Store

if TYPE_CHECKING:
    from ..runtime import Runtime

PROBLEM = "application/problem+json"


def problem(status: int, detail: str, *, title: str | None = None, type_: str = "about:blank",
            headers: dict[str, str] | None = None, **extra: Any) -> JSONResponse:
    """An RFC 9457 problem answer."""
    body = {"type": type_, "title": title or HTTPStatus(status).phrase, "status": status, "detail": detail, **extra}
    return JSONResponse(body, status_code=status, media_type=PROBLEM, headers=headers)


def create_app(store: Store, runtime: Runtime | None = None) -> FastAPI:
    """The API over `store`; `runtime` (when served by `leo run`) adds live bot states."""
    app = FastAPI(title="leo-runtime", version=__version__, description="Change-data delivery for trading partners.")
    app.state.store = store
    app.state.runtime = runtime

    @app.exception_handler(StarletteHTTPException)
    async def http_error(request: Request, exc: StarletteHTTPException) -> JSONResponse:
        return problem(exc.status_code, str(exc.detail), headers=getattr(exc, "headers", None))

    @app.exception_handler(RequestValidationError)
    async def validation_error(request: Request, exc: RequestValidationError) -> JSONResponse:
        errors = [
            {"loc": list(error.get("loc", ())), "msg": error.get("msg", "")} for error in exc.errors()
        ]
        first = errors[0] if errors else {"loc": [], "msg": "invalid request"}
        where = ".".join(str(part) for part in first["loc"])
        return problem(422, f"{where}: {first['msg']}" if where else first["msg"], errors=errors)

    @app.exception_handler(LeoError)
    async def leo_error(request: Request, exc: LeoError) -> JSONResponse:
        return problem(400, str(exc))

    @app.get("/healthz", tags=["health"], summary="Liveness and bot states (no token needed)")
    async def healthz() -> dict[str, Any]:
        answer: dict[str, Any] = {"status": "ok", "version": __version__}
        if runtime is not None:
            states = runtime.bot_states()
            failing = sorted(bot for bot, info in states.items() if info["failing"])
            answer.update(
                status="degraded" if failing else "ok",
                pipelines=sorted(runtime.config.model.pipelines),
                bots=states,
                failing=failing,
                reloads=runtime.reloads,
                reload_error=runtime.reload_error,
                waiting_readers=runtime.wakeups.waiting(),
            )
        return answer

    return app
