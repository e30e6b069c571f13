"""`leo`: the operator's command line (typer).

Every command takes ``-f/--file`` (default ./pipelines.yaml, env LEO_PIPELINES), ``--store``
(env LEO_STORE) and ``--json``. Exit 0 on success, 1 on a user or config error (one line, no
traceback), 2 on bad usage.
"""

from __future__ import annotations

import asyncio
import functools
import json
import logging
import os
import shutil
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import IO, Annotated, Any, TypeVar

import typer
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn
from rich.table import Table

from leo_runtime import __version__
from leo_runtime.config import DEFAULT_FILE, Config, json_schema, load_config
from leo_runtime.errors import ConfigError, LeoError, Problem, UsageError
from leo_runtime.events import RawJSON
from leo_runtime.operations import check_bot, checkpoint_report, queue_report, reset_target, status_report
from leo_runtime.registry import BotRegistry
from leo_runtime.store import Store, open_store
from leo_runtime.timeutil import format_time
from leo_runtime.yaml_loader import load_yaml

app = typer.Typer(
    name="leo",
    help="leo-runtime: change-data delivery through declarative pipelines of small bots.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
)
bots_app = typer.Typer(help="Built-in and installed bots; pause and resume.", no_args_is_help=True)
queues_app = typer.Typer(help="Inspect and feed queues.", no_args_is_help=True)
checkpoints_app = typer.Typer(help="Where each bot is in its input queues.", no_args_is_help=True)
app.add_typer(bots_app, name="bots")
app.add_typer(queues_app, name="queues")
app.add_typer(checkpoints_app, name="checkpoints")

out = Console(highlight=False, soft_wrap=True)
err = Console(stderr=True, highlight=False, soft_wrap=True)

FileOption = Annotated[
    Path, typer.Option("-f", "--file", envvar="LEO_PIPELINES", help="pipelines file", show_default=True)
]
StoreOption = Annotated[
    str | None, typer.Option("--store", envvar="LEO_STORE", help="store URL (overrides the file's 'store')")
]
JsonOption = Annotated[bool, typer.Option("--json", help="machine-readable output")]

F = TypeVar("F", bound=Callable[..., Any])
PUT_CHUNK = 1000


def handles_errors(func: F) -> F:
    """A LeoError becomes one line on stderr and exit code 1 (usage errors stay exit 2)."""

    @functools.wraps(func)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return func(*args, **kwargs)
        except ConfigError as exc:
            _print_problems(exc)
            raise typer.Exit(1) from None
        except LeoError as exc:
            err.print(f"error: {exc}", markup=False)
            raise typer.Exit(1) from None

    return wrapper  # type: ignore[return-value]


def _print_problems(exc: ConfigError) -> None:
    if not exc.problems:
        err.print(f"error: {exc}", markup=False)
        return
    for problem in exc.problems:
        err.print(str(problem), markup=False)


def _emit_json(value: Any) -> None:
    sys.stdout.write(json.dumps(value, indent=2, ensure_ascii=False, default=str) + "\n")


# -- shared plumbing ----------------------------------------------------------------------------


def _config(file: Path) -> Config:
    return load_config(file, display_name=str(file))


def _store_url_of(file: Path) -> tuple[str, Path]:
    """The store an invalid pipelines file names: its `store:` read from the raw YAML."""
    try:
        data = load_yaml(file.read_text(encoding="utf-8"), str(file)).data  # a YAML error is reported as is
    except OSError as exc:
        raise UsageError(f"cannot read {file}: {exc.strerror}; pass --store URL") from None
    if isinstance(data, dict) and isinstance(data.get("store"), str):
        return data["store"], file.resolve().parent
    if isinstance(data, dict) and "store" not in data:
        return "sqlite:///leo.db", file.resolve().parent
    raise UsageError(f"{file}: 'store' is not a URL; pass --store URL")


def _open(file: Path, store: str | None) -> tuple[Store, Config | None]:
    """The store to use (``--store`` beats LEO_STORE beats the file) and the config if valid."""
    config: Config | None = None
    try:
        config = _config(file)
    except ConfigError:
        config = None
    if store:
        return open_store(store, Path.cwd()), config
    if config is not None:
        return open_store(config.store_url, config.base_dir), config
    if not file.exists():
        raise UsageError(f"{file}: file not found; pass -f FILE or --store URL (or run `leo init`)")
    url, base = _store_url_of(file)
    return open_store(url, base), None


