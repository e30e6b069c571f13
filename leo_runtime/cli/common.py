"""What every command shares: options, error handling, output, opening the store, progress."""

from __future__ import annotations

import functools
import json
import os
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Annotated, Any, TypeVar

import typer
from rich.console import Console
from rich.progress import (
    BarColumn,
    DownloadColumn,
    MofNCompleteColumn,
    Progress,
    TextColumn,
    TimeRemainingColumn,
)

from ..config import Config, load_config
from ..config.loader import read_pipelines_text
from ..errors import ConfigError, ConfigFileMissing, InputError, LeoError, UsageError
from ..safetext import bounded, redact_urls
from ..store import Store, open_store
from ..yaml_loader import load_yaml

# User and bot text is printed verbatim: no rich markup ("[/x]" in a bot's error would crash a
# table), no ":emoji:" codes, no highlighting. Every table cell and message goes through these.
out = Console(highlight=False, soft_wrap=True, markup=False, emoji=False)
err = Console(stderr=True, highlight=False, soft_wrap=True, markup=False, emoji=False)

FileOption = Annotated[
    Path, typer.Option("-f", "--file", envvar="LEO_PIPELINES", help="pipelines file", show_default=True)
]
StoreOption = Annotated[
    str | None, typer.Option("--store", envvar="LEO_STORE", help="store URL (overrides the file's 'store')")
]
JsonOption = Annotated[bool, typer.Option("--json", help="machine-readable output")]

F = TypeVar("F", bound=Callable[..., Any])


def handles_errors(func: F) -> F:
    """Turn errors into exit codes, one line on stderr and no traceback.

    Exit 2 (bad usage): the command line itself is wrong: typer's own checks (unknown option,
    missing argument, a value of the wrong type or out of range) and every `UsageError`: a
    value that does not parse (``--to``, ``--log-level``), or that names nothing there is
    (an unknown bot, a queue the bot does not read, a ``-f`` that is no file).
    Exit 1: the command line is fine but what it points at is not: an invalid pipelines file
    (every problem, located), input that is not acceptable (an `InputError`: lines that are
    not strict JSON, objects without a key, a bad scope or name; HTTP 422), a store that cannot be opened, a folder in the
    way, an OS error. Passwords in URLs are never printed.
    """

    @functools.wraps(func)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return func(*args, **kwargs)
        except InputError as exc:  # bad data (JSON lines, objects, a scope): exit 1, not usage
            print_error(exc)
            raise typer.Exit(1) from None
        except UsageError as exc:  # before ConfigError: a missing -f file is both
            print_error(exc)
            raise typer.Exit(2) from None
        except ConfigError as exc:
            print_problems(exc)
            raise typer.Exit(1) from None
        except LeoError as exc:
            print_error(exc)
            raise typer.Exit(1) from None
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
    sys.stdout.write(json.dumps(value, indent=2, ensure_ascii=False, default=str) + "\n")



def load(file: Path, *, import_bots: bool = True) -> Config:
    """The validated pipelines file (ConfigError lists every problem)."""
    return load_config(file, display_name=str(file), import_bots=import_bots)


def _store_url_of(file: Path) -> tuple[str, Path]:
    """The store an invalid pipelines file names: its `store:` read from the raw YAML."""
    try:
        text = read_pipelines_text(file, str(file))  # bounded (never -f /dev/zero into memory)
    except ConfigFileMissing as exc:
        raise ConfigFileMissing(f"{exc}; or pass --store URL") from None
    data = load_yaml(text, str(file)).data  # a YAML error is reported as is
    if isinstance(data, dict) and isinstance(data.get("store"), str):
        return data["store"], file.resolve().parent
    if isinstance(data, dict) and "store" not in data:
        return "sqlite:///leo.db", file.resolve().parent
    raise UsageError(f"{file}: 'store' is not a URL; pass --store URL")


def config_store(config: Config | None, store: str | None, *, read_only: bool = False) -> Store:
    """``--store`` (relative to the current folder) if given, else the store of `config`."""
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
        self.label = label
        self.unit = unit
        self.bar: Progress | None = None

    def __enter__(self) -> Callable[[int], None]:
        if not self.enabled:
            return lambda n: None
        done = DownloadColumn() if self.unit == "bytes" else MofNCompleteColumn()
        self.bar = Progress(
            TextColumn("{task.description}", markup=False), BarColumn(), done, TimeRemainingColumn(), console=err
        )
        self.bar.start()
        task = self.bar.add_task(self.label, total=self.total or None)
        return lambda n: self.bar.advance(task, n) if self.bar else None

    def __exit__(self, *exc: Any) -> None:
        if self.bar is not None:
            self.bar.stop()
