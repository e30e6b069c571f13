"""Objects from the outside: `leo ingest` (the real CLI, real stores) and the readers it shares
with the change detector and the HTTP API."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from leo_runtime import objects
from leo_runtime.cli import app
from leo_runtime.errors import ObjectInputError
from leo_runtime.jsonio import JSONInputError

from .conftest import Project, leo, ndjson
from .objects_helpers import assert_objects_agree_with_changes, change_records, live_objects

runner = CliRunner()

PROJECT = """
version: 1
object_types:
  inventory: {key: sku}
  order: {key: po_number}
pipelines: {}
"""


def ingest(project: Project, *args: str, input: str | None = None):
    return runner.invoke(app, ["ingest", *args, "-f", str(project.file)], input=input, env={"LEO_STORE": ""})


@pytest.fixture
def shop(project: Project) -> Project:
    project.write(PROJECT)
    return project


def test_ingesting_the_same_file_twice_changes_nothing_the_second_time(shop: Project) -> None:
    source = shop.root / "stock.ndjson"
    source.write_text(ndjson([{"sku": f"S{n}", "quantity": n} for n in range(100)]))
    first = ingest(shop, "inventory", str(source), "--json")
    assert first.exit_code == 0, first.output
    assert json.loads(first.stdout) == {"object_type": "inventory", "created": 100, "updated": 0, "unchanged": 0, "deleted": 0}
    second = ingest(shop, "inventory", str(source))
    assert second.exit_code == 0, second.output
    assert f"ingested 100 object(s) of type 'inventory' from {source}: 0 created, 0 updated, 100 unchanged" in second.stdout
    store = shop.store()
    assert len(change_records(store)) == 100
    assert_objects_agree_with_changes(store)


def test_a_json_array_from_stdin_and_a_snapshot_that_deletes(shop: Project) -> None:
    ingest(shop, "order", input=json.dumps([{"po_number": "P1", "total": 5}, {"po_number": "P2", "total": 7}]))
    result = ingest(shop, "order", "-", "--snapshot", "--json", input=json.dumps([{"po_number": "P2", "total": 8}]))
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout) == {"object_type": "order", "created": 0, "updated": 1, "unchanged": 0, "deleted": 1}
    assert live_objects(shop.store(), "order") == {"P2": {"po_number": "P2", "total": 8}}


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ('{"sku": "A"}\n{"sku": "B"}\n{"name": "no key"}\n', "stdin:3: missing key field 'sku'"),
        ('{"sku": "A"}\n{"sku": "B",}\n', "stdin:2: not JSON: trailing comma is not allowed"),
        ('{"sku": "A"}\n{"sku": ""}\n', "stdin:2: key field 'sku' is an empty string"),
        ('[{"sku": "A"}, {"sku": 1.5}]', "stdin: item 2: key field 'sku' must be a non-empty string or an integer"),
        ('[{"sku": "A"},\n {"sku": "B"]', "stdin:2: not JSON"),
        ('"just a string"\n', "stdin:1: expected a JSON object, got a string"),
        ("\ufeff" + '{"sku": "A"}\n', "stdin:1: starts with a UTF-8 byte order mark (BOM)"),
        ('{"sku": "A", "deep": ' + "[" * 150 + "]" * 150 + "}\n", "stdin:1: nested deeper than 100 levels"),
    ],
)
def test_a_bad_line_writes_nothing_and_names_the_line(shop: Project, text: str, message: str) -> None:
    result = ingest(shop, "inventory", input=text)
    assert result.exit_code == 1
    assert f"error: {message}" in result.output and "(nothing was written)" in result.output, result.output
    assert "Traceback" not in result.output
    assert live_objects(shop.store()) == {} and change_records(shop.store()) == []


def test_an_unknown_object_type_or_file_is_a_clear_error(shop: Project) -> None:
    unknown = ingest(shop, "inventry", input='{"sku": "A"}\n')
    assert unknown.exit_code == 2  # a name that names nothing: bad usage, as everywhere (README, The CLI)
    assert "unknown object type 'inventry' (did you mean 'inventory'?); declared: inventory, order" in unknown.output
    missing = ingest(shop, "inventory", str(shop.root / "nope.ndjson"))
    assert missing.exit_code == 2 and "cannot read" in missing.output and "No such file" in missing.output
    shop.write(PROJECT.replace("inventory: {key: sku}", "inventory: {kee: sku}"))
    broken = ingest(shop, "inventory", input='{"sku": "A"}\n')
    assert broken.exit_code == 1 and "pipelines.yaml:3:15: unknown field 'kee'" in broken.output
    assert not shop.db.exists() or change_records(shop.store()) == []


def test_a_csv_file_is_ingested_as_text_fields(shop: Project) -> None:
    source = shop.root / "stock.csv"
    source.write_text("sku,quantity\nA,1\nB,2\n")
    result = ingest(shop, "inventory", str(source))
    assert result.exit_code == 0, result.output
    assert live_objects(shop.store()) == {"A": {"sku": "A", "quantity": "1"}, "B": {"sku": "B", "quantity": "2"}}


def test_a_long_ingest_shows_a_progress_bar_on_a_terminal(shop: Project) -> None:
    source = shop.root / "many.ndjson"
    source.write_text(ndjson([{"sku": f"S{n}", "n": n} for n in range(20_000)]))
    result = leo("ingest", "inventory", str(source), cwd=shop.root, env={"TTY_COMPATIBLE": "1"})
    assert result.returncode == 0, result.stderr
    assert "20000/20000" in result.stderr
    assert "20000 created" in result.stdout


# -- readers ---------------------------------------------------------------------------------------------
def test_parse_objects_keeps_ndjson_text_and_locates_array_items() -> None:
    lines = list(objects.parse_objects(b'{"sku": "A",  "n": 1}\r\n\n{"sku":"B"}', "body"))
    assert [(item.where, item.text) for item in lines] == [("body:1", '{"sku": "A",  "n": 1}'), ("body:3", '{"sku":"B"}')]
    items = list(objects.parse_objects(b' [{"sku": "A"}, 5]', "body"))
    expected = [({"sku": "A"}, "body: item 1", None), (5, "body: item 2", None)]
    assert [(item.value, item.where, item.text) for item in items] == expected
    assert list(objects.parse_objects(b"", "body")) == []
    with pytest.raises(JSONInputError, match="body:1: is UTF-16"):
        list(objects.parse_objects('{"sku": "A"}'.encode("utf-16-le"), "body"))


def test_ndjson_rows_match_object_rows() -> None:
    text = b'{"b": [1, {"y": 2, "x": 1}], "sku": 7}\r\n'
    fast = next(objects.ndjson_pages([text], "f", "sku")).row(0)
    (slow,) = objects.object_rows(objects.parse_objects(text, "f"), "sku", "f")
    assert (fast[0], fast[1]) == (slow.key, slow.hash)
    assert fast[0] == "7" and fast[1] == objects.content_hash({"sku": 7, "b": [1, {"x": 1, "y": 2}]})
    assert fast[2] == text and slow.data_json == text.decode().strip()  # the store trims bytes it writes
    assert fast[3] is None  # not kept: most lines are unchanged, and a change record decodes its text again


def test_changed_fields_compare_by_canonical_json() -> None:
    assert objects.changed_fields({"a": 1, "b": {"x": 1, "y": 2}, "c": 1}, {"a": True, "b": {"y": 2, "x": 1}, "d": 1}) == [
        "a", "c", "d"]
    assert objects.changed_fields({"a": 1.0}, {"a": 1}) == ["a"]


def test_object_key_rules() -> None:
    assert objects.object_key({"id": 0}, "id", "x") == "0"
    for value, reason in [({"id": False}, "not a boolean"), ({}, "missing key field 'id'"), (None, "got null")]:
        with pytest.raises(ObjectInputError, match=reason):
            objects.object_key(value, "id", "x")


def test_a_custom_key_field_with_dots_is_a_plain_field(shop: Project, tmp_path: Path) -> None:
    shop.write(PROJECT.replace("{key: sku}", "{key: item.id}"))
    result = ingest(shop, "inventory", input='{"item.id": "A", "item": {"id": "B"}}\n')
    assert result.exit_code == 0, result.output
    assert list(live_objects(shop.store())) == ["A"]


def test_an_empty_snapshot_is_refused(shop: Project) -> None:
    ingest(shop, "inventory", input='{"sku": "A"}\n')
    result = ingest(shop, "inventory", "--snapshot", input="\n")
    assert result.exit_code == 1
    assert "stdin: holds no objects: a full read without any would delete every 'inventory' object" in result.output
    assert list(live_objects(shop.store())) == ["A"]
