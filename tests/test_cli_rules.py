"""One set of rules for every `leo` command, checked across all of them.

- Every command takes ``-f/--file FILE``, ``--store URL`` and ``--json``; its help names what an
  option takes (``FILE``, ``SECONDS``), never typer's ``<bool>``/``<str>`` labels.
- Exit 0 on success; 2 on bad usage: an unknown option, a value that does not parse, and a name
  that names nothing there is (a bot, a queue, a partner, a webhook, a stream, an object type,
  a dead-letter queue), told with a did-you-mean when a known name is close; 1 when the command
  line is fine but what it points at is not.
- The quick commands (``--help``, ``status``, ``version``, listings) never import the server
  (FastAPI, uvicorn), the HTTP clients or the console's templates: checked in a fresh
  interpreter through ``sys.modules``, not timed (benchmarks/cli_startup.py times them).
"""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

import pytest
import typer
from typer.testing import CliRunner

from leo_runtime.cli import app

from .conftest import FILTER_PIPELINE, Project

runner = CliRunner()


def all_commands() -> list[tuple[str, ...]]:
    """The path of every command of `leo` (groups walked)."""
    found: list[tuple[str, ...]] = []

    def walk(command: object, path: tuple[str, ...]) -> None:
        children = getattr(command, "commands", None)
        if children is None:
            found.append(path)
            return
        for name, child in children.items():
            walk(child, (*path, name))

    walk(typer.main.get_command(app), ())
    return sorted(found)


COMMANDS = all_commands()


@pytest.mark.parametrize("command", COMMANDS, ids=" ".join)
def test_every_command_takes_file_store_and_json_and_names_what_options_take(command: tuple[str, ...]) -> None:
    result = runner.invoke(app, [*command, "--help"], env={"COLUMNS": "200"})
    assert result.exit_code == 0, result.output
    text = result.output
    for option in ("-f, --file FILE", "--store URL", "--json"):
        assert option in text, f"leo {' '.join(command)}: no {option}"
    options = text.split("Options:", 1)[1]
    assert not re.search(r"<[a-z][\w \[\]|]*>", options), f"leo {' '.join(command)} --help shows a type label:\n{options}"


@pytest.mark.parametrize("command", COMMANDS, ids=" ".join)
def test_an_unknown_option_is_bad_usage_everywhere(command: tuple[str, ...]) -> None:
    result = runner.invoke(app, [*command, "--no-such-option"])
    assert result.exit_code == 2, result.output
    assert "No such option: --no-such-option" in result.output


# A command line naming something that is not there, for every command that takes a name: the
# name is one letter off a real one, so the did-you-mean must find it (webhooks and streams are
# the store's: this project has none yet).
UNKNOWN_NAMES = {
    ("bots", "pause"): (["bots", "pause", "low-stok"], "low-stock"),
    ("bots", "resume"): (["bots", "resume", "low-stok"], "low-stock"),
    ("queues", "tail"): (["queues", "tail", "inventory.lo"], "inventory.low"),
    ("queues", "put"): (["queues", "put", "inventory.lo", "-"], "inventory.low"),
    ("checkpoints", "reset"): (["checkpoints", "reset", "low-stok", "--to", "earliest"], "low-stock"),
    ("ingest",): (["ingest", "inventorry", "-"], "inventory"),
    ("partners", "revoke"): (["partners", "revoke", "erb"], "erp"),
    ("webhooks", "pause"): (["webhooks", "pause", "erp-batche"], None),
    ("webhooks", "resume"): (["webhooks", "resume", "erp-batche"], None),
    ("webhooks", "replay"): (["webhooks", "replay", "erp-batche"], None),
    ("webhooks", "batches"): (["webhooks", "batches", "erp-batche"], None),
    ("webhooks", "rotate-secret"): (["webhooks", "rotate-secret", "erp-batche"], None),
    ("streams", "reset"): (["streams", "reset", "st_missing", "--to", "earliest"], None),
    ("deadletters", "list"): (["deadletters", "list", "inventory.ded"], "inventory.dead"),
    ("deadletters", "redrive"): (["deadletters", "redrive", "inventory.ded"], None),
}

RULES_PIPELINE = FILTER_PIPELINE.replace(
    "out: inventory.low\n", "out: inventory.low\n        on_error: {dead_letter: inventory.dead, after: 3}\n"
) + """
      - id: erp-batches
        use: batcher
        in: inventory.low
        with: {interval: 5m}
        out: erp.batches
object_types:
  inventory: {key: sku}
"""


@pytest.fixture
def rules_project(project: Project) -> Project:
    project.write(RULES_PIPELINE)
    store = project.store()
    store.append("inventory.in", [{"quantity": 1}])
    store.close()
    created = runner.invoke(app, ["partners", "create", "erp", "-f", str(project.file)], env={"LEO_STORE": ""})
    assert created.exit_code == 0, created.output
    return project


