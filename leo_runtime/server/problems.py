"""Errors as ``application/problem+json`` (RFC 9457: ``type``, ``title``, ``status``, ``detail``)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from http import HTTPStatus
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from pydantic import BaseModel, Field
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.requests import ClientDisconnect

from ..errors import LeoError

PROBLEM = "application/problem+json"


class Problem(BaseModel):
    """An error (RFC 9457). Validation errors add ``errors``: ``[{loc, msg}]``."""

    type: str = "about:blank"
    title: str = Field(examples=["Not Found"])
    status: int = Field(examples=[404])
    detail: str = Field(examples=["no object 'SKU-9' of type 'inventory'"])
    errors: list[dict[str, Any]] | None = Field(None, description="422 from validation: every error as {loc, msg}")


def problem(status: int, detail: str, *, title: str | None = None, type_: str = "about:blank",
            headers: dict[str, str] | None = None, **extra: Any) -> JSONResponse:
    """An RFC 9457 problem answer."""
    body = {"type": type_, "title": title or HTTPStatus(status).phrase, "status": status, "detail": detail, **extra}
    return JSONResponse(body, status_code=status, media_type=PROBLEM, headers=headers)


def shown(text: str, limit: int = 100) -> str:
    """A caller's text (a key, a type) as a detail repeats it: cut to `limit` characters."""
    return text if len(text) <= limit else text[:limit] + "..."


INVALID = "a parameter, header or body field does not validate (`errors` lists each problem as `{loc, msg}`)"
"""What every 422 can also mean: the request does not fit the route's declared shapes."""


def described(status: int, causes: str | Sequence[str] | None = None) -> str:
    """A response's description for the API reference: the status and what causes it (a 422 also
    names `INVALID`), as one line or a list."""
    phrase = HTTPStatus(status).phrase
    reasons = [causes] if isinstance(causes, str) else list(causes or ())
    if status == 422:
        reasons.append(INVALID)
    if not reasons:
        return phrase
    if len(reasons) == 1:
        return f"{phrase}: {reasons[0]}"
    return f"{phrase}, when:\n\n" + "\n".join(f"- {reason}" for reason in reasons)


def problem_responses(*statuses: int, headers: dict[str, Any] | None = None,
                      causes: Mapping[int, str | Sequence[str]] | None = None) -> dict[int | str, dict[str, Any]]:
    """OpenAPI ``responses`` entries: each status answers a `Problem` as application/problem+json.
    `causes` says what makes a status happen (each status in it is answered too): the reference
    a partner reads, so every 409, 410 and 422 a route can give is described where the route is."""
    causes = causes or {}
    entries: dict[int | str, dict[str, Any]] = {}
    for status in sorted(set(statuses) | set(causes)):
        entry: dict[str, Any] = {"model": Problem, "description": described(status, causes.get(status))}
        if headers:
            entry["headers"] = headers
        if status == 401:
            entry["headers"] = {**entry.get("headers", {}), "WWW-Authenticate": {"schema": {"type": "string"}}}
        if status == 429:
            entry["headers"] = {**entry.get("headers", {}), "Retry-After": {"schema": {"type": "integer"}}}
        entries[status] = entry
    return entries


def problems_in_openapi(app: FastAPI) -> None:
    """Document every error answer (FastAPI's own 422 included) as a `Problem` in
    application/problem+json, which is what the handlers below send."""
    build = app.openapi

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is not None:
            return app.openapi_schema
        schema = build()
        for path in schema.get("paths", {}).values():
            for operation in path.values():
                _validation_errors(operation)
                for status, response in operation.get("responses", {}).items():
                    if status.isdigit() and int(status) >= 400:
                        response["content"] = {PROBLEM: {"schema": {"$ref": "#/components/schemas/Problem"}}}
        components = schema.setdefault("components", {}).setdefault("schemas", {})
        components["Problem"] = Problem.model_json_schema(ref_template="#/components/schemas/{model}")
        for unused in ("HTTPValidationError", "ValidationError"):
            components.pop(unused, None)
        app.openapi_schema = schema
        return schema

    app.openapi = openapi  # type: ignore[method-assign]


def _validation_errors(operation: dict[str, Any]) -> None:
    """FastAPI's own 422 ("Validation Error"): described like the others where a request can fail
    validation, dropped where it cannot (no body, and only path parameters, which are text)."""
    responses = operation.get("responses", {})
    if responses.get("422", {}).get("description") != "Validation Error":
        return
    checked = "requestBody" in operation or any(p.get("in") != "path" for p in operation.get("parameters", []))
    if checked:
        responses["422"]["description"] = described(422)
    else:
        del responses["422"]


def status_of(exc: LeoError) -> int:
    """The HTTP status a runtime error answers with: its class's ``http_status`` (errors.py)."""
    return exc.http_status


def install_handlers(app: FastAPI) -> None:
    """Every error the app can give, FastAPI's own included, becomes a problem answer."""
    problems_in_openapi(app)

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

    @app.exception_handler(ClientDisconnect)
    async def client_gone(request: Request, exc: ClientDisconnect) -> JSONResponse:
        # The client hung up (or its stalled body was cut off: server.body_timeout) while the
        # route read the body: nobody reads this answer, and it is nothing to log.
        return problem(400, "the client closed the connection before its request body arrived")

    @app.exception_handler(LeoError)
    async def leo_error(request: Request, exc: LeoError) -> JSONResponse:
        return problem(status_of(exc), str(exc), **getattr(exc, "problem_fields", {}))

    @app.exception_handler(Exception)
    async def unexpected_error(request: Request, exc: Exception) -> JSONResponse:
        # The details go to the log (uvicorn logs the exception after this answer), never to the caller.
        return problem(500, "the server failed to answer; the leo run log has the details")
