"""The API reference a partner reads: the ``batch.ready`` notification in ``/openapi.json`` (OpenAPI
3.1 ``webhooks``: its body, its headers, how to verify it and what each answer does), and the
``/docs`` (Swagger UI) and ``/redoc`` pages, whose scripts, styles and icon come from the installed
package (``fastapi-offline`` bundles them), never from a CDN: behind a proxy or offline they work.

The error answers of every route are described where the route is (`problems.problem_responses`).
"""

from __future__ import annotations

from importlib.resources import files
from pathlib import Path
from typing import Annotated, Any, Literal

from fastapi import FastAPI, Header, HTTPException, Request
from fastapi.openapi.docs import get_redoc_html, get_swagger_ui_html
from fastapi.responses import FileResponse, HTMLResponse
from pydantic import BaseModel, Field

from ..delivery.webhooks import DEFAULT_EXPIRE_OLD_AFTER

ASSETS_PATH = "/docs/assets"
ASSETS = {  # name -> media type: what the two pages load, and nothing else is served from there
    "swagger-ui-bundle.js": "text/javascript",
    "swagger-ui.css": "text/css",
    "redoc.standalone.js": "text/javascript",
    "favicon.png": "image/png",
}
NOTIFICATION = "batch.ready"


def assets_dir() -> Path:
    """Where the installed ``fastapi-offline`` package keeps Swagger UI's and ReDoc's files."""
    return Path(str(files("fastapi_offline") / "static"))


class BatchReadyData(BaseModel):
    """What the batch holds and where to download it."""

    webhook_id: str = Field(description="the webhook that sealed the batch", examples=["wh_9d1c2b7a4e5f6a7b"])
    batch_id: str = Field(description="the batch: the same as the webhook-id header", examples=["bat_Vd0yJ3Q2x3t8mZ1aKp4s9w"])
    url: str = Field(description="GET it with your token: NDJSON, one change record per line (gzip when asked)",
                     examples=["https://leo.example.com/v1/batches/bat_Vd0yJ3Q2x3t8mZ1aKp4s9w"])
    records: int = Field(description="how many lines the batch holds (also its Leo-Record-Count header)")
    true_up: bool = Field(description="a snapshot of every matching object (op: snapshot on each line)")


class BatchReady(BaseModel):
    """The notification: small and thin, it never holds the records themselves."""

    type: Literal["batch.ready"]
    timestamp: str = Field(description="when the batch was sealed (RFC 3339 UTC, milliseconds)",
                           examples=["2026-11-26T19:15:00.000Z"])
    data: BatchReadyData


_VERIFY = f"""Every interval that brought matching changes, the runtime seals them into one batch and POSTs
this notification to the webhook's `callback_url`. Download the batch from `data.url` with your
token; the notification itself holds no records.

**Verify it before trusting it** ([Standard Webhooks](https://www.standardwebhooks.com/)):

1. Take the raw body exactly as received (do not re-encode parsed JSON).
2. Sign `{{webhook-id}}.{{webhook-timestamp}}.{{body}}` with HMAC-SHA256, keyed with the base64-decoded
   part of your secret after `whsec_`, and base64 the digest.
3. `webhook-signature` holds one or more space-separated `v1,<base64>` signatures: accept the
   notification when any of them equals yours (compare in constant time). After a secret rotation
   (`POST /v1/webhooks/{{id}}/rotate-secret`) it holds two, the new secret's first, for
   `expire_old_after` seconds (default {DEFAULT_EXPIRE_OLD_AFTER:,}): a receiver holding either secret
   keeps verifying while you deploy the new one.
4. Refuse a `webhook-timestamp` more than 5 minutes away from now (a replayed old request).

`webhook-id` is the batch id, the same on every retry and replay of this notification: use it to
handle each batch once. Libraries that verify this: `standardwebhooks` (Python, JavaScript and
more), `leo_runtime.client.verify_webhook`, and the Node and Java samples shipped with leo-runtime
(`examples/`)."""

