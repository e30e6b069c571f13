"""`leo store copy`'s refusals: one clear line, exit 1, no password shown, nothing written."""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path

from leo_runtime.store import SQLiteStore

from .conftest import leo
from .pg import fresh_store_url


def make_source(path: Path) -> None:
    store = SQLiteStore(path)
    store.append("orders", [{"n": 1}])
    store.close()


def test_an_unreachable_target_is_one_line_without_its_password(tmp_path: Path) -> None:
    make_source(tmp_path / "leo.db")
    done = leo("store", "copy", "leo.db", "postgresql://leo:pa55word@127.0.0.1:1/leo", cwd=tmp_path)
    assert done.returncode == 1
    assert done.stderr.startswith("error: store postgresql://leo:***@127.0.0.1:1/leo: cannot connect")
    assert "pa55word" not in done.stderr + done.stdout and len(done.stderr.splitlines()) == 1


def test_a_missing_source_is_refused_and_nothing_is_created(tmp_path: Path) -> None:
    done = leo("store", "copy", "nothing.db", str(tmp_path / "target.db"), cwd=tmp_path)
    assert done.returncode == 1
    assert "does not exist" in done.stderr and "nothing.db" in done.stderr
    assert not (tmp_path / "nothing.db").exists() and not (tmp_path / "target.db").exists()


def test_a_source_at_an_older_schema_version_says_what_to_run_and_the_target_is_not_touched(tmp_path: Path) -> None:
    make_source(tmp_path / "leo.db")
    with sqlite3.connect(tmp_path / "leo.db") as conn:
        conn.execute("DELETE FROM schema_migrations WHERE version = (SELECT MAX(version) FROM schema_migrations)")
    url = fresh_store_url()
    done = leo("store", "copy", "leo.db", url, cwd=tmp_path)
    assert done.returncode == 1
    assert "older than this leo-runtime's" in done.stderr and "leo run" in done.stderr


def test_a_target_holding_other_data_is_refused_naming_a_table(tmp_path: Path) -> None:
    make_source(tmp_path / "leo.db")
    other = SQLiteStore(tmp_path / "other.db")
    other.append("payments", [{"p": 1}])
    other.close()
    done = leo("store", "copy", "leo.db", "other.db", cwd=tmp_path)
    assert done.returncode == 1
    assert "already holds other data (table " in done.stderr
    check = SQLiteStore(tmp_path / "other.db")
    try:
        assert check.queue_head("orders") == 0 and check.queue_head("payments") > 0
    finally:
        check.close()


def test_copy_prints_rows_per_table_and_a_second_run_says_nothing_changed(tmp_path: Path) -> None:
    make_source(tmp_path / "leo.db")
    first = leo("store", "copy", "leo.db", "sqlite:///copy.db", cwd=tmp_path)
    assert first.returncode == 0, first.stderr
    assert "events" in first.stdout and "copied 5 rows" in first.stdout
    second = leo("store", "copy", "leo.db", "sqlite:///copy.db", cwd=tmp_path)
    assert second.returncode == 0 and "nothing changed" in second.stdout


def test_a_leo_run_still_heartbeating_on_the_source_is_warned_of(tmp_path: Path) -> None:
    make_source(tmp_path / "leo.db")
    store = SQLiteStore(tmp_path / "leo.db")
    store.register_runtime("host-a:1234", "pipelines.yaml")  # what a live `leo run` does (and heartbeats)
    store.close()
    done = leo("store", "copy", "leo.db", "copy.db", "--json", cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    assert "warning: a `leo run` wrote to" in done.stderr and "host-a:1234" in done.stderr
    assert json.loads(done.stdout)["source_running"] == ["host-a:1234"]


def test_without_source_the_projects_store_is_copied_and_no_store_named_is_bad_usage(tmp_path: Path) -> None:
    (tmp_path / "pipelines.yaml").write_text("version: 1\nstore: sqlite:///data/leo.db\npipelines: {}\n")
    (tmp_path / "data").mkdir()
    make_source(tmp_path / "data" / "leo.db")
    done = leo("store", "copy", "copy.db", "--json", cwd=tmp_path, env={"LEO_STORE": ""})
    assert done.returncode == 0, done.stderr
    summary = json.loads(done.stdout)
    assert summary["source"].endswith("/data/leo.db") and summary["rows"]["events"] == 1
    bare = leo("store", "copy", cwd=tmp_path)
    assert bare.returncode == 2 and "[SOURCE] TARGET" in bare.stderr
