"""`leo partners create|list|revoke`: partner accounts, their tokens and scopes."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from ..config import DEFAULT_FILE
from ..timeutil import format_time
from .app import partners_app
from .common import FileOption, JsonOption, StoreOption, Table, emit_json, handles_errors, out, project_store

if TYPE_CHECKING:
    from ..store import PartnerRecord

SCOPE_HELP = 'a query as JSON: the partner sees only the objects it matches, like \'{"warehouse": "NYC"}\''


@partners_app.command("create")
@handles_errors
def partners_create(
    name: Annotated[str, typer.Argument(help="the partner's name (letters, digits, '_', '.', '-')")],
    scope: Annotated[str | None, typer.Option("--scope", metavar="QUERY", help=SCOPE_HELP)] = None,
    file: FileOption = Path(DEFAULT_FILE),
    store: StoreOption = None,
    as_json: JsonOption = False,
) -> None:
    """Create a partner account and print its token (shown only this once)."""
    from ..partners import create_partner, scope_from_text, scope_of

    query = scope_from_text(scope) if scope is not None else None
    with project_store(file, store) as (the_store, _):
        record, token = create_partner(the_store, name, query)
    if as_json:
        emit_json({"name": record.name, "token": token, "scope": scope_of(record)})
        return
    shown = f" with scope {record.scope_json}" if record.scope_json else " (no scope: it sees every object)"
    out.print(f"partner '{record.name}' created{shown}", markup=False)
    out.print(f"token (shown only this once; send it as 'Authorization: Bearer <token>'):\n{token}", markup=False)


@partners_app.command("list")
@handles_errors
def partners_list(file: FileOption = Path(DEFAULT_FILE), store: StoreOption = None, as_json: JsonOption = False) -> None:
    """Every partner, live and revoked, with its scope (never its token)."""
    from ..jsonio import dumps

    with project_store(file, store) as (the_store, _):
        rows = [_row(record) for record in the_store.partners()]
    if as_json:
        emit_json(rows)
        return
    table = Table(title="partners", title_justify="left")
    for column in ("name", "scope"):
        table.add_column(column, overflow="fold")
    for column in ("created", "revoked"):
        table.add_column(column, no_wrap=True)  # "revoked" is "-" while the partner is live
    for row in rows:
        table.add_row(
            row["name"],
            dumps(row["scope"]) if row["scope"] else "-",
            row["created_at"],
            row["revoked_at"] or "-",
        )
    out.print(table)


@partners_app.command("revoke")
@handles_errors
def partners_revoke(
    name: Annotated[str, typer.Argument(help="the partner's name")],
    file: FileOption = Path(DEFAULT_FILE),
    store: StoreOption = None,
    as_json: JsonOption = False,
) -> None:
    """Revoke a partner: its token is refused from the next request on, also by a running `leo run`."""
    from ..partners import revoke_partner

    with project_store(file, store) as (the_store, _):
        record = revoke_partner(the_store, name)
    if as_json:
        emit_json(_row(record))
        return
    out.print(f"partner '{record.name}' revoked at {format_time(record.revoked_at)}", markup=False)


def _row(record: PartnerRecord) -> dict:
    from ..partners import scope_of

    return {
        "name": record.name,
        "scope": scope_of(record),
        "created_at": format_time(record.created_at),
        "revoked_at": format_time(record.revoked_at),
    }
