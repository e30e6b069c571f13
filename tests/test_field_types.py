"""Typed object fields: `object_types.T.fields` cast by every way objects come in (folder sources,
SQLite tables, ingest from the CLI and the API), a value that does not cast is the input's located
error (nothing of the read applied), and queries that can never match a typed field are warned of."""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path

import pytest
from typer.testing import CliRunner

import leo_runtime.bots  # noqa: F401  (the built-ins)
from leo_runtime.cli import app
from leo_runtime.config import load_config
from leo_runtime.errors import ConfigError, ObjectInputError
from leo_runtime.fieldtypes import FieldCaster

from .conftest import Project, payloads_of, run_with

pytestmark = pytest.mark.usefixtures("isolated_imports")

runner = CliRunner()

TYPED = """
version: 1
object_types:
  inventory: {key: sku, fields: {quantity: integer, price: number, active: boolean, label: string}}
pipelines:
  feed:
    bots:
      - id: detector
        use: change_detector
        with: {object_type: inventory, source: {kind: json_dir, path: data}, snapshot: full}
        schedule: 1h
      - id: low
        use: filter
        in: inventory.changes
        with: {query: {quantity: {lt: 5}}}
        out: low
"""


@pytest.mark.parametrize(
    ("kind", "value", "cast"),
    [
        ("integer", "2", 2), ("integer", " -7 ", -7), ("integer", 3.0, 3), ("integer", "4.0", 4), ("integer", 5, 5),
        ("integer", "", None), ("integer", None, None),
        ("number", "2.5", 2.5), ("number", "1e3", 1000.0), ("number", "3", 3), ("number", 7, 7),
        ("boolean", "yes", True), ("boolean", "FALSE", False), ("boolean", "1", True), ("boolean", 0, False),
        ("boolean", True, True),
        ("string", 7, "7"), ("string", 2.5, "2.5"), ("string", True, "true"), ("string", "x", "x"), ("string", "", ""),
    ],
)
def test_values_cast_to_their_declared_type(kind: str, value: object, cast: object) -> None:
    result = FieldCaster("inventory", {"f": kind})({"f": value}, "here")
    assert result == {"f": cast}
    assert type(result["f"]) is type(cast)


@pytest.mark.parametrize(
    ("kind", "value", "shown"),
    [
        ("integer", "lots", "'lots'"), ("integer", 2.5, "2.5"), ("integer", True, "True"), ("integer", "2.5", "'2.5'"),
        ("number", "nan", "'nan'"), ("number", "inf", "'inf'"), ("number", False, "False"), ("number", [1], "[1]"),
        ("boolean", "maybe", "'maybe'"), ("boolean", 2, "2"), ("string", {"a": 1}, "{'a': 1}"),
    ],
)
def test_a_value_that_does_not_cast_is_a_located_error(kind: str, value: object, shown: str) -> None:
    with pytest.raises(ObjectInputError) as info:
        FieldCaster("inventory", {"f": kind})({"f": value}, "data/x.csv:3")
    article = {"integer": "an integer", "number": "a number", "boolean": "a boolean", "string": "text"}[kind]
    assert str(info.value) == (
        f"data/x.csv:3: field 'f': {shown} is not {article} (object_types.inventory.fields says {kind}); fix the input, "
        "or change the field's type"
    )


def test_an_object_that_needs_no_cast_is_kept_as_it_is() -> None:
    value = {"f": 2, "other": "2"}
    assert FieldCaster("inventory", {"f": "integer"})(value, "here") is value


def test_a_csv_folder_is_read_typed_and_a_filter_sees_numbers(project: Project) -> None:
    project.write(TYPED)
    (project.root / "data").mkdir()
    (project.root / "data" / "stock.csv").write_text(
        "sku,quantity,price,active,label\nA-1,2,9.50,yes,7\nB-2,50,1,no,x\nC-3,,3,0,\n")

    async def body(runtime):  # the detector runs at start
        await wait_for_changes(project, 3)

    run_with(project, body)
    store = project.store()
    try:
        assert [change["data"] for change in payloads_of(store, "inventory.changes")] == [
            {"sku": "A-1", "quantity": 2, "price": 9.5, "active": True, "label": "7"},
            {"sku": "B-2", "quantity": 50, "price": 1, "active": False, "label": "x"},
            {"sku": "C-3", "quantity": None, "price": 3, "active": False, "label": ""},
        ]
        assert [change["key"] for change in payloads_of(store, "low")] == ["A-1"]  # "2" < 5: no longer dropped
        record = store.get_object("inventory", "A-1")
        assert record is not None and json.loads(record.data_json)["quantity"] == 2
    finally:
        store.close()


