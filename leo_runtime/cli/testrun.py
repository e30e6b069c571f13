"""`leo test [PATH...]`: run the pipelines' tests (``*.leo-test.yaml``) on temporary stores."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from ..errors import ConfigError, UsageError
from .app import app
from .common import JsonOption, emit_json, err, handles_errors, out, print_problems


@app.command(name="test")
@handles_errors
def test(
    paths: Annotated[
        list[Path] | None,
        typer.Argument(help="test files, or folders to search for *.leo-test.yaml (default: the project's folder)"),
    ] = None,
    file: Annotated[
        Path | None,
        typer.Option("-f", "--file", envvar="LEO_PIPELINES", metavar="FILE",
                     help="the pipelines file tested (default: a test file's 'pipelines:', else the nearest pipelines.yaml)"),
    ] = None,
    update: Annotated[
        bool, typer.Option("--update", help="write the actual outputs into the expectations marked 'record: true'")
    ] = False,
    junit: Annotated[
        Path | None, typer.Option("--junit", metavar="FILE", help="also write JUnit XML to FILE (one testcase per test)")
    ] = None,
    store: Annotated[
        str | None, typer.Option("--store", envvar="LEO_STORE", metavar="URL",
                                 help="not used: every test runs on a temporary store")
    ] = None,
    as_json: JsonOption = False,
) -> None:
    """Run the pipelines' tests in process, each on a temporary store, with no network.

    Exit 0 when every test passed, 1 when one failed, 2 when a test file is invalid.
    """
    from ..pipetest import TEST_FILE_SUFFIX
    from ..pipetest.report import file_header, junit_xml, outcome_lines, problems_json, session_json, summary_line
    from ..pipetest.session import Loader, load_files, run_files
    from ..pipetest.spec import TestFileError, discover

    if file is not None and not file.is_file():
        raise UsageError(f"{file}: no such pipelines file (-f)")
    roots = list(paths or [file.parent if file is not None else Path(".")])
    for root in roots:
        if not root.exists():
            raise UsageError(f"{root}: no such test file or folder")
    found = discover(roots)
    if not found:
        where = ", ".join(str(root) for root in roots)
        raise UsageError(f"no test files (*{TEST_FILE_SUFFIX}) in {where}; write one beside pipelines.yaml "
                         "(README: Testing pipelines) or run `leo init` for an example")
    try:
        files = load_files(found, Loader(file))
    except ConfigError as exc:  # a test file (exit 2), or the pipelines file it tests (1, as everywhere)
        code = 2 if isinstance(exc, TestFileError) else 1
        if junit is not None:
            junit.write_text(junit_xml(None, exc.problems), encoding="utf-8")
        if as_json and exc.problems:
            emit_json(problems_json(exc.problems))
        else:
            print_problems(exc)
        raise typer.Exit(code) from None

    def on_file(case_file: object) -> None:
        if not as_json:
            out.print(file_header(case_file), markup=False)  # type: ignore[arg-type]

    def on_outcome(outcome: object) -> None:
        if not as_json:
            for line in outcome_lines(outcome):  # type: ignore[arg-type]
                out.print(line, markup=False)

    session = run_files(files, update=update, on_file=on_file, on_outcome=on_outcome)
    if junit is not None:
        junit.write_text(junit_xml(session), encoding="utf-8")
    if as_json:
        emit_json(session_json(session))
    else:
        for name in session.updated:
            err.print(f"updated {name}: review the change (git diff) before you commit it", markup=False)
        out.print("", markup=False)
        out.print(summary_line(session), markup=False)
    if session.counts["failed"]:
        raise typer.Exit(1)