# -- init, validate, schema ---------------------------------------------------------------------


def _scaffold_dir() -> Path:
    import leo_runtime

    return Path(leo_runtime.__file__).resolve().parent / "scaffold"


@app.command()
@handles_errors
def init(
    directory: Annotated[Path, typer.Argument(help="where to create the project")] = Path("."),
    force: Annotated[bool, typer.Option("--force", help="overwrite existing files")] = False,
    file: FileOption = Path(DEFAULT_FILE),
    store: StoreOption = None,
    as_json: JsonOption = False,
) -> None:
    """Scaffold a working project: pipelines.yaml, sample data, one custom bot."""
    source = _scaffold_dir()
    files = sorted(
        path.relative_to(source)
        for path in source.rglob("*")
        if path.is_file() and "__pycache__" not in path.parts
    )
    clashes = [rel for rel in files if (directory / rel).exists()]
    if clashes and not force:
        raise UsageError(
            f"{directory / clashes[0]} already exists; use --force to overwrite, or pick an empty folder"
        )
    for rel in files:
        target = directory / rel
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(source / rel, target)
    if as_json:
        _emit_json({"directory": str(directory.resolve()), "files": [str(rel) for rel in files]})
        return
    out.print(f"created a leo-runtime project in {directory.resolve()}:", markup=False)
    for rel in files:
        out.print(f"  {rel}", markup=False)
    where = "" if directory.resolve() == Path.cwd() else f"cd {directory} && "
    out.print(f"next: {where}leo run    (then, in another terminal: leo status)", markup=False)


@app.command()
@handles_errors
def validate(file: FileOption = Path(DEFAULT_FILE), store: StoreOption = None, as_json: JsonOption = False) -> None:
    """Check the pipelines file; print FILE:LINE:COL: message per problem."""
    try:
        config = _config(file)
    except ConfigError as exc:
        if as_json:
            _emit_json({"valid": False, "file": str(file), "problems": [_problem_dict(p) for p in exc.problems]
                        or [{"severity": "error", "message": str(exc)}]})
        else:
            _print_problems(exc)
        raise typer.Exit(1) from None
    if as_json:
        _emit_json(
            {
                "valid": True,
                "file": str(file),
                "pipelines": sorted(config.model.pipelines),
                "bots": [spec.id for spec in config.bots],
                "problems": [_problem_dict(p) for p in config.warnings],
            }
        )
        return
    for warning in config.warnings:
        err.print(str(warning), markup=False)
    out.print(
        f"{file}: valid ({len(config.model.pipelines)} pipeline(s), {len(config.bots)} bot(s)"
        f"{f', {len(config.warnings)} warning(s)' if config.warnings else ''})",
        markup=False,
    )


def _problem_dict(problem: Problem) -> dict[str, Any]:
    return {
        "file": problem.file,
        "line": problem.line,
        "column": problem.column,
        "severity": problem.severity,
        "message": problem.message,
    }


@app.command()
@handles_errors
def schema(file: FileOption = Path(DEFAULT_FILE), store: StoreOption = None, as_json: JsonOption = False) -> None:
    """Print the JSON Schema of pipelines.yaml (for editors)."""
    _emit_json(json_schema())


# -- run ----------------------------------------------------------------------------------------