async def wait_for_changes(project: Project, count: int) -> None:
    from .conftest import async_wait_until

    store = project.store()
    try:
        await async_wait_until(lambda: len(payloads_of(store, "inventory.changes")) >= count, what="changes")
    finally:
        store.close()


def test_an_ndjson_line_that_does_not_cast_fails_the_read_and_applies_nothing(project: Project) -> None:
    project.write(TYPED)
    (project.root / "data").mkdir()
    (project.root / "data" / "stock.ndjson").write_text(
        '{"sku": "A-1", "quantity": "3"}\n{"sku": "B-2", "quantity": "three"}\n')

    async def body(runtime):
        await _wait_error(runtime)

    run_with(project, body)
    store = project.store()
    try:
        assert payloads_of(store, "inventory.changes") == []
        info = store.bot("detector")
        assert info is not None and info.last_error == (
            "data/stock.ndjson:2: field 'quantity': 'three' is not an integer (object_types.inventory.fields says "
            "integer); fix the input, or change the field's type"
        )
    finally:
        store.close()


async def _wait_error(runtime) -> None:
    from .conftest import async_wait_until

    await async_wait_until(lambda: runtime.runners["detector"].last_error is not None, what="the detector's error")


def test_an_ndjson_line_read_again_after_its_type_changed_is_cast_again(tmp_path: Path) -> None:
    # A line the store holds as it came is recognised by a hash of its text, without parsing:
    # that hash depends on the declared types, or the new type would never apply to it.
    from leo_runtime import objects
    from leo_runtime.store import open_store

    store = open_store("sqlite:///leo.db", tmp_path)
    lines = [b'{"sku": "A-%d", "quantity": "3"}' % number for number in range(5)]
    try:
        untyped = objects.batch_of_rows("inventory", (), complete=True, pages=objects.ndjson_pages(lines, "x", "sku"))
        store.apply_objects([untyped])
        cast = FieldCaster("inventory", {"quantity": "integer"})
        typed = objects.batch_of_rows("inventory", (), complete=True,
                                      pages=objects.ndjson_pages(lines, "x", "sku", cast=cast))
        store.apply_objects([typed])
        assert (typed.counts.updated, typed.counts.unchanged) == (5, 0)
        record = store.get_object("inventory", "A-1")
        assert record is not None and json.loads(record.data_json) == {"sku": "A-1", "quantity": 3}
        again = objects.batch_of_rows("inventory", (), complete=True,
                                      pages=objects.ndjson_pages(lines, "x", "sku", cast=cast))
        store.apply_objects([again])
        assert again.counts.unchanged == 5  # the same lines under the same types: recognised, not parsed
    finally:
        store.close()


def test_a_sqlite_table_is_cast(project: Project) -> None:
    project.write(TYPED.replace("{kind: json_dir, path: data}", "{kind: sqlite_table, path: src.db, table: stock}"))
    with sqlite3.connect(project.root / "src.db") as conn:
        conn.execute("CREATE TABLE stock (sku TEXT PRIMARY KEY, quantity TEXT, active INTEGER)")
        conn.execute("INSERT INTO stock VALUES ('A-1', '4', 1)")
    run_with(project, lambda runtime: wait_for_changes(project, 1))
    store = project.store()
    try:
        (change,) = payloads_of(store, "inventory.changes")
        assert change["data"] == {"sku": "A-1", "quantity": 4, "active": True}
    finally:
        store.close()


