"""Every error class carries its CLI exit code and HTTP status, and the CLI and the server use them.

The answer a user gets depends on the class alone, never on the order of ``except`` clauses: a
class that derives from two others (``ConfigFileMissing`` is a config error and bad usage) says
its own codes, and a new subclass inherits its base's.
"""

from __future__ import annotations

import importlib
import pkgutil
import re
from pathlib import Path

import httpx
import pytest
import typer
from fastapi import FastAPI

import leo_runtime
from leo_runtime import errors
from leo_runtime.cli.common import handles_errors
from leo_runtime.server.problems import install_handlers

from .server.conftest import serving

README = Path(__file__).resolve().parents[1] / "README.md"


def all_leo_errors() -> list[type[errors.LeoError]]:
    """Every LeoError subclass the runtime defines (each module imported first)."""
    for module in pkgutil.walk_packages(leo_runtime.__path__, "leo_runtime."):
        if not module.name.startswith("leo_runtime.scaffold"):
            importlib.import_module(module.name)
    found: list[type[errors.LeoError]] = []
    pending: list[type[errors.LeoError]] = [errors.LeoError]
    while pending:
        cls = pending.pop()
        found.append(cls)
        pending.extend(cls.__subclasses__())
    return sorted(set(found), key=lambda cls: cls.__qualname__)


def documented() -> dict[str, tuple[int, int]]:
    """The table of the README's "Errors" section: class -> (exit code, HTTP status)."""
    text = README.read_text(encoding="utf-8")
    rows = re.findall(r"^\| `(\w+)` \| (\d) \| (\d{3}) \|", text, re.MULTILINE)
    assert rows, "the README has no table of error classes"
    return {name: (int(code), int(status)) for name, code, status in rows}


def test_every_error_class_has_an_exit_code_and_a_status() -> None:
    for cls in all_leo_errors():
        assert cls.exit_code in (1, 2), cls
        assert 400 <= cls.http_status <= 599, cls


def test_every_error_class_maps_as_the_readme_documents() -> None:
    table = documented()
    for cls in all_leo_errors():
        # A class the table does not list answers as its nearest listed base does.
        listed = next(base for base in cls.__mro__ if base.__name__ in table)
        assert (cls.exit_code, cls.http_status) == table[listed.__name__], cls
    assert {name for name in table} <= {cls.__name__ for cls in all_leo_errors()}


def test_the_class_not_the_order_of_bases_decides() -> None:
    # A config error and bad usage at once: bad usage for the CLI (exit 2).
    assert errors.ConfigFileMissing.exit_code == 2
    # Bad input is a UsageError too, but the command line was fine: exit 1.
    assert errors.InputError.exit_code == 1 and issubclass(errors.InputError, errors.UsageError)


def make(cls: type[errors.LeoError]) -> errors.LeoError:
    """An instance of any error class, whatever its constructor asks for."""
    error = cls.__new__(cls)
    Exception.__init__(error, f"a {cls.__name__} happened")
    if isinstance(error, errors.ConfigError):
        error.problems = []
    return error


@pytest.mark.parametrize("cls", all_leo_errors(), ids=lambda cls: cls.__name__)
def test_the_cli_exits_with_the_class_exit_code(cls: type[errors.LeoError], capsys: pytest.CaptureFixture[str]) -> None:
    @handles_errors
    def command() -> None:
        raise make(cls)

    with pytest.raises(typer.Exit) as exited:
        command()
    assert exited.value.exit_code == cls.exit_code
    assert capsys.readouterr().err.strip().endswith(f"a {cls.__name__} happened")


def test_the_server_answers_with_the_class_status() -> None:
    classes = all_leo_errors()
    app = FastAPI()
    install_handlers(app)

    @app.get("/raise/{name}")
    async def raising(name: str) -> None:
        raise make(next(cls for cls in classes if cls.__qualname__ == name))

    with serving(app) as url, httpx.Client(base_url=url) as client:
        for cls in classes:
            answer = client.get(f"/raise/{cls.__qualname__}")
            assert answer.status_code == cls.http_status, cls
            assert answer.headers["content-type"] == "application/problem+json"
            assert answer.json()["detail"] == f"a {cls.__name__} happened"