@app.command()
@handles_errors
def run(
    file: FileOption = Path(DEFAULT_FILE),
    store: StoreOption = None,
    host: Annotated[str | None, typer.Option("--host", help="HTTP host (overrides server.host)")] = None,
    port: Annotated[int | None, typer.Option("--port", help="HTTP port (overrides server.port; 0 picks one)")] = None,
    no_http: Annotated[bool, typer.Option("--no-http", help="run the bots without the HTTP API")] = False,
    log_level: Annotated[str, typer.Option("--log-level", help="debug, info, warning or error")] = "info",
    drain_timeout: Annotated[
        float, typer.Option("--drain-timeout", min=0, help="seconds a stop waits for running bots to commit")
    ] = 30.0,
    as_json: JsonOption = False,
) -> None:
    """Run every pipeline and the HTTP API until SIGINT/SIGTERM; reload the file on change."""
    from leo_runtime.runtime import Runtime

    _setup_logging(log_level, as_json)
    config = _config(file)
    for warning in config.warnings:
        logging.getLogger("leo.config").warning("%s", warning)
    server_update = {key: value for key, value in (("host", host), ("port", port)) if value is not None}
    if server_update:
        server = config.model.server.model_copy(update=server_update)
        config.model = config.model.model_copy(update={"server": server})
    the_store = open_store(store, Path.cwd()) if store else open_store(config.store_url, config.base_dir)
    runtime = Runtime(config, the_store, serve_http=not no_http, drain_timeout=drain_timeout)
    drained = asyncio.run(runtime.run_until_stopped())
    if not drained:
        # A stuck bot still holds a worker thread: exit without waiting for it (its run was not
        # committed, so the next `leo run` redoes it).
        logging.getLogger("leo").error("exiting with a bot still running")
        os._exit(1)
    the_store.close()


class _JsonLogFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        entry = {
            "time": format_time(int(record.created * 1000)),
            "level": record.levelname.lower(),
            "logger": record.name,
            "message": record.getMessage(),
        }
        if record.exc_info:
            entry["exception"] = self.formatException(record.exc_info)
        return json.dumps(entry)


def _setup_logging(level: str, as_json: bool) -> None:
    numeric = logging.getLevelName(level.upper())
    if not isinstance(numeric, int):
        raise UsageError(f"--log-level must be debug, info, warning or error, not {level!r}")
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(
        _JsonLogFormatter() if as_json else logging.Formatter("%(asctime)s %(levelname)-7s %(name)s: %(message)s")
    )
    root = logging.getLogger("leo")
    root.handlers[:] = [handler]
    root.setLevel(numeric)
    root.propagate = False


# -- status ---------------------------------------------------------------------------------------


@app.command()
@handles_errors
def status(file: FileOption = Path(DEFAULT_FILE), store: StoreOption = None, as_json: JsonOption = False) -> None:
    """Bots (state, checkpoint, lag, last error), queues (depth, head), webhooks, streams."""
    the_store, config = _open(file, store)
    try:
        report = status_report(the_store, config)
    finally:
        the_store.close()
    if as_json:
        _emit_json(report)
        return
    out.print(f"store: {report['store']}", markup=False)
    bots = Table(title="bots", title_justify="left")
    for column in ("bot", "pipeline", "state", "checkpoint", "lag", "runs", "in", "out", "last run", "last error"):
        bots.add_column(column, overflow="fold")
    for bot in report["bots"]:
        where = ", ".join(f"{c['queue']}@{c['checkpoint']}" for c in bot["checkpoints"]) or "-"
        bots.add_row(
            bot["id"], bot["pipeline"] or "-", bot["state"], where, str(bot["lag"]), str(bot["runs"]),
            str(bot["events_in"]), str(bot["events_out"]), bot["last_run_at"] or "-", bot["last_error"] or "",
        )
    out.print(bots)
    _print_queues(report["queues"])
    out.print("webhooks: none    streams: none", markup=False)


def _print_queues(queues: list[dict[str, Any]]) -> None:
    table = Table(title="queues", title_justify="left")
    for column in ("queue", "depth", "head", "oldest", "newest"):
        table.add_column(column)
    for queue in queues:
        table.add_row(queue["name"], str(queue["depth"]), str(queue["head"]), queue["oldest_at"] or "-",
                      queue["newest_at"] or "-")
    out.print(table)


# -- bots ---------------------------------------------------------------------------------------


