"""Reading commands (`status`, `queues list|tail`, `checkpoints list`, `bots list`) never create,
migrate or write a store, work on read-only files and folders, and import no custom bot code."""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import shutil
import sqlite3
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from .conftest import FILTER_PIPELINE, OBJECTS_PIPELINE, Project, leo

READING = [["status"], ["queues", "list"], ["queues", "tail", "inventory.in"], ["checkpoints", "list"]]


def files_of(folder: Path) -> dict[str, tuple[str, int]]:
    """Every file in `folder` with a hash of its bytes and its mtime."""
    return {
        path.name: (hashlib.sha256(path.read_bytes()).hexdigest(), path.stat().st_mtime_ns)
        for path in sorted(folder.iterdir())
        if path.is_file()
    }


@pytest.mark.parametrize("command", READING, ids=" ".join)
def test_a_store_that_does_not_exist_is_an_error_naming_it_and_nothing_is_created(
    tmp_path: Path, command: list[str]
) -> None:
    result = leo(*command, "--store", "sqlite:///typo.db", "-f", str(tmp_path / "pipelines.yaml"), cwd=tmp_path)
    assert result.returncode == 1, result.stdout
    assert str(tmp_path / "typo.db") in result.stderr and "does not exist" in result.stderr
    assert "Traceback" not in result.stderr
    assert list(tmp_path.iterdir()) == []


WRITING = [["queues", "put", "q"], ["run", "--no-http"], ["bots", "pause", "b"]]


@pytest.mark.parametrize("command", READING + WRITING, ids=" ".join)
def test_another_applications_database_is_refused_untouched(tmp_path: Path, command: list[str]) -> None:
    other = tmp_path / "app.db"
    conn = sqlite3.connect(other)
    conn.execute("CREATE TABLE schema_migrations (version TEXT PRIMARY KEY)")
    conn.commit()
    conn.close()
    (tmp_path / "pipelines.yaml").write_text(FILTER_PIPELINE)
    before = files_of(tmp_path)

    result = leo(*command, "--store", f"sqlite:///{other}", cwd=tmp_path, input='{"a": 1}\n')

    assert result.returncode == 1, result.stderr
    assert "is not a leo store" in result.stderr.strip().splitlines()[-1] and "Traceback" not in result.stderr
    assert files_of(tmp_path) == before


@contextlib.contextmanager
def read_only(*paths: Path) -> Iterator[None]:
    """Make files and folders read-only: chmod, and for root (whom chmod does not stop) the
    immutable attribute where the file system has it."""
    modes = {path: path.stat().st_mode for path in paths}
    for path in paths:
        path.chmod(0o555 if path.is_dir() else 0o444)
    immutable: list[Path] = []
    if os.geteuid() == 0 and shutil.which("chattr"):
        for path in paths:
            if subprocess.run(["chattr", "+i", str(path)], capture_output=True).returncode == 0:
                immutable.append(path)
    try:
        yield
    finally:
        for path in immutable:
            subprocess.run(["chattr", "-i", str(path)], check=True)
        for path, mode in modes.items():
            path.chmod(mode)


def test_reading_commands_work_on_a_read_only_store_in_a_read_only_folder(project: Project) -> None:
    project.write(FILTER_PIPELINE)
    put = leo("queues", "put", "inventory.in", "-f", str(project.file), input='{"quantity": 1}\n{"quantity": 9}\n',
              env={"LEO_STORE": ""})
    assert put.returncode == 0, put.stderr
    store = project.store()
    store.init_checkpoint("low-stock", "inventory.in", 1)
    store.close()
    before = files_of(project.root)
    assert set(before) == {"pipelines.yaml", "leo.db"}

    with read_only(project.db, project.root):
        results = {" ".join(command): leo(*command, "--json", "-f", str(project.file), env={"LEO_STORE": ""})
                   for command in READING}
        writing = leo("queues", "put", "inventory.in", "-f", str(project.file), input='{"quantity": 2}\n',
                      env={"LEO_STORE": ""})
        assert files_of(project.root) == before

    assert writing.returncode == 1 and "read-only; this command writes" in writing.stderr, writing.stderr

    for command, result in results.items():
        assert result.returncode == 0, f"{command}: {result.stderr}"
    assert json.loads(results["queues list"].stdout)[0]["depth"] == 2
    assert json.loads(results["queues tail inventory.in"].stdout.splitlines()[-1])["payload"] == {"quantity": 9}
    assert json.loads(results["checkpoints list"].stdout) == [
        {**json.loads(results["checkpoints list"].stdout)[0], "bot": "low-stock", "position": 1, "lag": 1}
    ]
    assert json.loads(results["status"].stdout)["bots"][0]["id"] == "low-stock"


