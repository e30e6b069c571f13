"""Admin routes (``/v1/admin``, the operator's token): partner accounts and object ingest."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Depends, FastAPI, Request, Response
from pydantic import BaseModel, ConfigDict, Field, field_validator

from ..config import NAME_PATTERN
from ..errors import QueryError
from ..partners import NAME_MAX, check_scope, create_partner, revoke_partner, scope_of
from ..store import PartnerRecord
from ..timeutil import format_time
from .auth import install_admin_token, require_admin
from .bodies import LeoRoute
from .problems import problem_responses

router = APIRouter(prefix="/v1/admin", tags=["admin"], route_class=LeoRoute, dependencies=[Depends(require_admin)],
                   responses=problem_responses(401, 403))


class PartnerIn(BaseModel):
    """A new partner account."""

    model_config = ConfigDict(extra="forbid")

    name: str = Field(pattern=NAME_PATTERN, max_length=NAME_MAX, examples=["acme"])
    scope: dict[str, Any] | None = Field(
        None, description="a query (CONTRACT.md section 3): the partner sees only objects it matches",
        examples=[{"warehouse": "NYC"}],
    )

    @field_validator("scope")
    @classmethod
    def _valid_query(cls, scope: dict[str, Any] | None) -> dict[str, Any] | None:
        try:
            return check_scope(scope, "scope")
        except QueryError as exc:
            raise ValueError(str(exc).removeprefix("scope: ")) from None


class PartnerCreated(BaseModel):
    """The new partner and its token: the only time the token is shown."""

    name: str
    token: str = Field(description="send as 'Authorization: Bearer <token>'; shown only this once")
    scope: dict[str, Any] | None


class PartnerOut(BaseModel):
    """A partner account (never its token)."""

    name: str
    scope: dict[str, Any] | None
    created_at: str
    revoked_at: str | None


def install(app: FastAPI) -> None:
    """Add the admin routes; they answer 403 while ``LEO_ADMIN_TOKEN`` is unset."""
    install_admin_token(app)
    app.include_router(router)


def partner_out(record: PartnerRecord) -> PartnerOut:
    return PartnerOut(name=record.name, scope=scope_of(record), created_at=format_time(record.created_at) or "",
                      revoked_at=format_time(record.revoked_at))


@router.post("/partners", status_code=201, summary="Create a partner account",
             responses=problem_responses(409, 413, 422))
def create(body: PartnerIn, request: Request) -> PartnerCreated:
    """A new partner with its token (shown only here) and optional scope; 409 if the name is taken."""
    record, token = create_partner(request.app.state.store, body.name, body.scope)
    return PartnerCreated(name=record.name, token=token, scope=scope_of(record))


@router.get("/partners", summary="List partner accounts")
def list_partners(request: Request) -> list[PartnerOut]:
    """Every partner, live and revoked, by name."""
    return [partner_out(record) for record in request.app.state.store.partners()]


@router.delete("/partners/{name}", status_code=204, summary="Revoke a partner", responses=problem_responses(404))
def revoke(name: str, request: Request) -> Response:
    """Revoke a partner: its token is refused from the next request on, in every process."""
    revoke_partner(request.app.state.store, name)
    return Response(status_code=204)
