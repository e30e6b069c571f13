"""Every command with hostile arguments: exit 2 for bad usage, 1 for a bad file or store, one
line and no traceback; user and bot text printed verbatim; no password ever printed."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest
from typer.testing import CliRunner

from leo_runtime.cli import app

from .conftest import FILTER_PIPELINE, Project

runner = CliRunner()

# A bot error full of rich markup, emoji codes and a URL with a password.
NASTY = "boom [/x] [bold]not bold[/bold] :smile: at http://leo:hunter2@partner.example/api"


@pytest.fixture
def busy(project: Project) -> Project:
    """A project with events, a checkpoint and a failing bot recorded in its store."""
    project.write(FILTER_PIPELINE)
    store = project.store()
    store.append("inventory.in", [{"quantity": n} for n in range(5)])
    store.init_checkpoint("low-stock", "inventory.in", 2)
    store.record_failure("low-stock", NASTY)
    store.append("[red]q[/red]", [{"a": 1}])  # the store takes any name; the CLI prints it as is
    store.init_checkpoint("[bold]gone[/]", "[red]q[/red]", 0)  # a bot no longer in the file
    store.close()
    return project


def run(project: Project, *args: str, input: str | None = None):
    # A wide terminal: table cells are shown whole.
    return runner.invoke(app, [*args, "-f", str(project.file)], input=input, env={"LEO_STORE": "", "COLUMNS": "400"})


def _one_line_error(result) -> str:
    assert "Traceback" not in result.output, result.output
    lines = result.output.strip().splitlines()
    assert len(lines) == 1, result.output
    assert lines[0].startswith("error: "), lines[0]
    return lines[0]


HOSTILE_TO = [
    "-P99999999999D",  # an OverflowError before
    "-",
    "1e400",
    " ",
    "",
    "²",  # a digit to str.isdigit, not to int()
    "٣",
    "-5",
    "PT1H",  # a duration into the future
    "9999-12-31T23:59:59-23:59",  # past year 9999 in UTC
    "2026-02-30T00:00:00Z",
    "2026-W48",
    "99999999999999999999999999",
    "9" * 5000,  # past int()'s digit limit
    "nan",
    "[/x]",
]


@pytest.mark.parametrize("to", HOSTILE_TO)
def test_reset_to_hostile_values_is_bad_usage_in_one_line(busy: Project, to: str) -> None:
    result = run(busy, "checkpoints", "reset", "low-stock", "--to", to)
    assert result.exit_code == 2
    line = _one_line_error(result)
    assert len(line) < 300


def test_reset_queue_must_be_an_input_of_the_bot(busy: Project) -> None:
    result = run(busy, "checkpoints", "reset", "low-stock", "--queue", "inventory.low", "--to", "earliest")
    assert result.exit_code == 2
    assert _one_line_error(result) == (
        "error: bot 'low-stock' does not read queue 'inventory.low' (did you mean 'inventory.in'?); it reads inventory.in"
    )
    ok = run(busy, "checkpoints", "reset", "low-stock", "--queue", "inventory.in", "--to", "earliest", "--json")
    assert ok.exit_code == 0 and json.loads(ok.stdout)["to"] == 0
    # A bot gone from the file: its inputs are the queues it has checkpoints in.
    gone = run(busy, "checkpoints", "reset", "[bold]gone[/]", "--queue", "q", "--to", "earliest")
    assert gone.exit_code == 2 and "it reads [red]q[/red]" in gone.output


@pytest.mark.parametrize(
    "args",
    [
        ["run", "--port", "99999"],  # listened on a random port before
        ["run", "--port", "-1"],
        ["run", "--port", "[/x]"],
        ["run", "--host", ""],
        ["run", "--log-level", "loud"],
        ["run", "--drain-timeout", "nan"],
        ["checkpoints", "reset", "nobody", "--to", "earliest"],
        ["checkpoints", "reset", "", "--to", "earliest"],
        ["bots", "pause", ""],
        ["bots", "resume", "[/x]"],
        ["queues", "tail", "no.such.queue"],
        ["queues", "tail", "inventory.in", "-n", "-3"],
        ["status", "--bogus"],
    ],
)
def test_bad_usage_exits_2(busy: Project, args: list[str]) -> None:
    result = run(busy, *args)
    assert result.exit_code == 2, result.output
    assert "Traceback" not in result.output


def test_port_0_still_picks_a_free_port(busy: Project) -> None:
    # Only the range is checked at the command line; 0 gets past it (the real start is e2e).
    result = run(busy, "run", "--port", "0", "--log-level", "loud")
    assert result.exit_code == 2 and "--log-level" in result.output and "--port" not in result.output


def test_a_pipelines_file_that_is_no_file_is_bad_usage(project: Project, tmp_path: Path) -> None:
    project.write(FILTER_PIPELINE)
    (tmp_path / "dangling.yaml").symlink_to("nowhere.yaml")
    for target, expected in [
        (tmp_path, "is a directory"),
        (tmp_path / "missing.yaml", "file not found"),
        (tmp_path / "dangling.yaml", "the symlink points to nowhere.yaml, which does not exist"),
        (project.file / "below", "file not found"),
    ]:
        for command in (["validate"], ["run"], ["validate", "--json"]):
            result = runner.invoke(app, [*command, "-f", str(target)])
            assert result.exit_code == 2, (command, target, result.output)
            assert expected in _one_line_error(result)
        status = runner.invoke(app, ["status", "-f", str(target)], env={"LEO_STORE": ""})
        assert status.exit_code == 2 and "--store" in status.output


def test_a_bad_file_or_store_is_exit_1(busy: Project, tmp_path: Path) -> None:
    result = run(busy, "status", "--store", "postgresql://leo:pa55w0rd@db.example/leo")
    assert result.exit_code == 1
    assert "pa55w0rd" not in result.output and "leo:***@db.example" in _one_line_error(result)
    result = run(busy, "status", "--store", "sqlite://leo:pa55w0rd@db.example/leo")
    assert result.exit_code == 1 and "pa55w0rd" not in result.output
    busy.file.write_text(FILTER_PIPELINE.replace("lt: 5", "less: 5"))
    assert run(busy, "validate").exit_code == 1
    bad_input = tmp_path / "in.ndjson"
    bad_input.write_text('{"a": 1}\nnope\n')
    assert run(busy, "queues", "put", "inventory.in", str(bad_input)).exit_code == 1


def test_validate_never_shows_an_environment_value(project: Project) -> None:
    project.write("version: 1\nretention: ${API_TOKEN}\nserver: {port: '${API_TOKEN}'}\n")
    result = runner.invoke(
        app, ["validate", "-f", str(project.file)], env={"API_TOKEN": "tok_live_51Hxyz"}
    )
    assert result.exit_code == 1
    assert "tok_live" not in result.output and "(from ${API_TOKEN})" in result.output
    as_json = runner.invoke(app, ["validate", "--json", "-f", str(project.file)], env={"API_TOKEN": "tok_live_51Hxyz"})
    assert "tok_live" not in as_json.output


def test_user_and_bot_text_is_printed_verbatim(busy: Project) -> None:
    status = run(busy, "status")
    assert status.exit_code == 0, status.output
    flat = "".join(status.output.split())  # the table wraps long cells
    assert "".join(NASTY.replace("hunter2", "***").split()) in flat
    assert "hunter2" not in status.output
    as_json = json.loads(run(busy, "status", "--json").stdout)
    assert as_json["bots"][-1]["last_error"] == NASTY.replace("hunter2", "***")
    listed = run(busy, "checkpoints", "list")
    assert listed.exit_code == 0 and "[bold]gone[/]" in listed.output and "[red]q[/red]" in listed.output
    queues = run(busy, "queues", "list")
    assert queues.exit_code == 0 and "[red]q[/red]" in "".join(queues.output.split())


def test_init_on_a_file_or_through_a_dangling_symlink(tmp_path: Path) -> None:
    a_file = tmp_path / "notes.txt"
    a_file.write_text("keep me")
    result = runner.invoke(app, ["init", str(a_file)])
    assert result.exit_code == 2 and "is a file, not a folder" in _one_line_error(result)
    assert a_file.read_text() == "keep me"
    result = runner.invoke(app, ["init", str(a_file / "sub")])
    assert result.exit_code == 2 and "is a file, not a folder" in result.output
    dangling = tmp_path / "link"
    dangling.symlink_to(tmp_path / "nowhere")
    result = runner.invoke(app, ["init", str(dangling)])
    assert result.exit_code == 2 and "which does not exist" in _one_line_error(result)
    assert not (tmp_path / "nowhere").exists()
    # A dangling symlink where a scaffold file goes is in the way, not written through.
    project = tmp_path / "p"
    project.mkdir()
    os.symlink(tmp_path / "elsewhere.yaml", project / "pipelines.yaml")
    for args in (["init", str(project)], ["init", str(project), "--force"]):
        result = runner.invoke(app, args)
        assert result.exit_code == 1, result.output
        assert not (tmp_path / "elsewhere.yaml").exists()


@pytest.mark.parametrize("command", [["validate"], ["status"], ["queues", "list"], ["checkpoints", "list"]])
def test_an_endless_pipelines_file_is_read_bounded(command: list[str]) -> None:
    # Read into memory whole before: -f /dev/zero ended in a MemoryError.
    result = runner.invoke(app, [*command, "-f", "/dev/zero"], env={"LEO_STORE": ""})
    assert result.exit_code == 1
    assert result.output.strip() == "/dev/zero:1:1: the file is too big (more than 1,048,576 bytes)"


# Terminal controls in text from outside: a window title, a screen clear, colours, a CR that
# overwrites the line, an 8-bit CSI and a bidi override that reverses what follows.
CONTROLS = "\x1b]0;pwned\x07\x1b[2J\x1b[31mred\r\u009b31m\u202egnp.exe"


def _no_controls(text: str) -> bool:
    return not any((ord(c) < 32 and c not in "\n\t") or 0x7F <= ord(c) <= 0x9F or c == "\u202e" for c in text)


@pytest.mark.parametrize("command", [["status"], ["checkpoints", "list"], ["queues", "list"], ["queues", "tail", "q"],
                                     ["queues", "tail", "q", "--json"], ["status", "--json"]])
def test_controls_in_outside_text_are_shown_escaped(project: Project, command: list[str]) -> None:
    project.write(FILTER_PIPELINE)
    store = project.store()
    store.append("inventory.in", [{"quantity": 1}])
    store.record_failure("low-stock", f"callback said {CONTROLS}")
    store.append("q", [{"name": CONTROLS}])
    store.append(f"w{CONTROLS}", [{"a": 1}])  # the store takes any queue name
    store.init_checkpoint(f"gone{CONTROLS}", "q", 0)
    store.close()
    result = run(project, *command)
    assert result.exit_code == 0, result.output
    assert _no_controls(result.output), repr(result.output)
    if "--json" not in command:
        flat = "".join(result.output.split())  # the table wraps long cells
        assert "]0;pwned" in flat and ("\\x1b[2J" in flat or "\\u001b[2J" in flat)
    elif command[0] == "queues":  # still JSON, with the same value
        assert json.loads(result.output)["payload"] == {"name": CONTROLS}
    else:
        assert json.loads(result.output)["bots"][0]["last_error"] == f"callback said {CONTROLS}"