@bots_app.command("list")
@handles_errors
def bots_list(file: FileOption = Path(DEFAULT_FILE), store: StoreOption = None, as_json: JsonOption = False) -> None:
    """Built-in and installed bots with their settings."""
    entries = []
    for entry in BotRegistry().entries():
        settings = []
        if entry.cls is not None:
            for name, info in entry.cls.Settings.model_fields.items():
                settings.append(
                    {
                        "name": info.alias or name,
                        "type": _type_name(info.annotation),
                        "required": info.is_required(),
                        "default": None if info.is_required() else info.get_default(call_default_factory=True),
                        "description": info.description,
                    }
                )
        entries.append(
            {
                "name": entry.name,
                "origin": entry.origin,
                "kind": entry.cls.kind if entry.cls else None,
                "description": (entry.cls.description or (entry.cls.__doc__ or "").strip().splitlines()[0])
                if entry.cls else "failed to load",
                "settings": settings,
            }
        )
    if as_json:
        _emit_json(entries)
        return
    table = Table(title="bots", title_justify="left")
    for column in ("name", "kind", "origin", "settings", "description"):
        table.add_column(column, overflow="fold")
    for entry in entries:
        shown = ", ".join(
            f"{s['name']}: {s['type']}" + ("" if s["required"] else f" = {json.dumps(s['default'], default=str)}")
            for s in entry["settings"]
        )
        table.add_row(entry["name"], entry["kind"] or "-", entry["origin"], shown, entry["description"])
    out.print(table)
    out.print("custom bots: use module:Class or ./file.py:Class in pipelines.yaml", markup=False)


def _type_name(annotation: Any) -> str:
    name = getattr(annotation, "__name__", None)
    if name == "Annotated" or name is None:
        text = str(annotation).replace("typing.", "")
        return "query" if "Query" in text else text
    return "query" if name == "Query" else name


def _set_paused(bot_id: str, paused: bool, file: Path, store: str | None, as_json: bool) -> None:
    the_store, config = _open(file, store)
    try:
        check_bot(the_store, config, bot_id)
        the_store.set_paused(bot_id, paused)
    finally:
        the_store.close()
    if as_json:
        _emit_json({"bot": bot_id, "paused": paused})
    else:
        out.print(f"bot '{bot_id}' {'paused' if paused else 'resumed'}", markup=False)


@bots_app.command("pause")
@handles_errors
def bots_pause(
    bot: Annotated[str, typer.Argument(help="bot id")],
    file: FileOption = Path(DEFAULT_FILE),
    store: StoreOption = None,
    as_json: JsonOption = False,
) -> None:
    """Pause a bot: it finishes its current run and waits (its checkpoint stays)."""
    _set_paused(bot, True, file, store, as_json)


@bots_app.command("resume")
@handles_errors
def bots_resume(
    bot: Annotated[str, typer.Argument(help="bot id")],
    file: FileOption = Path(DEFAULT_FILE),
    store: StoreOption = None,
    as_json: JsonOption = False,
) -> None:
    """Resume a paused bot."""
    _set_paused(bot, False, file, store, as_json)


# -- queues ---------------------------------------------------------------------------------------


@queues_app.command("list")
@handles_errors
def queues_list(file: FileOption = Path(DEFAULT_FILE), store: StoreOption = None, as_json: JsonOption = False) -> None:
    """Every queue with its depth and head."""
    the_store, _ = _open(file, store)
    try:
        queues = queue_report(the_store)
    finally:
        the_store.close()
    if as_json:
        _emit_json(queues)
    else:
        _print_queues(queues)


@queues_app.command("tail")
@handles_errors
def queues_tail(
    queue: Annotated[str, typer.Argument(help="queue name")],
    count: Annotated[int, typer.Option("-n", "--lines", min=0, help="how many of the newest events")] = 10,
    follow: Annotated[bool, typer.Option("--follow", help="keep printing new events until Ctrl-C")] = False,
    file: FileOption = Path(DEFAULT_FILE),
    store: StoreOption = None,
    as_json: JsonOption = False,
) -> None:
    """Print the newest events of a queue (--json: one event per line)."""
    the_store, _ = _open(file, store)
    try:
        known = {info.name for info in the_store.queues()}
        if queue not in known and not follow:
            raise UsageError(_unknown_queue(queue, known))
        events = _last_events(the_store, queue, count)
        position = events[-1].seq if events else the_store.last_position()
        for event in events:
            _print_event(event, as_json)
        while follow:
            fresh = the_store.read(queue, position, 1000)
            for event in fresh:
                _print_event(event, as_json)
            if fresh:
                position = fresh[-1].seq
            else:
                time.sleep(0.2)
    except KeyboardInterrupt:
        pass
    finally:
        the_store.close()


