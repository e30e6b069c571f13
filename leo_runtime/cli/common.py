"""What every command shares: options, error handling, output, opening the store, progress."""

from __future__ import annotations

import functools
import json
import sys
from collections.abc import Callable
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
from ..errors import ConfigError, LeoError, UsageError
from ..store import Store, open_store
from ..yaml_loader import load_yaml

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


def handles_errors(func: F) -> F:
    """A LeoError becomes one line on stderr and exit code 1 (usage errors stay exit 2)."""

    @functools.wraps(func)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return func(*args, **kwargs)
        except ConfigError as exc:
            print_problems(exc)
            raise typer.Exit(1) from None
        except LeoError as exc:
            err.print(f"error: {exc}", markup=False)
            raise typer.Exit(1) from None

    return wrapper  # type: ignore[return-value]


def print_problems(exc: ConfigError) -> None:
    if not exc.problems:
        err.print(f"error: {exc}", markup=False)
        return
    for problem in exc.problems:
        err.print(str(problem), markup=False)


def emit_json(value: Any) -> None:
    sys.stdout.write(json.dumps(value, indent=2, ensure_ascii=False, default=str) + "\n")



def load(file: Path, *, import_bots: bool = True) -> Config:
    """The validated pipelines file (ConfigError lists every problem)."""
    return load_config(file, display_name=str(file), import_bots=import_bots)


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
    if store:
        return open_store(store, Path.cwd(), read_only=read_only), config
    if config is not None:
        return open_store(config.store_url, config.base_dir, read_only=read_only), config
    if not file.exists():
        raise UsageError(f"{file}: file not found; pass -f FILE or --store URL (or run `leo init`)")
    url, base = _store_url_of(file)
    return open_store(url, base, read_only=read_only), None


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
        self.bar = Progress(TextColumn("{task.description}"), BarColumn(), done, TimeRemainingColumn(), console=err)
        self.bar.start()
        task = self.bar.add_task(self.label, total=self.total or None)
        return lambda n: self.bar.advance(task, n) if self.bar else None

    def __exit__(self, *exc: Any) -> None:
        if self.bar is not None:
            self.bar.stop()