def test_reading_commands_never_migrate_an_older_store(project: Project) -> None:
    project.write(FILTER_PIPELINE)
    store = project.store()
    store.append("inventory.in", [{"quantity": 1}])
    store.close()
    conn = sqlite3.connect(project.db)
    conn.execute("DELETE FROM schema_migrations WHERE version > 1")  # as an older leo-runtime left it
    conn.execute("DROP TABLE objects")
    conn.commit()
    conn.close()
    before = files_of(project.root)

    result = leo("queues", "list", "-f", str(project.file), env={"LEO_STORE": ""})

    assert result.returncode == 1
    assert "schema version 1" in result.stderr and "run `leo run` (or any writing command) to migrate" in result.stderr
    assert files_of(project.root) == before


# Stands for a bot whose import is slow or has side effects (the issue's bot slept 5 s at
# import): importing it leaves a marker file, which is what the test checks.
MARKING_BOT = """
import pathlib

pathlib.Path(__file__).with_name("imported.marker").write_text("imported")

from leo_runtime import Bot


class Slow(Bot):
    def process(self, events, ctx):
        yield from events
"""


def test_reading_commands_do_not_import_custom_bot_code(project: Project) -> None:
    project.write(MARKING_BOT, "bots/slow.py")
    project.write(FILTER_PIPELINE + "      - {id: slow, use: ./bots/slow.py:Slow, in: inventory.low, out: done}\n")
    store = project.store()
    store.append("inventory.in", [{"quantity": 1}])
    store.close()
    marker = project.root / "bots" / "imported.marker"

    for command in [*READING, ["bots", "list"]]:
        result = leo(*command, "--json", "-f", str(project.file), env={"LEO_STORE": ""})
        assert result.returncode == 0, f"{command}: {result.stderr}"
        assert not marker.exists(), f"`leo {' '.join(command)}` imported the custom bot"
        if command == ["status"]:
            slow = next(bot for bot in json.loads(result.stdout)["bots"] if bot["id"] == "slow")
            assert (slow["pipeline"], slow["use"], slow["kind"]) == ("feed", "./bots/slow.py:Slow", "processor")

    validate = leo("validate", "-f", str(project.file))  # a command that checks bots does import it
    assert validate.returncode == 0, validate.stderr
    assert marker.exists()


SECRET_PIPELINE = """
version: 1
object_types:
  inventory: {key: sku}
server: {port: "${LEO_TEST_UNSET_PORT}"}
pipelines:
  feed:
    bots:
      - id: low-stock
        use: filter
        in: inventory.changes
        with: {query: {quantity: {lt: 5}}}
        out: inventory.low
      - id: notify
        use: webhook_sender
        in: inventory.low
        with: {url: "${LEO_TEST_UNSET_RECEIVER_URL}", secret: "${LEO_TEST_UNSET_SECRET:?the ERP's signing secret}"}
"""

NOT_RUNNING_BOTS = [
    ["status"], ["queues", "list"], ["queues", "tail", "inventory.changes"], ["checkpoints", "list"],
    ["partners", "list"], ["webhooks", "list"], ["streams", "list"], ["deadletters", "list"],
    ["bots", "pause", "notify"], ["bots", "resume", "notify"], ["checkpoints", "reset", "low-stock", "--to", "earliest"],
    ["queues", "put", "inventory.changes", "-"], ["ingest", "inventory", "-"], ["partners", "create", "erp"],
]


