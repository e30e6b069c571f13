"""What every command shares: options, error handling, output, opening the store, progress."""

from __future__ import annotations

import functools
import json
import os
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, TypeVar

import typer

from ..errors import ConfigError, ConfigFileMissing, LeoError, UsageError
from ..safetext import bounded, printable, redact_urls

if TYPE_CHECKING:  # imported where used: `leo --help` needs neither rich nor the models nor the store
    from rich.console import Console
    from rich.progress import Progress

    from ..config import Config
    from ..store import Store


class Table:
    """A view's table of text cells. On a terminal rich draws it, folded to the window; anywhere
    else (a pipe, a file, ``watch``) it is plain and full width: a header line, then one line per
    row, cells separated by tabs, nothing wrapped or cut (``leo status | grep erp``, ``cut -f``).

    Cells are text from outside too: shown through `safetext.printable` (a tab or newline inside
    a cell is escaped as well, so one row stays one line), never read as rich markup."""

    def __init__(self, title: str = "", **_style: Any) -> None:
        self.title = title
        self.columns: list[tuple[str, dict[str, Any]]] = []
        self.rows: list[list[str]] = []

    def add_column(self, header: str, **style: Any) -> None:
        self.columns.append((header, style))

    def add_row(self, *cells: str) -> None:
        self.rows.append([printable(cell) for cell in cells])

    def plain_lines(self) -> list[str]:
        """The table as it is written to a pipe or a file."""
        lines = [f"# {self.title}"] if self.title else []
        lines.append("\t".join(header for header, _ in self.columns))
        lines.extend("\t".join(_one_line(cell) or "-" for cell in row) for row in self.rows)
        return lines

    def rich_table(self) -> Any:
        from rich.table import Table as RichTable
        from rich.text import Text

        table = RichTable(title=self.title or None, title_justify="left")
        for header, style in self.columns:
            table.add_column(header, **style)
        for row in self.rows:
            table.add_row(*(Text(cell) for cell in row))  # Text: shown as written, never markup
        return table


def _one_line(cell: str) -> str:
    return cell.replace("\t", "\\t").replace("\n", "\\n") if "\t" in cell or "\n" in cell else cell


class SafeConsole:
    """Where the CLI prints: text from outside as written but with its control characters
    escaped (`safetext.printable`), so an ESC sequence in a callback's answer or a bot's error
    never retitles, clears or colours the operator's terminal, and never read as rich markup
    ("[/x]" in a bot's error). A `Table` is drawn by rich on a terminal and written as plain
    lines elsewhere; rich is imported only then (and for progress bars)."""

    def __init__(self, *, stderr: bool = False) -> None:
        self.stderr = stderr
        self._console: Console | None = None

    @property
    def console(self) -> Console:
        if self._console is None:
            from rich.console import Console

            # User and bot text is printed verbatim: no rich markup ("[/x]" in a bot's error
            # would crash a table), no ":emoji:" codes, no highlighting, controls escaped.
            self._console = Console(stderr=self.stderr, highlight=False, soft_wrap=True, markup=False, emoji=False)
        return self._console

    def print(self, *objects: str | Table, **kwargs: Any) -> None:
        """Each object on its own terms: text as written (controls escaped), then a newline; a
        `Table` drawn by rich on a terminal, else as plain lines."""
        stream = sys.stderr if self.stderr else sys.stdout
        for item in objects:
            if not isinstance(item, Table):
                stream.write(printable(str(item)) + "\n")
            elif _is_terminal(stream):
                stream.flush()
                self.console.print(item.rich_table())
            else:
                stream.write("".join(line + "\n" for line in item.plain_lines()))
        stream.flush()


def _is_terminal(stream: Any) -> bool:
    try:
        return bool(stream.isatty())
    except (AttributeError, ValueError, OSError):  # closed, or not a file at all
        return False


out = SafeConsole()
err = SafeConsole(stderr=True)

FileOption = Annotated[
    Path, typer.Option("-f", "--file", envvar="LEO_PIPELINES", metavar="FILE", help="pipelines file", show_default=True)
]
StoreOption = Annotated[
    str | None, typer.Option("--store", envvar="LEO_STORE", metavar="URL", help="store URL (overrides the file's 'store')")
]
JsonOption = Annotated[bool, typer.Option("--json", help="machine-readable output")]

F = TypeVar("F", bound=Callable[..., Any])


def handles_errors(func: F) -> F:
    """Turn errors into exit codes, one line on stderr and no traceback. A `LeoError` exits with
    its class's ``exit_code`` (see `leo_runtime.errors`):

    Exit 2 (bad usage): the command line itself is wrong: typer's own checks (unknown option,
    missing argument, a value of the wrong type or out of range), every `UsageError` (a value
    that does not parse, like ``--to`` or ``--log-level``; a ``-f`` that is no file) and every
    name that names nothing there is, whatever it names (`errors.unknown_name`, `NotFound`: a
    bot, a queue, a partner, a webhook, a stream, an object type), with a did-you-mean.
    Exit 1: the command line is fine but what it points at is not: an invalid pipelines file
    (every problem, located), input that is not acceptable (an `InputError`: lines that are
    not strict JSON, objects without a key, a bad scope or name; HTTP 422), a store that cannot be opened, a folder in the
    way, an OS error. Passwords in URLs are never printed.
    """

    @functools.wraps(func)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return func(*args, **kwargs)
        except LeoError as exc:  # the class says the exit code (errors.py), not the order of clauses
            if isinstance(exc, ConfigError):
                print_problems(exc)
            else:
                print_error(exc)
            raise typer.Exit(exc.exit_code) from None
        except BrokenPipeError:  # `leo ... | head`: the reader is gone, so is the output
            os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
            raise typer.Exit(1) from None
        except OSError as exc:
            print_error(f"{exc.filename + ': ' if isinstance(exc.filename, str) else ''}{exc.strerror or exc}")
            raise typer.Exit(1) from None
        except KeyboardInterrupt:
            raise typer.Exit(130) from None

    return wrapper  # type: ignore[return-value]