def test_every_command_that_takes_a_name_is_in_the_unknown_name_table() -> None:
    from leo_runtime.cli import app as cli_app

    takes_a_name = set()
    for command in COMMANDS:
        click_command = typer.main.get_command(cli_app)
        for part in command:
            click_command = click_command.commands[part]  # type: ignore[attr-defined]
        if any(param.param_type_name == "argument" and param.required for param in click_command.params):
            takes_a_name.add(command)
    takes_a_name -= {("init",), ("partners", "create")}  # names something new
    assert takes_a_name <= set(UNKNOWN_NAMES), sorted(takes_a_name - set(UNKNOWN_NAMES))


@pytest.mark.parametrize("command", sorted(UNKNOWN_NAMES), ids=" ".join)
def test_an_unknown_name_is_exit_2_with_a_did_you_mean(rules_project: Project, command: tuple[str, ...]) -> None:
    args, close = UNKNOWN_NAMES[command]
    before = rules_project.db.read_bytes()

    result = runner.invoke(app, [*args, "-f", str(rules_project.file)], input='{"quantity": 2}\n', env={"LEO_STORE": ""})

    assert result.exit_code == 2, result.output
    line = result.output.strip()
    assert line.startswith("error: ") and "\n" not in line and "Traceback" not in line, line
    if close is not None:
        assert f"(did you mean '{close}'?)" in line, line
    assert rules_project.db.read_bytes() == before, "a refused command wrote to the store"


def test_the_same_name_is_known_to_every_command(rules_project: Project) -> None:
    """A queue the file names but that holds nothing yet: `put` and `tail` both take it."""
    put = runner.invoke(app, ["queues", "put", "inventory.dead", "-f", str(rules_project.file)], input="{}\n",
                        env={"LEO_STORE": ""})
    assert put.exit_code == 0, put.output
    tail = runner.invoke(app, ["queues", "tail", "erp.batches", "-f", str(rules_project.file)], env={"LEO_STORE": ""})
    assert tail.exit_code == 0, tail.output
    new = runner.invoke(app, ["queues", "put", "brand.new", "--create", "-f", str(rules_project.file)], input="{}\n",
                        env={"LEO_STORE": ""})
    assert new.exit_code == 0, new.output


def test_version_takes_json() -> None:
    from leo_runtime import __version__

    result = runner.invoke(app, ["version", "--json"])
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout)["version"] == __version__


QUICK = [["--help"], ["version"], ["status"], ["queues", "list"], ["checkpoints", "list"], ["bots", "list"],
         ["partners", "list"], ["webhooks", "list"], ["streams", "list"], ["run", "--help"]]
SERVER_MODULES = ("fastapi", "uvicorn", "starlette", "httpx", "aiohttp", "prometheus_client", "jinja2",
                  "leo_runtime.server", "leo_runtime.runtime")

PROBE = """
import atexit, json, sys
seen = sys.argv[1]
atexit.register(lambda: open(seen, "w").write(json.dumps(sorted(sys.modules))))
sys.argv = ["leo", *sys.argv[2:]]
from leo_runtime.cli import main
main()
"""


@pytest.mark.parametrize("command", QUICK, ids=" ".join)
def test_quick_commands_do_not_import_the_server(rules_project: Project, tmp_path: Path, command: list[str]) -> None:
    seen = tmp_path / "modules.json"
    args = [*command, "-f", str(rules_project.file)] if command[-1] != "--help" else command
    result = subprocess.run([sys.executable, "-c", PROBE, str(seen), *args], capture_output=True, text=True,
                            cwd=rules_project.root, timeout=60, env={"PATH": "/usr/bin:/bin"})
    assert result.returncode == 0, result.stderr
    modules = json.loads(seen.read_text())
    imported = [name for name in SERVER_MODULES if name in modules]
    assert not imported, f"`leo {' '.join(command)}` imported {imported}"


def test_bots_list_shows_settings_as_users_write_them_never_python_reprs() -> None:
    shown = runner.invoke(app, ["bots", "list"])
    as_json = runner.invoke(app, ["bots", "list", "--json"])
    assert shown.exit_code == 0 and as_json.exit_code == 0, shown.output
    for text in (shown.output, as_json.stdout):
        for leak in ("Query(", "Optional", "Literal", "Settings", "<class", "typing.", "Annotated", "NoneType"):
            assert leak not in text, f"{leak!r} in `leo bots list`:\n{text}"
    types = {(bot["name"], s["name"]): (s["type"], s["default"]) for bot in json.loads(as_json.stdout)
             for s in bot["settings"]}
    assert types[("change_detector", "snapshot")] == ('"full" | "partial"', "partial")
    assert types[("change_detector", "source")] == ("http_poll | json_dir | sqlite_table", None)
    assert types[("webhook_sender", "timeout")] == ("duration | null", None)
    assert types[("stream_writer", "query")] == ("query", {})
    assert types[("batcher", "readers")] == ("list of string", [])
