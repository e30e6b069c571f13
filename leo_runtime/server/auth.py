"""Bearer authentication: partner tokens (looked up in the store on every request) and the
operator's admin token (env ``LEO_ADMIN_TOKEN``, read when the app is built).

The lookup is one indexed read of a WAL database (tens of microseconds), done on the event loop:
a thread hop would cost more than the read.

Every ``/v1`` route checks `current_partner` (a dependency) or `require_admin` (the route
class's guard, run before the body is read). A missing, malformed, unknown or revoked token is a
401 with ``WWW-Authenticate: Bearer`` (RFC 6750); the right kind of token on the wrong kind of
route is a 403 that says which token the route needs.
"""

from __future__ import annotations

import hmac
import os
import re
from typing import Any

from fastapi import FastAPI, HTTPException, Request
from fastapi.security import HTTPBearer

from ..partners import Partner, authenticate, hash_token

ADMIN_TOKEN_ENV = "LEO_ADMIN_TOKEN"
PARTNER_SCOPE_KEY = "leo.partner"
"""Where a request's scope keeps the partner its token belongs to, once authenticated."""
REALM = "leo"
# One token of visible ASCII (a superset of RFC 6750's b64token, so any LEO_ADMIN_TOKEN an
# operator picks works); 512 characters is far above any token this runtime issues.
_TOKEN = re.compile(r"[\x21-\x7e]{1,512}")
_BEARER = re.compile(rf"^Bearer +({_TOKEN.pattern}) *$", re.IGNORECASE)

# The schemes only describe the tokens in OpenAPI (see `document_security`).
partner_scheme = HTTPBearer(
    scheme_name="partnerToken",
    description="A partner token from `leo partners create` or `POST /v1/admin/partners` (shown once).",
    auto_error=False,
)
admin_scheme = HTTPBearer(
    scheme_name="adminToken",
    description="The operator's token: the value of env LEO_ADMIN_TOKEN where `leo run` runs. "
    "Admin routes are off when it is unset.",
    auto_error=False,
)


def document_security(app: FastAPI) -> None:
    """Describe the tokens in OpenAPI: the admin token on every ``/v1/admin`` route, the partner
    token on every other ``/v1`` route.

    The routes check tokens themselves (`current_partner`, `require_admin`) rather than through
    FastAPI security dependencies: one dependency level less on the Get Object hot path (about a
    third of FastAPI's time per call), and admin routes authenticate before reading a body.
    """
    build = app.openapi

    def openapi() -> dict[str, Any]:
        schema = build()
        schemes = schema.setdefault("components", {}).setdefault("securitySchemes", {})
        for scheme in (partner_scheme, admin_scheme):
            schemes[scheme.scheme_name] = scheme.model.model_dump(mode="json", by_alias=True, exclude_none=True)
        for path, item in schema.get("paths", {}).items():
            if path.startswith("/v1/"):
                scheme = admin_scheme if path.startswith("/v1/admin/") else partner_scheme
                for operation in item.values():
                    operation["security"] = [{scheme.scheme_name: []}]
        return schema

    app.openapi = openapi  # type: ignore[method-assign]


def install(app: FastAPI) -> None:
    """Read ``LEO_ADMIN_TOKEN`` once, keeping only its hash (blank or unset: admin routes off),
    and describe both tokens in OpenAPI."""
    token = os.environ.get(ADMIN_TOKEN_ENV, "").strip()
    usable = _TOKEN.fullmatch(token) is not None
    app.state.admin_token_hash = hash_token(token) if usable else None
    app.state.admin_off = (
        f"admin routes are off: set {ADMIN_TOKEN_ENV} in the environment of `leo run` to turn them on" if not token
        else f"admin routes are off: {ADMIN_TOKEN_ENV} must be one token of visible ASCII, no spaces, "
        "at most 512 characters (no Authorization header can carry it)" if not usable
        else None
    )
    document_security(app)


def unauthorized(detail: str, error: str | None = None) -> HTTPException:
    """A 401 with the RFC 6750 challenge (``error`` only once a token was presented)."""
    challenge = f'Bearer realm="{REALM}"'
    if error:
        challenge += f', error="{error}"'
    return HTTPException(401, detail, headers={"WWW-Authenticate": challenge})


def bearer_token(request: Request) -> str:
    """The token of the request's ``Authorization: Bearer`` header, or a 401 saying what is wrong."""
    values = request.headers.getlist("authorization")
    if not values:
        raise unauthorized("this route needs a token: send 'Authorization: Bearer <token>'")
    if len(values) > 1:
        raise unauthorized("send exactly one Authorization header", "invalid_request")
    match = _BEARER.match(values[0])
    if match is None:
        # Never quote the header: a token sent without its scheme would be echoed to anyone.
        scheme = values[0].strip().split(" ", 1)[0]
        if not scheme:
            reason = "the Authorization header is empty"
        elif scheme.lower() != "bearer":
            reason = "the Authorization scheme must be Bearer: send 'Authorization: Bearer <token>'"
        else:
            reason = "the Authorization header must be 'Bearer <token>': one token of visible ASCII, no spaces"
        raise unauthorized(reason, "invalid_request")
    return match.group(1)


def is_admin(request: Request, token: str) -> bool:
    """Whether `token` is the operator's (constant-time comparison of hashes)."""
    expected: bytes | None = request.app.state.admin_token_hash
    return expected is not None and hmac.compare_digest(hash_token(token), expected)


async def current_partner(request: Request) -> Partner:
    """The live partner behind the request's token (partner routes)."""
    token = bearer_token(request)
    partner = authenticate(request.app.state.store, token)
    if partner is not None:
        request.scope[PARTNER_SCOPE_KEY] = partner  # who called, for /metrics (leo_get_object_requests_total)
        return partner
    if is_admin(request, token):
        raise HTTPException(403, "the admin token cannot call partner routes: use a partner token (leo partners create)")
    raise unauthorized("the token is unknown or was revoked", "invalid_token")


async def require_admin(request: Request) -> None:
    """Admit only the operator's token (admin routes)."""
    if request.app.state.admin_off:
        raise HTTPException(403, request.app.state.admin_off)
    token = bearer_token(request)
    if is_admin(request, token):
        return
    if authenticate(request.app.state.store, token) is not None:
        raise HTTPException(403, f"this route needs the admin token ({ADMIN_TOKEN_ENV}), not a partner token")
    raise unauthorized("the token is not the admin token", "invalid_token")
