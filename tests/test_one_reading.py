"""One reading of every input: JSON that names a key twice, or holds an integer past 64 bits, is
refused wherever JSON comes in (files, `leo queues put`, `leo ingest`, the change detector, the
file_reader, the admin ingest API, every API body, JSON on the command line, YAML), with the key
or the number's place and the line (or the HTTP field path) named.

Seen: ``{"po_number":"A","po_number":"B"}`` was stored as key B with both fields in its text (a
partner's parser keeping the first value reads another object), and 123456789012345678901234567890
in a query became 1.2345678901234568e+29.
"""

from __future__ import annotations

import json
import logging
from pathlib import Path

import pytest
from typer.testing import CliRunner

from leo_runtime.bot import BotContext
from leo_runtime.bots.file_reader import FileReader
from leo_runtime.cli import app
from leo_runtime.config import load_config
from leo_runtime.errors import ConfigError
from leo_runtime.jsonio import MAX_INT, MIN_INT, JSONInputError, check_each, parse, parse_document
from leo_runtime.runtime import Runtime

from .conftest import Project, async_wait_until, run_with
from .objects_helpers import live_objects

runner = CliRunner()
BIG = "123456789012345678901234567890"
DEEP_DUPLICATE = '{"a":' * 40 + '{"k":1,"k":2}' + "}" * 40


# -- the one module that decides -----------------------------------------------------------------------
@pytest.mark.parametrize(
    ("text", "says", "path", "line"),
    [
        ('{"po_number":"A","po_number":"B"}', "duplicate key 'po_number' (column 18): an object may name each key once",
         (), 1),
        ('{"a":{"b":[1,{"c":1,"c":1}]}}', "duplicate key 'c' in the object at a.b[1] (column 21)", ("a", "b", 1), 1),
        ('{"a":1,"\\u0061":2}', "duplicate key 'a' (column 8)", (), 1),  # the same key, escaped
        ('{"x.y":{"q":1},"x.y":{"q":1}}', "duplicate key 'x.y' (column 16)", (), 1),
        (DEEP_DUPLICATE, "duplicate key 'k' in the object at " + ".".join(["a"] * 40) + " (column 208)", ("a",) * 40, 1),
        ('[\n  {"sku": 1},\n  {"sku": 2,\n   "sku": 3}\n]', "duplicate key 'sku' in the object at [1] (column 4)", (1,), 4),
        (f'{{"q":{{"lt":{BIG}}}}}', f"integer {BIG} at q.lt is outside 64 bits (column 12)", ("q", "lt"), 1),
        (str(MAX_INT + 1), f"integer {MAX_INT + 1} is outside 64 bits", (), 1),
        (str(MIN_INT - 1), f"integer {MIN_INT - 1} is outside 64 bits", (), 1),
        (f'{{"n":[1,-{BIG}]}}', f"integer -{BIG} at n[1] is outside 64 bits", ("n", 1), 1),
    ],
)
def test_a_repeated_key_or_a_long_integer_is_refused_naming_where(text: str, says: str, path: tuple, line: int) -> None:
    with pytest.raises(JSONInputError) as refused:
        parse(text)
    assert says in str(refused.value)
    assert refused.value.path == path
    assert refused.value.line == line


@pytest.mark.parametrize(
    "text",
    [
        str(MAX_INT), str(MIN_INT), "-0", "-0.0", "1e308", "0.123456789012345678901234567890",
        '{"id":"123456789012345678901234567890"}',  # a long number in a string is text
        '{"a":"x\\u003ay","b":":"}', '{"a":"\\\\u003a","b":1}',  # escaped colons (a false alarm is walked)
        '[{"k":1},{"k":1}]', '{"a":{"k":1},"b":{"k":1}}', '[{}, "x", {"k": 1}]',  # the same key in other objects
        '{"a":1E22,"b":12345678901234567890.5,"c":-9223372036854775808.0}',
    ],
)
def test_what_reads_one_way_passes_exactly(text: str) -> None:
    assert parse(text) == json.loads(text)
    assert check_each([text.encode()]) == []


def test_an_ndjson_duplicate_on_line_10000_is_named_at_its_line() -> None:
    lines = [b'{"sku":"S%d","n":%d}' % (n, n) for n in range(1, 10_001)]
    lines[9_999] = b'{"sku":"S10000","n":1,"n":2}'
    assert check_each(lines) == [(9_999, "duplicate key 'n' (column 23): an object may name each key once")]
    with pytest.raises(JSONInputError, match=r"^data\.ndjson:10000: duplicate key 'n'"):
        parse_document(b"\n".join(lines), "data.ndjson")


@pytest.mark.parametrize(
    ("bad", "says"),
    [
        ('{"sku":"S","n":1,"n":2}', "duplicate key 'n'"),
        ('{"sku":"\\u003a","n":1,"n":2}', "duplicate key 'n'"),  # an escaped colon beside the repeat
        (f'{{"sku":"S","n":{BIG}}}', f"integer {BIG} at n is outside 64 bits"),
        ('{"sku":' + "[" * 101 + "]" * 101 + "}", "nested deeper than 100 levels"),
        ('{"sku":"S",}', "trailing comma"),
    ],
)
def test_a_batch_of_good_lines_hides_no_bad_one(bad: str, says: str) -> None:
    """`check_each` clears a batch by whole-batch counts first: one bad text among thousands of
    good ones (deep ones, escaped colons, long numbers in strings) is still named, at its index."""
    good = [b'{"sku":"S%d","n":%d,"note":"a:b","id":"%s"}' % (n, n, BIG.encode()) for n in range(3000)]
    good[5] = b'{"deep":' + b"[" * 99 + b"]" * 99 + b"}"  # as deep as allowed
    good[6] = b'{"colon":"x\\u003ay","n":1}'
    lines = [*good[:1500], bad.encode(), *good[1500:]]
    assert check_each(good) == []
    refused = check_each(lines)
    assert [index for index, _ in refused] == [1500]
    assert says in refused[0][1]