def test_leo_ingest_casts_and_refuses_what_does_not_cast(project: Project) -> None:
    project.write(TYPED)
    good = project.write("sku,quantity\nA-1,2\n", "good.csv")
    bad = project.write('{"sku": "A-1", "quantity": 1}\n{"sku": "B-2", "quantity": "x"}\n', "bad.ndjson")
    result = runner.invoke(app, ["ingest", "inventory", str(good), "-f", str(project.file)], env={"LEO_STORE": ""})
    assert result.exit_code == 0, result.output
    refused = runner.invoke(app, ["ingest", "inventory", str(bad), "-f", str(project.file)], env={"LEO_STORE": ""})
    assert refused.exit_code == 1
    assert f"{bad}:2: field 'quantity': 'x' is not an integer" in refused.output
    store = project.store()
    try:
        assert [change["data"] for change in payloads_of(store, "inventory.changes")] == [{"sku": "A-1", "quantity": 2}]
    finally:
        store.close()


# -- declaring types --------------------------------------------------------------------------------
def test_a_misspelled_field_type_is_located_with_a_did_you_mean(tmp_path: Path) -> None:
    path = tmp_path / "pipelines.yaml"
    path.write_text("version: 1\nobject_types:\n  inventory: {key: sku, fields: {quantity: int}}\n")
    with pytest.raises(ConfigError) as info:
        load_config(path, env={})
    (problem,) = info.value.problems
    assert (problem.line, problem.column) == (3, 44)
    assert problem.message == (
        "object_types.inventory.fields.quantity: unknown field type 'int' (did you mean 'integer'?); a field is "
        "string, integer, number or boolean"
    )


def test_a_key_cannot_be_a_number(tmp_path: Path) -> None:
    path = tmp_path / "pipelines.yaml"
    path.write_text("version: 1\nobject_types:\n  inventory: {key: sku, fields: {sku: number}}\n")
    with pytest.raises(ConfigError) as info:
        load_config(path, env={})
    assert "the key field 'sku' cannot be a number: a key is a string or an integer" in str(info.value)


@pytest.mark.parametrize(
    ("query", "marker", "message"),
    [
        ('{quantity: {lt: "5"}}', "lt", "field 'quantity' is an integer (object_types.inventory.fields), but the query "
         "compares it with text '5', which never matches; write 5"),
        ('{active: "yes"}', "active", "field 'active' is a boolean (object_types.inventory.fields), but the query "
         "compares it with text 'yes', which never matches; write true"),
        ("{label: 7}", "label", "field 'label' is text (object_types.inventory.fields), but the query compares it with "
         'an integer 7, which never matches; write "7"'),
        ('{price: {in: [1, "x"]}}', '"x"', "field 'price' is a number (object_types.inventory.fields), but the query "
         "compares it with text 'x', which never matches; compare it with a number"),
        ('{quantity: {prefix: "1"}}', "prefix", "field 'quantity' is an integer (object_types.inventory.fields): prefix "
         "matches only text, so this never matches"),
    ],
)
def test_a_query_that_compares_a_typed_field_with_another_type_is_warned_of(
    tmp_path: Path, query: str, marker: str, message: str
) -> None:
    text = TYPED.replace("{query: {quantity: {lt: 5}}}", f"{{query: {query}}}") + """\
      - id: again
        use: filter
        in: low
        with: {query: {quantity: {gte: 1.5}}}
        out: again
"""
    path = tmp_path / "pipelines.yaml"
    path.write_text(text.lstrip())
    (warning,) = load_config(path, env={}).warnings  # the second filter (1.5, a number) is fine
    lines = text.lstrip().splitlines()
    line = next(number for number, value in enumerate(lines, 1) if "{query: " + query in value)
    assert (warning.line, warning.column) == (line, lines[line - 1].index(marker, lines[line - 1].index("query")) + 1)
    assert warning.message == f"bot 'low': {message}"


def test_a_query_downstream_of_a_filter_is_checked_too(tmp_path: Path) -> None:
    text = TYPED + """\
      - id: again
        use: filter
        in: low
        with: {query: {price: "9"}}
        out: again
"""
    path = tmp_path / "pipelines.yaml"
    path.write_text(text.lstrip())
    (warning,) = load_config(path, env={}).warnings
    assert warning.message.startswith("bot 'again': field 'price' is a number")
