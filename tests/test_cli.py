"""The `leo` command through typer's CliRunner (same process, real files and stores)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from leo_runtime.cli import app
from leo_runtime.timeutil import format_time, now_ms

from .conftest import FILTER_PIPELINE, Project, ndjson

runner = CliRunner()



def invoke(project: Project, *args: str, input: str | None = None):
    return runner.invoke(app, [*args, "-f", str(project.file)], input=input, env={"LEO_STORE": ""})


def test_init_creates_a_valid_project_and_refuses_to_overwrite(tmp_path: Path) -> None:
    result = runner.invoke(app, ["init", str(tmp_path / "p"), "--json"])
    assert result.exit_code == 0, result.output
    files = json.loads(result.stdout)["files"]
    assert {"pipelines.yaml", "bots/priority.py"} <= set(files)
    assert runner.invoke(app, ["validate", "-f", str(tmp_path / "p" / "pipelines.yaml")]).exit_code == 0
    again = runner.invoke(app, ["init", str(tmp_path / "p")])
    assert again.exit_code == 1 and "already exists" in again.output and "--force" in again.output
    assert runner.invoke(app, ["init", str(tmp_path / "p"), "--force"]).exit_code == 0


def test_validate_prints_located_problems_and_exits_1(project: Project) -> None:
    text = FILTER_PIPELINE.replace("lt: 5", "less: 5").replace("out: inventory.low", "ot: inventory.low")
    project.write(text)
    lines = project.file.read_text().splitlines()

    def at(marker: str) -> str:
        line = next(i for i, value in enumerate(lines, 1) if marker in value)
        return f"{project.file}:{line}:{lines[line - 1].index(marker) + 1}:"

    result = invoke(project, "validate")
    assert result.exit_code == 1
    assert f"{at('less')} bot 'low-stock': field 'quantity': unknown operator 'less' (did you mean 'lt'?)" in result.output
    assert f"{at('ot:')} bot 'low-stock': unknown field 'ot' (did you mean 'out'?)" in result.output
    as_json = json.loads(invoke(project, "validate", "--json").stdout)
    assert as_json["valid"] is False
    assert {p["line"] for p in as_json["problems"]} == {int(at("less").split(":")[-3]), int(at("ot:").split(":")[-3])}


def test_validate_ok_shows_warnings_and_counts(project: Project) -> None:
    project.write(FILTER_PIPELINE)
    result = invoke(project, "validate")
    assert result.exit_code == 0
    assert "valid (1 pipeline(s), 1 bot(s), 1 warning(s))" in result.stdout
    assert "no bot writes queue 'inventory.in'" in result.output


def test_missing_file_is_bad_usage_with_a_hint(tmp_path: Path) -> None:
    # -f names no file: the command line is what needs fixing (exit 2, like a bad option).
    result = runner.invoke(app, ["validate", "-f", str(tmp_path / "nope.yaml")])
    assert result.exit_code == 2 and "leo init" in result.output and "Traceback" not in result.output
    result = runner.invoke(app, ["status", "-f", str(tmp_path / "nope.yaml")], env={"LEO_STORE": ""})
    assert result.exit_code == 2 and "--store" in result.output


def test_bad_usage_is_exit_2(project: Project) -> None:
    project.write(FILTER_PIPELINE)
    assert runner.invoke(app, ["status", "--bogus"]).exit_code == 2
    assert runner.invoke(app, ["queues", "tail"]).exit_code == 2
    assert runner.invoke(app, ["queues", "tail", "q", "-n", "-3"]).exit_code == 2


def test_schema_is_json_with_bot_settings(project: Project) -> None:
    project.write(FILTER_PIPELINE)
    schema = json.loads(invoke(project, "schema").stdout)
    assert schema["$schema"].startswith("https://json-schema.org/")
    branches = schema["$defs"]["BotConfig"]["allOf"]
    filter_branch = next(b for b in branches if b["if"]["properties"]["use"]["const"] == "filter")
    assert "query" in filter_branch["then"]["properties"]["with"]["properties"]


def test_bots_list_shows_built_ins_with_settings(project: Project) -> None:
    project.write(FILTER_PIPELINE)
    bots = {b["name"]: b for b in json.loads(invoke(project, "bots", "list", "--json").stdout)}
    assert bots["filter"]["kind"] == "processor" and bots["filter"]["origin"] == "built-in"
    assert [s["name"] for s in bots["filter"]["settings"]] == ["query"]
    assert bots["file_reader"]["kind"] == "source"
    assert "filter" in invoke(project, "bots", "list").stdout


def test_queues_put_tail_list(project: Project) -> None:
    project.write(FILTER_PIPELINE)
    put = invoke(project, "queues", "put", "inventory.in", "--json", input=ndjson([{"n": n} for n in range(25)]) + "\n\n")
    assert put.exit_code == 0, put.output
    assert json.loads(put.stdout) == {"queue": "inventory.in", "count": 25, "first": 1, "last": 25}
    tail = invoke(project, "queues", "tail", "inventory.in", "-n", "3", "--json")
    events = [json.loads(line) for line in tail.stdout.splitlines()]
    assert [e["payload"]["n"] for e in events] == [22, 23, 24]
    assert {"eid", "payload", "timestamp", "event_source_timestamp", "correlation_id"} <= set(events[0])
    queues = json.loads(invoke(project, "queues", "list", "--json").stdout)
    assert queues == [{**queues[0], "name": "inventory.in", "depth": 25, "head": 25}]
    unknown = invoke(project, "queues", "tail", "inventory.inn")
    assert unknown.exit_code == 2 and "did you mean 'inventory.in'" in unknown.output


def test_tail_finds_the_newest_events_of_a_sparse_queue(project: Project) -> None:
    project.write(FILTER_PIPELINE)
    store = project.store()
    store.append("rare", [{"n": 1}])
    for _ in range(5):
        store.append("busy", [{"x": 0}] * 1000)
    store.append("rare", [{"n": 2}])
    tail = invoke(project, "queues", "tail", "rare", "-n", "5", "--json")
    assert [json.loads(line)["payload"]["n"] for line in tail.stdout.splitlines()] == [1, 2]


def test_put_with_a_bad_line_writes_nothing_and_names_the_line(project: Project) -> None:
    project.write(FILTER_PIPELINE)
    source = project.root / "in.ndjson"
    source.write_text('{"a": 1}\n{"a": 2\n{"a": 3}\n')
    result = invoke(project, "queues", "put", "inventory.in", str(source))
    assert result.exit_code == 1
    assert f"{source}:2: not JSON" in result.output and "nothing was written" in result.output
    assert project.store().queue_head("inventory.in") == 0
    assert invoke(project, "queues", "put", "bad name!", str(source)).exit_code == 2
    missing = invoke(project, "queues", "put", "q", str(project.root / "missing.ndjson"))
    assert missing.exit_code == 2 and "cannot read" in missing.output


def test_status_and_checkpoints_reset_every_form(project: Project) -> None:
    project.write(FILTER_PIPELINE)
    store = project.store()
    store.append("inventory.in", [{"quantity": n} for n in range(10)])
    store.init_checkpoint("low-stock", "inventory.in", 7)
    status = json.loads(invoke(project, "status", "--json").stdout)
    bot = status["bots"][0]
    assert bot["id"] == "low-stock" and bot["lag"] == 3 and bot["checkpoints"][0]["checkpoint"] == 7
    assert status["queues"][0]["name"] == "inventory.in"

    def reset(to: str) -> dict:
        result = invoke(project, "checkpoints", "reset", "low-stock", "--to", to, "--json")
        assert result.exit_code == 0, result.output
        return json.loads(result.stdout)

    assert reset("earliest")["to"] == 0
    assert reset("latest")["to"] == 10
    assert reset("4")["to"] == 4
    eid = json.loads(invoke(project, "queues", "tail", "inventory.in", "-n", "1", "--json").stdout)["eid"]
    assert reset(eid)["to"] == 10
    hour_ago = reset("-PT1H")  # before the oldest event, within retention: where asked
    assert (hour_ago["to"], hour_ago["clamped"]) == (0, False)
    month_ago = reset(format_time(now_ms() - 30 * 86_400_000))  # older than retention (P7D): clamped
    assert (month_ago["to"], month_ago["clamped"]) == (0, True)
    future = invoke(project, "checkpoints", "reset", "low-stock", "--to", format_time(now_ms() + 3_600_000))
    assert future.exit_code == 2 and "is in the future" in future.output
    assert reset("latest")["to"] == 10
    rows = json.loads(invoke(project, "checkpoints", "list", "--json").stdout)
    assert rows[0]["bot"] == "low-stock" and rows[0]["position"] == 10 and rows[0]["lag"] == 0

    assert "unknown bot 'low-stok' (did you mean 'low-stock'?)" in invoke(
        project, "checkpoints", "reset", "low-stok", "--to", "earliest").output
    bad = invoke(project, "checkpoints", "reset", "low-stock", "--to", "yesterday")
    assert bad.exit_code == 2 and "earliest, latest" in bad.output
    past = invoke(project, "checkpoints", "reset", "low-stock", "--to", "99")
    assert past.exit_code == 2 and "past the newest event" in past.output


def test_pause_and_resume(project: Project) -> None:
    project.write(FILTER_PIPELINE)
    assert invoke(project, "bots", "pause", "low-stock").exit_code == 0
    assert project.store().bot("low-stock").paused  # type: ignore[union-attr]
    status = json.loads(invoke(project, "status", "--json").stdout)
    assert status["bots"][0]["state"] == "paused"
    assert invoke(project, "bots", "resume", "low-stock").exit_code == 0
    assert not project.store().bot("low-stock").paused  # type: ignore[union-attr]


def test_store_option_and_env_override_the_file(project: Project, tmp_path: Path) -> None:
    project.write(FILTER_PIPELINE)
    other = tmp_path / "other.db"
    result = runner.invoke(app, ["queues", "put", "x", "--create", "-f", str(project.file), "--store", f"sqlite:///{other}"],
                           input='{"a": 1}\n')
    assert result.exit_code == 0, result.output
    assert other.exists() and not project.db.exists()
    listed = runner.invoke(app, ["queues", "list", "--json", "-f", str(project.file)], env={"LEO_STORE": f"sqlite:///{other}"})
    assert json.loads(listed.stdout)[0]["name"] == "x"


def test_status_works_when_the_file_is_broken(project: Project) -> None:
    project.write(FILTER_PIPELINE)
    project.store().append("inventory.in", [{"quantity": 1}])
    project.file.write_text(project.file.read_text().replace("use: filter", "use: filtr"))
    result = invoke(project, "status", "--json")
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout)["queues"][0]["depth"] == 1


@pytest.mark.parametrize("command", [["run"], ["status"], ["queues", "list"], ["checkpoints", "list"]])
def test_a_store_url_error_is_one_line(project: Project, command: list[str]) -> None:
    project.write(FILTER_PIPELINE.replace("version: 1", "version: 1\nstore: postgres://leo:pa55@nowhere.invalid/db"))
    result = runner.invoke(app, [*command, "-f", str(project.file)], env={"LEO_STORE": ""})
    assert result.exit_code == 1
    assert "postgres://leo:***@nowhere.invalid/db: cannot connect" in result.output
    assert "pa55" not in result.output and "Traceback" not in result.output


def test_schema_accepts_the_bundled_example_and_rejects_a_typo(project: Project) -> None:
    import jsonschema
    import yaml

    from .conftest import REPO

    project.write(FILTER_PIPELINE)
    schema = json.loads(invoke(project, "schema").stdout)
    text = (REPO / "leo_runtime" / "scaffold" / "pipelines.yaml").read_text()
    example = yaml.safe_load(text.replace("${LEO_PORT:-8765}", "8765"))
    jsonschema.validate(example, schema)
    example["pipelines"]["orders"]["bots"][1]["with"]["query"]["total"] = {"less": 5}
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate(example, schema)