# -- every way JSON comes in ------------------------------------------------------------------------------
PROJECT = """
version: 1
object_types:
  order: {key: po_number}
pipelines:
  p:
    bots:
      - {id: f, use: filter, in: orders.in, out: orders.out, with: {query: {}}}
"""


def ndjson_with_a_duplicate_on_line_10000() -> str:
    lines = [json.dumps({"po_number": f"P{n}", "total": n}) for n in range(1, 10_001)]
    lines[9_999] = '{"po_number":"A","po_number":"B"}'
    return "\n".join(lines) + "\n"


def test_leo_queues_put_refuses_the_line_and_writes_nothing(project: Project) -> None:
    project.write(PROJECT)
    source = project.write(ndjson_with_a_duplicate_on_line_10000(), "in.ndjson")
    result = runner.invoke(app, ["queues", "put", "orders.in", str(source), "-f", str(project.file)], env={"LEO_STORE": ""})
    assert result.exit_code == 1
    assert f"{source}:10000: duplicate key 'po_number' (column 18)" in result.output
    assert project.store().queue_head("orders.in") == 0


@pytest.mark.parametrize("shape", ["ndjson", "array"])
def test_leo_ingest_refuses_the_object_and_writes_nothing(project: Project, shape: str) -> None:
    project.write(PROJECT)
    if shape == "ndjson":
        source, where = project.write(ndjson_with_a_duplicate_on_line_10000(), "in.ndjson"), "10000"
    else:
        source, where = project.write('[{"po_number": "P1"},\n {"po_number": "A", "po_number": "B"}]', "in.json"), "2"
    result = runner.invoke(app, ["ingest", "order", str(source), "-f", str(project.file)], env={"LEO_STORE": ""})
    assert result.exit_code == 1
    assert f"{source}:{where}: duplicate key 'po_number'" in result.output
    assert live_objects(project.store(), "order") == {}


def test_the_change_detector_reports_the_file_and_line_and_applies_nothing(project: Project) -> None:
    folder = project.root / "data"
    folder.mkdir()
    (folder / "orders.ndjson").write_text('{"po_number": "P1"}\n{"po_number": "P2", "total": 1, "total": 2}\n')
    project.write("""
        version: 1
        object_types:
          order: {key: po_number}
        pipelines:
          p:
            bots:
              - id: detector
                use: change_detector
                with: {object_type: order, source: {kind: json_dir, path: data}, snapshot: full}
        """)
    store = project.store()

    async def body(runtime: Runtime) -> None:
        await async_wait_until(lambda: "data/orders.ndjson:2: duplicate key 'total'" in (store.bot("detector").last_error or ""),
                               what="the detector's error")

    run_with(project, body)
    assert live_objects(store, "order") == {}


def test_the_file_reader_skips_the_line_and_says_why(tmp_path: Path) -> None:
    (tmp_path / "a.ndjson").write_text('{"n":1}\n{"n":2,"n":3}\n{"big":' + BIG + '}\n{"n":4}\n')
    state: dict = {}
    ctx = BotContext(bot_id="reader", pipeline="p", base_dir=tmp_path, state=state, logger=logging.getLogger("test"))
    bot = FileReader(FileReader.Settings(path="."), ctx)
    assert [raw.text for raw in bot.produce(ctx)] == ['{"n":1}', '{"n":4}']
    assert state["rejected"]["recent"] == [
        f"{tmp_path}/a.ndjson:2: duplicate key 'n' (column 8): an object may name each key once",
        f"{tmp_path}/a.ndjson:3: integer {BIG} at big is outside 64 bits (column 8): leo keeps integers exact from "
        f"{MIN_INT} to {MAX_INT}; send larger ones as strings",
    ]


@pytest.mark.parametrize(
    ("scope", "says"),
    [
        ('{"warehouse": "NYC", "warehouse": "LA"}', "error: --scope: duplicate key 'warehouse' (column 22)"),
        ('{"quantity": {"lt": ' + BIG + "}}", f"error: --scope: integer {BIG} at quantity.lt is outside 64 bits"),
    ],
)
def test_json_on_the_command_line_is_read_one_way(project: Project, scope: str, says: str) -> None:
    project.write(PROJECT)
    result = runner.invoke(app, ["partners", "create", "acme", "--scope", scope, "-f", str(project.file)],
                           env={"LEO_STORE": ""})
    assert result.exit_code == 1
    assert says in result.output
    assert project.store().partners() == []


def test_yaml_integers_follow_the_same_rule(project: Project) -> None:
    project.write(f"""
        version: 1
        pipelines:
          p:
            bots:
              - {{id: f, use: filter, in: a, out: b, with: {{query: {{total: {{lt: {BIG}}}}}}}}}
        """)
    with pytest.raises(ConfigError) as refused:
        load_config(project.file)
    assert f"pipelines.yaml:5:72: invalid !!int value '{BIG}': outside 64 bits" in str(refused.value)
    project.write(f"""
        version: 1
        pipelines:
          p:
            bots:
              - {{id: f, use: filter, in: a, out: b, with: {{query: {{total: {{lt: {MAX_INT}}}}}}}}}
        """)
    assert load_config(project.file).bots[0].settings.query.spec == {"total": {"lt": MAX_INT}}  # type: ignore[attr-defined]