def _unknown_queue(queue: str, known: set[str]) -> str:
    import difflib

    hint = difflib.get_close_matches(queue, sorted(known), n=1)
    suggestion = f" (did you mean '{hint[0]}'?)" if hint else ""
    return f"unknown queue '{queue}'{suggestion}; see `leo queues list`"


def _last_events(store: Store, queue: str, count: int) -> list[Any]:
    if count == 0:
        return []
    # Walk back from the head in pages: positions are global, so a queue's events are sparse.
    head = store.queue_head(queue)
    found: list[Any] = []
    window = max(count * 4, 1000)
    start = head
    first = store.first_position()
    while start > first and len(found) < count:
        start = max(first, start - window)
        page = store.read(queue, start, count + len(found) + window)
        found = [event for event in page if event.seq <= head]
        window *= 4
    return found[-count:]


def _print_event(event: Any, as_json: bool) -> None:
    if as_json:
        sys.stdout.write(event.to_json() + "\n")
    else:
        sys.stdout.write(f"{event.seq}\t{format_time(event.timestamp)}\t{event.payload_json}\n")
    sys.stdout.flush()


@queues_app.command("put")
@handles_errors
def queues_put(
    queue: Annotated[str, typer.Argument(help="queue name")],
    source: Annotated[str, typer.Argument(help="NDJSON file, one payload per line; - for stdin")] = "-",
    file: FileOption = Path(DEFAULT_FILE),
    store: StoreOption = None,
    as_json: JsonOption = False,
) -> None:
    """Append payloads (one JSON value per line) to a queue. Nothing is written if a line is bad."""
    import re

    if not re.fullmatch(r"[A-Za-z0-9_][A-Za-z0-9_.\-]*", queue):
        raise UsageError(f"invalid queue name {queue!r}: use letters, digits, '_', '.', '-'")
    with _spooled(source) as handle:
        total = _validate_lines(handle, source)
        the_store, _ = _open(file, store)
        first = last = 0
        try:
            with _progress(total, f"put {queue}", enabled=not as_json and total >= 5000) as advance:
                handle.seek(0)
                for chunk in _chunks(handle, PUT_CHUNK):
                    start, end = the_store.append(queue, chunk)
                    first = first or start
                    last = end
                    advance(len(chunk))
        finally:
            the_store.close()
    if as_json:
        _emit_json({"queue": queue, "count": total, "first": first, "last": last})
    else:
        span = f" (positions {first}-{last})" if total else ""
        out.print(f"put {total} event(s) on queue '{queue}'{span}", markup=False)


class _spooled:
    """The input as a seekable binary file (stdin is spooled to a temporary file)."""

    def __init__(self, source: str) -> None:
        self.source = source
        self.handle: IO[bytes] | None = None

    def __enter__(self) -> IO[bytes]:
        if self.source == "-":
            spool = tempfile.TemporaryFile()
            shutil.copyfileobj(sys.stdin.buffer, spool)
            spool.seek(0)
            self.handle = spool
        else:
            try:
                self.handle = open(self.source, "rb")
            except OSError as exc:
                raise UsageError(f"cannot read {self.source}: {exc.strerror}") from None
        return self.handle

    def __exit__(self, *exc: Any) -> None:
        if self.handle is not None:
            self.handle.close()


def _validate_lines(handle: IO[bytes], source: str) -> int:
    name = "stdin" if source == "-" else source
    count = 0
    problems = []
    for number, raw in enumerate(handle, start=1):
        text = raw.strip()
        if not text:
            continue
        try:
            json.loads(text)
        except (ValueError, UnicodeDecodeError) as exc:
            problems.append(f"{name}:{number}: not JSON: {exc}")
            if len(problems) >= 5:
                break
            continue
        count += 1
    if problems:
        raise UsageError("; ".join(problems) + " (nothing was written)")
    return count