@pytest.mark.parametrize("command", NOT_RUNNING_BOTS, ids=" ".join)
def test_commands_that_run_no_bots_need_only_the_store_and_the_names(project: Project, command: list[str]) -> None:
    """A webhook sender's ${RECEIVER_URL} (and a ${PORT}) unset in the operator's shell: every
    command that runs no bot still works; `leo run` and `leo validate` name the variable."""
    project.write(SECRET_PIPELINE)
    store = project.store()
    store.append("inventory.changes", [{"sku": "A", "quantity": 1}])
    store.close()
    env = {"LEO_STORE": ""}

    result = leo(*command, "-f", str(project.file), env=env, input='{"sku": "B", "quantity": 2}\n')

    assert result.returncode == 0, f"{command}: {result.stderr}"
    assert "LEO_TEST_UNSET" not in result.stderr  # not even a warning on every call
    if command == ["status"]:
        status = leo("status", "--json", "-f", str(project.file), env=env)
        notify = next(bot for bot in json.loads(status.stdout)["bots"] if bot["id"] == "notify")
        assert (notify["pipeline"], notify["use"], notify["kind"]) == ("feed", "webhook_sender", "sink")


@pytest.mark.parametrize("command", [["validate"], ["run", "--no-http"]], ids=" ".join)
def test_commands_that_check_or_run_bots_name_every_unset_variable(project: Project, command: list[str]) -> None:
    project.write(SECRET_PIPELINE)
    result = leo(*command, "-f", str(project.file), env={"LEO_STORE": ""}, timeout=30)
    assert result.returncode == 1
    for name in ("LEO_TEST_UNSET_PORT", "LEO_TEST_UNSET_RECEIVER_URL", "LEO_TEST_UNSET_SECRET"):
        assert f"environment variable '{name}'" in result.stderr, result.stderr
    assert "the ERP's signing secret" in result.stderr


@pytest.mark.parametrize(("where", "text"), [
    ("a bot id", FILTER_PIPELINE.replace("id: low-stock", "id: ${LEO_TEST_UNSET_ID}")),
    ("an input queue", FILTER_PIPELINE.replace("in: inventory.in", "in: ${LEO_TEST_UNSET_QUEUE}")),
    ("a pipeline's name", FILTER_PIPELINE.replace("feed:", "${LEO_TEST_UNSET_NAME}:")),
])
def test_an_unset_variable_in_a_name_stays_an_error(project: Project, where: str, text: str) -> None:
    from leo_runtime.config import load_config
    from leo_runtime.errors import ConfigError

    project.write(text)
    with pytest.raises(ConfigError) as caught:
        load_config(project.file, import_bots=False)
    assert "LEO_TEST_UNSET" in str(caught.value.problems), where


def test_an_unset_variable_in_the_store_url_is_an_error_naming_it(project: Project) -> None:
    project.write(FILTER_PIPELINE + "store: sqlite:///${LEO_TEST_UNSET_DB}\n")
    result = leo("status", "-f", str(project.file), env={"LEO_STORE": ""})
    assert result.returncode == 1
    assert "LEO_TEST_UNSET_DB" in result.stderr and "Traceback" not in result.stderr
    assert list(project.root.iterdir()) == [project.file]


def test_ingest_imports_no_custom_bot_code(project: Project) -> None:
    project.write(MARKING_BOT, "bots/slow.py")
    project.write(OBJECTS_PIPELINE + "      - {id: slow, use: ./bots/slow.py:Slow, in: inventory.low_stock, out: done}\n")
    marker = project.root / "bots" / "imported.marker"

    result = leo("ingest", "inventory", "-f", str(project.file), env={"LEO_STORE": ""}, input='[{"sku": "A"}]')

    assert result.returncode == 0, result.stderr
    assert "1 created" in result.stdout
    assert not marker.exists(), "`leo ingest` imported the custom bot"
