"""`leo streams list|reset`: partner streams with their partitions, checkpoints, heads and lags."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

from ..config import DEFAULT_FILE
from ..errors import InputError, NotFound, UsageError, unknown_name
from ..safetext import shown
from ..when import RESET_FORMS, forms_text
from .app import streams_app
from .common import FileOption, JsonOption, StoreOption, Table, emit_json, handles_errors, out, project_store

if TYPE_CHECKING:
    from ..store import Store


@streams_app.command("list")
@handles_errors
def streams_list(file: FileOption = Path(DEFAULT_FILE), store: StoreOption = None, as_json: JsonOption = False) -> None:
    """Every partner stream: its partner, and per partition the checkpoint, head and lag."""
    from ..delivery.streams import stream_report

    with project_store(file, store, read_only=True) as (the_store, _):
        streams = stream_report(the_store)
    if as_json:
        emit_json(streams)
        return
    print_streams(streams)


def print_streams(streams: list[dict[str, Any]]) -> None:
    """The streams table (`leo streams list`, `leo status`): one row per partition."""
    if not streams:
        out.print("streams: none", markup=False)
        return
    table = Table(title="streams", title_justify="left")
    for column in ("stream", "partner", "type", "gen", "partition", "checkpoint", "head", "lag", "leased until"):
        table.add_column(column, overflow="fold")
    for stream in streams:
        for part in stream["partitions"]:
            first = part["partition"] == stream["partitions"][0]["partition"]
            cells = (stream["id"] if first else "", (stream["partner"] or "?") if first else "",
                     stream["object_type"] if first else "", str(stream["generation"]) if first else "",
                     str(part["partition"]), str(part["checkpoint"]), str(part["head"]), str(part["lag"]),
                     part["leased_until"] or "-")
            table.add_row(*cells)
    out.print(table)


@streams_app.command("reset")
@handles_errors
def streams_reset(
    stream_id: Annotated[str, typer.Argument(help="the stream's id (leo streams list)")],
    to: Annotated[str, typer.Option("--to", metavar="WHEN", help=f"{forms_text(RESET_FORMS)}; see README, WHEN")],
    partitions: Annotated[
        str | None, typer.Option("--partitions", metavar="LIST", help="partitions to reset, like 0,2 (default: all)")
    ] = None,
    file: FileOption = Path(DEFAULT_FILE),
    store: StoreOption = None,
    as_json: JsonOption = False,
) -> None:
    """Move a stream's checkpoints (as POST /v1/streams/ID/reset does): its consumers replay from
    there, and the generation grows so commits of earlier reads are refused."""
    from ..delivery.positions import encode_position
    from ..delivery.streams import position_in, reset
    from ..operations import retention_of

    chosen = _partitions(partitions)
    with project_store(file, store) as (the_store, config):
        record = _stream(the_store, stream_id)
        when = to
        if (opaque := position_in(record, to)) is not None:  # a position `leo streams list` showed: its partition
            partition, seq = opaque
            if chosen is not None and chosen != [partition]:
                raise UsageError(f"--to {shown(to)} is a position of partition {partition}; leave --partitions out "
                                 f"or pass --partitions {partition}")
            chosen, when = [partition], str(seq)
        try:
            updated, moved = reset(the_store, record, when, chosen, retention_of(config), field="--to",
                                   partitions_field="--partitions")
        except InputError as exc:  # a value that does not parse, or names no partition: bad usage
            raise UsageError(str(exc)) from None
    for m in moved:
        m["position"] = encode_position(stream_id, m["partition"], m["position"])
    result = {"stream": stream_id, "generation": updated.generation,
              "partitions": [{"partition": m["partition"], "checkpoint": m["position"], "clamped": m["clamped"]}
                             for m in moved]}
    if as_json:
        emit_json(result)
        return
    clamped = " (clamped to the oldest retained record)" if any(m["clamped"] for m in moved) else ""
    where = ", ".join(f"{m['partition']}@{m['position']}" for m in moved)
    out.print(f"stream '{stream_id}' reset to {to}{clamped}: partitions {where}; generation {updated.generation}",
              markup=False)


def _partitions(text: str | None) -> list[int] | None:
    if text is None:
        return None
    items = [item.strip() for item in text.split(",")]
    if not all(item.isascii() and item.isdecimal() and len(item) <= 4 for item in items):
        raise UsageError(f"--partitions {shown(text)}: write partition numbers separated by commas, like 0,2")
    return [int(item) for item in items]


def _stream(store: Store, stream_id: str) -> Any:
    from ..delivery.streams import stream_by_id

    try:
        return stream_by_id(store, stream_id)
    except NotFound:
        ids = [record.id for record in store.streams()]
        raise unknown_name("stream", stream_id, ids, "`leo streams list` shows them") from None