def _chunks(handle: IO[bytes], size: int) -> Iterator[list[RawJSON]]:
    chunk: list[RawJSON] = []
    for raw in handle:
        text = raw.strip()
        if text:
            chunk.append(RawJSON(text.decode("utf-8")))
            if len(chunk) >= size:
                yield chunk
                chunk = []
    if chunk:
        yield chunk


class _progress:
    def __init__(self, total: int, label: str, enabled: bool) -> None:
        self.enabled = enabled
        self.total = total
        self.label = label
        self.bar: Progress | None = None

    def __enter__(self) -> Callable[[int], None]:
        if not self.enabled:
            return lambda n: None
        self.bar = Progress(
            TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeRemainingColumn(), console=err
        )
        self.bar.start()
        task = self.bar.add_task(self.label, total=self.total)
        return lambda n: self.bar.advance(task, n) if self.bar else None

    def __exit__(self, *exc: Any) -> None:
        if self.bar is not None:
            self.bar.stop()


# -- checkpoints ----------------------------------------------------------------------------------


@checkpoints_app.command("list")
@handles_errors
def checkpoints_list(
    file: FileOption = Path(DEFAULT_FILE), store: StoreOption = None, as_json: JsonOption = False
) -> None:
    """Every bot's checkpoint in each queue it reads, with the lag behind the head."""
    the_store, _ = _open(file, store)
    try:
        # This listing calls the checkpoint its position (what `reset --to POSITION` takes).
        rows = [
            {"bot": row["bot"], "queue": row["queue"], "position": row["checkpoint"], "head": row["head"],
             "lag": row["lag"], "updated_at": row["updated_at"]}
            for row in checkpoint_report(the_store)
        ]
    finally:
        the_store.close()
    if as_json:
        _emit_json(rows)
        return
    table = Table(title="checkpoints", title_justify="left")
    for column in ("bot", "queue", "position", "head", "lag", "updated"):
        table.add_column(column)
    for row in rows:
        table.add_row(row["bot"], row["queue"], str(row["position"]), str(row["head"]), str(row["lag"]),
                      row["updated_at"])
    out.print(table)


@checkpoints_app.command("reset")
@handles_errors
def checkpoints_reset(
    bot: Annotated[str, typer.Argument(help="bot id")],
    to: Annotated[
        str, typer.Option("--to", help="earliest, latest, an RFC 3339 time, -PT1H (that long ago) or a position")
    ],
    queue: Annotated[str | None, typer.Option("--queue", "-q", help="the input queue (default: the bot's 'in')")] = None,
    file: FileOption = Path(DEFAULT_FILE),
    store: StoreOption = None,
    as_json: JsonOption = False,
) -> None:
    """Move a bot's checkpoint; the bot picks it up at its next run (a run in flight is redone)."""
    the_store, config = _open(file, store)
    try:
        check_bot(the_store, config, bot)
        queue = queue or _default_queue(the_store, config, bot)
        before = the_store.get_checkpoint(bot, queue)
        target = reset_target(the_store, to)
        the_store.set_checkpoint(bot, queue, target.position)
    finally:
        the_store.close()
    result = {
        "bot": bot,
        "queue": queue,
        "from": before,
        "to": target.position,
        "clamped": target.clamped,
        "target": target.description,
    }
    if as_json:
        _emit_json(result)
        return
    note = " (clamped to the oldest retained event)" if target.clamped else ""
    out.print(
        f"bot '{bot}' on '{queue}': checkpoint {before if before is not None else '(none)'} -> {target.position}"
        f"{note}; it resumes after {target.description} at its next run",
        markup=False,
    )


def _default_queue(store: Store, config: Config | None, bot: str) -> str:
    if config is not None:
        for spec in config.bots:
            if spec.id == bot and spec.in_queue:
                return spec.in_queue
    queues = [checkpoint.queue for checkpoint in store.checkpoints(bot)]
    if len(queues) == 1:
        return queues[0]
    raise UsageError(f"bot '{bot}' reads no known queue; pass --queue QUEUE")


@app.command()
def version() -> None:
    """Print the version."""
    out.print(f"leo-runtime {__version__}", markup=False)


def main() -> None:
    """Console-script entry point."""
    app()


if __name__ == "__main__":
    main()