def print_error(error: object) -> None:
    """``error: MESSAGE`` on stderr, verbatim but bounded and with URL passwords hidden."""
    err.print(f"error: {bounded(redact_urls(str(error)))}")


def print_problems(exc: ConfigError) -> None:
    """Every located problem of a ConfigError, one per line (or its message when it has none)."""
    if not exc.problems:
        print_error(exc)
        return
    for problem in exc.problems:
        err.print(redact_urls(str(problem)))


def emit_json(value: Any) -> None:
    """`value` as indented JSON on stdout; controls JSON leaves raw (C1, bidi) are ``\\u`` escaped."""
    sys.stdout.write(printable(json.dumps(value, indent=2, ensure_ascii=False, default=str), json=True) + "\n")



def load(file: Path, *, import_bots: bool = True) -> Config:
    """The validated pipelines file (ConfigError lists every problem)."""
    from ..config import load_config

    return load_config(file, display_name=str(file), import_bots=import_bots)


def _store_url_of(file: Path) -> tuple[str, Path]:
    """The store an invalid pipelines file names: its `store:` read from the raw YAML."""
    from ..config.loader import read_pipelines_text
    from ..yaml_loader import Unset, load_yaml

    try:
        text = read_pipelines_text(file, str(file))  # bounded (never -f /dev/zero into memory)
    except ConfigFileMissing as exc:
        raise ConfigFileMissing(f"{exc}; or pass --store URL") from None
    data = load_yaml(text, str(file), unset="warn").data  # a YAML error is reported as is
    if isinstance(data, dict) and isinstance(data.get("store"), Unset):
        raise LeoError(f"{file}: 'store: {data['store']}' names an environment variable that is not set; "
                       "set it or pass --store URL")
    if isinstance(data, dict) and isinstance(data.get("store"), str):
        return data["store"], file.resolve().parent
    if isinstance(data, dict) and "store" not in data:
        return "sqlite:///leo.db", file.resolve().parent
    raise UsageError(f"{file}: 'store' is not a URL; pass --store URL")


def config_store(config: Config | None, store: str | None, *, read_only: bool = False) -> Store:
    """``--store`` (relative to the current folder) if given, else the store of `config`."""
    from ..store import open_store

    if store:
        return open_store(store, Path.cwd(), read_only=read_only)
    assert config is not None, "without --store, the store is the config's"
    return open_store(config.store_url, config.base_dir, read_only=read_only)


def open_project(file: Path, store: str | None, *, read_only: bool = False) -> tuple[Store, Config | None]:
    """The store to use (``--store`` beats LEO_STORE beats the file) and the config if valid.

    No custom bot code is imported (these commands need bot ids and queues, not bot classes:
    see `load_config`'s ``import_bots``). ``read_only=True`` is for commands that only look:
    the store is then neither created nor migrated nor written.
    """
    config: Config | None = None
    try:
        config = load(file, import_bots=False)
    except ConfigError:
        config = None
    if store or config is not None:
        return config_store(config, store, read_only=read_only), config
    from ..store import open_store

    if not file.exists():
        raise UsageError(f"{file}: file not found; pass -f FILE or --store URL (or run `leo init`)")
    url, base = _store_url_of(file)
    return open_store(url, base, read_only=read_only), None


@contextmanager
def project_store(file: Path, store: str | None, *, read_only: bool = False) -> Iterator[tuple[Store, Config | None]]:
    """`open_project` for a ``with`` block: the store is closed when the block ends, however it ends."""
    the_store, config = open_project(file, store, read_only=read_only)
    try:
        yield the_store, config
    finally:
        the_store.close()


class progress:
    """A progress bar on stderr while a long command works: ``with progress(...) as advance``;
    ``advance(n)`` adds n done. ``unit="bytes"`` shows sizes; a total of 0 means unknown."""

    def __init__(self, total: int, label: str, enabled: bool, *, unit: str = "items") -> None:
        self.enabled = enabled
        self.total = total
        self.label = printable(label)  # it may name a file or a queue
        self.unit = unit
        self.bar: Progress | None = None

    def __enter__(self) -> Callable[[int], None]:
        if not self.enabled:
            return lambda n: None
        from rich.progress import BarColumn, DownloadColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

        done = DownloadColumn() if self.unit == "bytes" else MofNCompleteColumn()
        self.bar = Progress(
            TextColumn("{task.description}", markup=False), BarColumn(), done, TimeRemainingColumn(), console=err.console
        )
        self.bar.start()
        task = self.bar.add_task(self.label, total=self.total or None)
        return lambda n: self.bar.advance(task, n) if self.bar else None

    def __exit__(self, *exc: Any) -> None:
        if self.bar is not None:
            self.bar.stop()