_ANSWERS = {
    "2XX": {"description": "Delivered: the notification's retries end. Answer within `webhooks.timeout` (15 s by "
                           "default); download the batch afterwards, at your pace, until it expires."},
    "410": {"description": "Gone: the webhook is disabled (delivery `disabled`); no notification is sent until you "
                           "PATCH it back to `status: active`. Its batches go on being sealed and stay downloadable."},
    "default": {"description": "Anything else (another status, a redirect, which is never followed, a timeout or a "
                               "refused connection) is retried on the runtime's `webhooks.retry_schedule` (by default "
                               "after 5 s, 5 min, 30 min, 2 h, 5 h, 10 h and 10 h), or after your `Retry-After`. "
                               "When the retries run out the webhook shows delivery `failing`; the batch stays "
                               "listed as unfetched, and `POST /v1/webhooks/{id}/replay` sends it again."},
}


def install(app: FastAPI) -> None:
    """Document the notification and serve /docs, /redoc and their assets (the app must be made
    with ``docs_url=None, redoc_url=None``)."""

    @app.webhooks.post(NOTIFICATION, summary="A batch was sealed: download it", description=_VERIFY,
                       tags=["webhooks"])
    def batch_ready(
        body: BatchReady,
        webhook_id: Annotated[str, Header(alias="webhook-id", description="the batch id: the same on every retry")],
        webhook_timestamp: Annotated[str, Header(alias="webhook-timestamp",
                                                 description="seconds since the epoch when this attempt was sent")],
        webhook_signature: Annotated[str, Header(
            alias="webhook-signature", description="space-separated `v1,<base64 HMAC-SHA256>` signatures (two "
            "while an old secret still signs after a rotation)", examples=["v1,K5oZfzN95Z9UVu1EsfQmfVNQhnkZ2pj9o9NDN/H/pI4="])],
    ) -> None:
        """Documentation only: the runtime sends this request; your receiver answers it."""

    _document_answers(app)

    @app.get("/docs", include_in_schema=False)
    async def swagger_ui(request: Request) -> HTMLResponse:
        root = request.scope.get("root_path", "")
        return get_swagger_ui_html(
            openapi_url=f"{root}{app.openapi_url}", title=f"{app.title}: API reference",
            swagger_js_url=f"{root}{ASSETS_PATH}/swagger-ui-bundle.js", swagger_css_url=f"{root}{ASSETS_PATH}/swagger-ui.css",
            swagger_favicon_url=f"{root}{ASSETS_PATH}/favicon.png",
            swagger_ui_parameters={"validatorUrl": None},  # Swagger UI would send the spec to an online validator
        )

    @app.get("/redoc", include_in_schema=False)
    async def redoc(request: Request) -> HTMLResponse:
        root = request.scope.get("root_path", "")
        return get_redoc_html(openapi_url=f"{root}{app.openapi_url}", title=f"{app.title}: API reference",
                              redoc_js_url=f"{root}{ASSETS_PATH}/redoc.standalone.js",
                              redoc_favicon_url=f"{root}{ASSETS_PATH}/favicon.png", with_google_fonts=False)

    @app.get(ASSETS_PATH + "/{name}", include_in_schema=False)
    async def asset(name: str) -> FileResponse:
        media_type = ASSETS.get(name)
        if media_type is None:
            raise HTTPException(404, "no such documentation asset")
        return FileResponse(assets_dir() / name, media_type=media_type,
                            headers={"Cache-Control": "public, max-age=86400"})


def _document_answers(app: FastAPI) -> None:
    """The notification's answers are the receiver's, not a route's: what each one makes the
    runtime do (FastAPI would list a 200 and its own 422 instead)."""
    build = app.openapi

    def openapi() -> dict[str, Any]:
        schema = build()
        operation = schema.get("webhooks", {}).get(NOTIFICATION, {}).get("post")
        if operation is not None:
            operation["responses"] = _ANSWERS
            operation["operationId"] = "batch_ready"
        return schema

    app.openapi = openapi  # type: ignore[method-assign]
