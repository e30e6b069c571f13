"""`leo init`, `leo validate`, `leo schema`, `leo version`: the project and its file."""

from __future__ import annotations

import os
import shutil
from pathlib import Path
from typing import Annotated, Any

import typer

from .. import __version__
from ..config import DEFAULT_FILE
from ..errors import ConfigError, LeoError, Problem, UsageError
from .app import app
from .common import FileOption, JsonOption, StoreOption, emit_json, err, handles_errors, load, out, print_problems


def _check_target(directory: Path) -> None:
    """UsageError unless `directory` is a folder or can become one (no file, no dangling link
    on the way)."""
    if directory.is_symlink() and not directory.exists():
        raise UsageError(f"{directory} is a symlink to {os.readlink(directory)}, which does not exist")
    if directory.exists() and not directory.is_dir():
        raise UsageError(f"{directory} is a file, not a folder; pick a folder for the project")
    for parent in directory.parents:
        if parent.is_symlink() and not parent.exists():
            raise UsageError(f"{parent} is a symlink to {os.readlink(parent)}, which does not exist")
        if parent.exists() and not parent.is_dir():
            raise UsageError(f"{parent} is a file, not a folder; pick a folder for the project")


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
    _check_target(directory)
    # lexists: a dangling symlink is in the way too (copying through it would write elsewhere).
    clashes = [rel for rel in files if os.path.lexists(directory / rel)]
    if clashes and not force:
        raise LeoError(
            f"{directory / clashes[0]} already exists; use --force to overwrite, or pick an empty folder"
        )
    for rel in files:
        target = directory / rel
        if target.is_symlink() or target.is_dir():
            raise LeoError(f"{target} is a {'symlink' if target.is_symlink() else 'folder'}; remove it first")
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(source / rel, target)
    if as_json:
        emit_json({"directory": str(directory.resolve()), "files": [str(rel) for rel in files]})
        return
    out.print(f"created a leo-runtime project in {directory.resolve()}:", markup=False)
    for rel in files:
        out.print(f"  {rel}", markup=False)
    where = "" if directory.resolve() == Path.cwd() else f"cd {directory} && "
    out.print(f"next: {where}leo test    (runs pipelines.leo-test.yaml; no store, no network)", markup=False)
    out.print(f"then: {where}leo run     (and, in another terminal: leo status)", markup=False)


@app.command()
@handles_errors
def validate(file: FileOption = Path(DEFAULT_FILE), store: StoreOption = None, as_json: JsonOption = False) -> None:
    """Check the pipelines file; print FILE:LINE:COL: message per problem."""
    try:
        config = load(file)
    except ConfigError as exc:
        if exc.exit_code != 1:
            raise  # a -f that is no file: bad usage (exit 2), not a file with problems
        if as_json:
            emit_json({"valid": False, "file": str(file), "problems": [_problem_dict(p) for p in exc.problems]
                        or [{"severity": "error", "message": str(exc)}]})
        else:
            print_problems(exc)
        raise typer.Exit(exc.exit_code) from None
    if as_json:
        emit_json(
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
    """Print the JSON Schema of pipelines.yaml (for editors), with the settings of the custom bots the file names."""
    from ..config.schema import file_bots, json_schema
    from ..registry import BotRegistry

    registry = BotRegistry()
    emit_json(json_schema(registry, file_bots(file, registry) if file.is_file() else None))




@app.command()
@handles_errors
def version(file: FileOption = Path(DEFAULT_FILE), store: StoreOption = None, as_json: JsonOption = False) -> None:
    """Print the version (-f and --store are accepted, as by every command, and not used)."""
    import platform

    if as_json:
        emit_json({"name": "leo-runtime", "version": __version__, "python": platform.python_version()})
        return
    out.print(f"leo-runtime {__version__}", markup=False)
