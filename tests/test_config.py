"""pipelines.yaml through `load_config`: real files in tmp_path, every problem located by hand.

Each error test derives the expected ``(line, column)`` from the YAML text itself (`Pipelines.at`
finds a marker substring), so the assertion says exactly which character the problem points at.
Most files are the usual document around a few bots: `feed` writes that document, so a test
shows only the bots (and object types) that matter to it.
"""

from __future__ import annotations

import datetime
import json
import sys
import textwrap
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from pydantic import BaseModel

import leo_runtime.bots  # noqa: F401  (the built-ins)
from leo_runtime import bot as bot_module
from leo_runtime.bot import Bot, BotSettings, RunLimits, register_bot
from leo_runtime.bots.file_reader import FileReader
from leo_runtime.bots.filter import Filter
from leo_runtime.config import Config, Schedule, json_schema, load_config
from leo_runtime.errors import ConfigError, ConfigFileMissing, Problem
from leo_runtime.query import Query
from leo_runtime.registry import BotRegistry

# --------------------------------------------------------------------------------------------
# Helpers
# --------------------------------------------------------------------------------------------


class Pipelines:
    """A pipelines.yaml written to a real folder, plus position lookups in its text."""

    def __init__(self, root: Path, text: str, name: str = "pipelines.yaml") -> None:
        self.root = root
        self.text = textwrap.dedent(text).lstrip("\n")
        self.path = root / name
        self.path.write_text(self.text, encoding="utf-8")

    def at(self, marker: str, nth: int = 1, shift: int = 0) -> tuple[int, int]:
        """1-based (line, column) of the `nth` occurrence of `marker`, moved `shift` characters."""
        index = -1
        for _ in range(nth):
            index = self.text.index(marker, index + 1)
        index += shift
        line = self.text.count("\n", 0, index) + 1
        column = index - (self.text.rfind("\n", 0, index) + 1) + 1
        return line, column

    def load(self, env: dict[str, str] | None = None, **kwargs: Any) -> Config:
        """Load with an empty environment unless one is given (``os.environ`` with `use_os_env`)."""
        return load_config(self.path, env=env if env is not None else {}, **kwargs)

    def problems(self, env: dict[str, str] | None = None, **kwargs: Any) -> list[Problem]:
        with pytest.raises(ConfigError) as info:
            self.load(env, **kwargs)
        problems = info.value.problems
        assert problems, f"ConfigError without located problems: {info.value}"
        for problem in problems:
            assert problem.file == kwargs.get("display_name", str(self.path))
        return problems

    def error(self, env: dict[str, str] | None = None, **kwargs: Any) -> Problem:
        """The one and only problem of the file (an error)."""
        problems = self.problems(env, **kwargs)
        assert len(problems) == 1, "\n".join(map(str, problems))
        assert problems[0].severity == "error"
        return problems[0]

    def error_at(self, marker: str, nth: int = 1, shift: int = 0) -> str:
        """The message of the file's one error, once checked that it points at `marker`."""
        problem = self.error()
        assert where(problem) == self.at(marker, nth, shift)
        return problem.message


def where(problem: Problem) -> tuple[int, int]:
    return problem.line, problem.column


def _nested(snippet: str, depth: int) -> str:
    """`snippet` (indented as it reads in a test) dedented, then indented `depth` spaces."""
    return textwrap.indent(textwrap.dedent(snippet).strip("\n") + "\n", " " * depth)


def document(pipelines: dict[str, str], object_types: str = "") -> str:
    """`version: 1`, the `object_types` lines if any, then `pipelines:` with each name's `bots:` list."""
    text = "version: 1\n"
    if object_types:
        text += "object_types:\n" + _nested(object_types, 2)
    text += "pipelines:\n"
    for name, bots_snippet in pipelines.items():
        text += f"  {name}:\n    bots:\n" + _nested(bots_snippet, 6)
    return text


def feed(bots_snippet: str, object_types: str = "", pipeline: str = "feed") -> str:
    """The usual document: one pipeline, `feed` unless named, whose `bots:` list is `bots_snippet`."""
    return document({pipeline: bots_snippet}, object_types)


def reader_with(line: str) -> str:
    """One file_reader bot, `reader` (data -> raw), with `line` added to it."""
    return feed(f"""
        - id: reader
          use: file_reader
          with: {{path: data}}
          out: raw
          {line}
        """)


def low_with(line: str) -> str:
    """One filter bot, `low` (inventory.changes -> low), with `line` added to it."""
    return feed(
        f"""
        - id: low
          use: filter
          in: inventory.changes
          with: {{query: {{}}}}
          out: low
          {line}
        """,
        object_types="inventory: {key: sku}",
    )


pytestmark = pytest.mark.usefixtures("isolated_imports")

BOT_SOURCE = '''
from pydantic import Field

from leo_runtime import Bot, BotSettings, SinkBot, SourceBot


class Upper(Bot):
    """Upper-cases one field."""

    class Settings(BotSettings):
        field: str
        times: int = Field(1, ge=1)

    def process(self, events, ctx):
        yield from events


class Post(SinkBot):
    def process(self, events, ctx):
        return None


class Ticker(SourceBot):
    @classmethod
    def default_out(cls, settings):
        return "ticks"

    def produce(self, ctx):
        return []


NOT_A_BOT = 42


class Plain:
    pass
'''


def write_module(root: Path, relative: str, source: str = BOT_SOURCE) -> Path:
    path = root / relative
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(textwrap.dedent(source), encoding="utf-8")
    return path


# --------------------------------------------------------------------------------------------
# A valid file
# --------------------------------------------------------------------------------------------


def test_a_valid_file_gives_typed_models_and_bot_specs(tmp_path: Path) -> None:
    case = Pipelines(
        tmp_path,
        """
        version: 1
        store: sqlite:///data/leo.db
        server:
          host: 0.0.0.0
          port: 9000
          public_url: https://leo.example.com/
          get_object_rate: 2.5
          allow_private_callbacks: true
        retention: P2D
        webhooks:
          timeout: 30s
          retry_schedule: [5, 1m, PT1H]
        object_types:
          inventory: {key: sku}
          order: {key: po_number}
        pipelines:
          inventory-feed:
            description: files in, low stock out
            bots:
              - id: reader
                use: file_reader
                with: {path: data/inventory}
                out: inventory.raw
                schedule: watch
              - id: low-stock
                use: filter
                in: inventory.raw
                with: {query: {quantity: {lt: 5}}}
                out: inventory.low_stock
                start: latest
                batch: {records: 50, bytes: 1000, seconds: PT2S}
          orders:
            bots:
              - id: big-orders
                use: filter
                in: order.changes
                with:
                  query:
                    total: {gte: 1000}
                    status: {in: [open, backorder]}
                out: orders.big
        """,
    )
    config = case.load()
    assert config.warnings == []
    assert config.path == case.path.resolve()
    assert config.base_dir == tmp_path.resolve()

    model = config.model
    assert model.version == 1
    assert model.store == "sqlite:///data/leo.db"
    assert (model.server.host, model.server.port) == ("0.0.0.0", 9000)
    assert model.server.base_url == "https://leo.example.com"
    assert model.server.get_object_rate == 2.5
    assert model.server.allow_private_callbacks is True
    assert model.retention == 2 * 86400
    assert model.webhooks.timeout == 30
    assert model.webhooks.retry_schedule == [5, 60, 3600]
    assert {name: t.key for name, t in model.object_types.items()} == {"inventory": "sku", "order": "po_number"}
    assert list(model.pipelines) == ["inventory-feed", "orders"]
    assert model.pipelines["inventory-feed"].description == "files in, low stock out"

    assert [spec.id for spec in config.bots] == ["reader", "low-stock", "big-orders"]
    reader, low, big = config.bots
    assert (reader.pipeline, reader.cls, reader.kind) == ("inventory-feed", FileReader, "source")
    assert (reader.in_queue, reader.out_queue) == (None, "inventory.raw")
    assert reader.schedule == Schedule("watch", text="watch")
    assert reader.settings.path == "data/inventory"
    assert reader.path == ("pipelines", "inventory-feed", "bots", 0)

    assert (low.cls, low.kind, low.in_queue, low.out_queue) == (Filter, "processor", "inventory.raw", "inventory.low_stock")
    assert low.schedule is None
    assert low.config.start == "latest"
    assert low.limits == RunLimits(records=50, bytes=1000, seconds=2.0)
    assert isinstance(low.settings.query, Query)
    assert low.settings.query.matches({"quantity": 4}) and not low.settings.query.matches({"quantity": 5})
    assert reader.limits == RunLimits()  # defaults

    assert big.pipeline == "orders" and big.in_queue == "order.changes"
    assert big.settings.query.matches({"total": 1500, "status": "open"})
    assert not big.settings.query.matches({"total": 1500, "status": "closed"})

    assert [spec.id for spec in config.bots_of("orders")] == ["big-orders"]
    assert config.pipeline_data("orders")["bots"][0]["id"] == "big-orders"


def test_defaults_of_a_minimal_file(tmp_path: Path) -> None:
    config = Pipelines(tmp_path, "version: 1\n").load()
    model = config.model
    assert config.bots == [] and config.warnings == []
    assert model.store == "sqlite:///leo.db"
    assert (model.server.host, model.server.port, model.server.public_url) == ("127.0.0.1", 8765, None)
    assert model.server.base_url == "http://127.0.0.1:8765"
    assert model.server.get_object_rate == 10
    assert model.server.allow_private_callbacks is False
    assert model.retention == 7 * 86400
    assert model.webhooks.timeout == 15
    assert model.webhooks.retry_schedule == [5, 300, 1800, 7200, 18000, 36000, 36000]


def test_display_name_is_the_file_named_in_problems(tmp_path: Path) -> None:
    case = Pipelines(tmp_path, "version: 1\nsevrer: {}\n")
    problem = case.error(display_name="pipelines.yaml")
    assert str(problem).startswith("pipelines.yaml:2:1: unknown field 'sevrer' (did you mean 'server'?)")


# --------------------------------------------------------------------------------------------
# Unknown fields, wrong types, missing fields
# --------------------------------------------------------------------------------------------


def test_unknown_top_level_field_suggests_the_known_one(tmp_path: Path) -> None:
    case = Pipelines(
        tmp_path,
        """
        version: 1
        pipeline:
          feed:
            bots: []
        """,
    )
    problem = case.error()
    assert where(problem) == case.at("pipeline:")
    assert problem.message.startswith("unknown field 'pipeline' (did you mean 'pipelines'?)")
    assert "known fields: version, store, server, retention, webhooks, cluster, object_types, pipelines" in problem.message
    assert str(problem) == f"{case.path}:2:1: {problem.message}"


@pytest.mark.parametrize(
    ("text", "marker", "start"),
    [
        pytest.param(
            """
            version: 1
            server:
              host: 127.0.0.1
              prot: 9000
            """,
            "prot:",
            "unknown field 'prot' in 'server' (did you mean 'port'?)",
            id="in-a-nested-section",
        ),
        pytest.param(
            feed("""
                - id: reader
                  use: file_reader
                  with: {path: data}
                  ot: raw
                """),
            "ot: raw",
            "bot 'reader': unknown field 'ot' (did you mean 'out'?); known fields: id, use, with, in, out",
            id="of-a-bot-names-the-bot-and-suggests-out",
        ),
        pytest.param(
            reader_with("batch: {recrods: 10}"),
            "recrods",
            "bot 'reader': unknown field 'recrods' in 'batch' (did you mean 'records'?)",
            id="inside-a-bots-batch",
        ),
    ],
)
def test_unknown_field_suggests_the_known_one(tmp_path: Path, text: str, marker: str, start: str) -> None:
    assert Pipelines(tmp_path, text).error_at(marker).startswith(start)


def test_port_that_is_not_a_number(tmp_path: Path) -> None:
    case = Pipelines(tmp_path, "version: 1\nserver:\n  port: abc\n")
    message = case.error_at("abc")
    assert message.startswith("server.port: must be a whole number")
    assert message.endswith("(got 'abc')")


# One error each: the file, the marker it points at, its exact message
# (checked by `test_the_only_error_is_located_at_its_marker`, after the bot kinds).
FIELD_ERRORS = [
    pytest.param(
        "version: 1\nserver: {port: 70000}\n",
        "70000",
        "server.port: must be 65535 or less (got 70000)",
        id="port-out-of-range",
    ),
    pytest.param(
        feed("""
            - id: low
              use: filter
              in: raw
              with: {query: {a: 1}}
              batch:
                records: -1
            """),
        "-1",
        "bot 'low': batch.records: must be 1 or more (got -1)",
        id="negative-batch-records",
    ),
    pytest.param(
        feed("""
            - id: reader
              with: {path: data}
              out: raw
            """),
        "id: reader",
        "bot 'reader': missing required field 'use'",
        id="missing-use-points-at-the-bot",
    ),
    pytest.param(
        feed("""
            - id: reader
              use: file_reader
              with: {path: data}
              out: raw
            - use: filter
              in: raw
              with: {query: {a: 1}}
            """),
        "use: filter",
        "pipeline 'feed', bot #2: missing required field 'id'",
        id="missing-id-names-the-pipeline-and-position",
    ),
    pytest.param(
        "pipelines: {}\n",
        "pipelines",  # (1, 1): the start of the file
        "missing required field 'version'",
        id="missing-version-points-at-the-start",
    ),
    pytest.param(
        "version: 2\npipelines: {}\n",
        "2",  # (1, 10)
        "version: unsupported version 2: this leo-runtime reads 'version: 1'",
        id="version-2-says-which-version-is-supported",
    ),
    pytest.param(
        feed("""
            - just a string
            """),
        "just",
        "pipeline 'feed', bot #1: must be a mapping (key: value entries) (got 'just a string')",
        id="a-bot-that-is-not-a-mapping",
    ),
]


def test_bad_durations_are_located_at_the_value(tmp_path: Path) -> None:
    case = Pipelines(
        tmp_path,
        """
        version: 1
        retention: forever
        webhooks:
          timeout: 0
          retry_schedule: [5, soon]
        """,
    )
    problems = case.problems()
    assert [where(p) for p in problems] == [case.at("forever"), case.at("0"), case.at("soon")]
    assert problems[0].message.startswith("retention: invalid duration 'forever': expected seconds")
    assert problems[1].message.startswith("webhooks.timeout: must be more than zero")
    assert problems[2].message.startswith("webhooks.retry_schedule[1]: invalid duration 'soon'")


def test_the_edge_settings_have_defaults_ranges_and_located_errors(tmp_path: Path) -> None:
    server = Pipelines(tmp_path, "version: 1\n").load().model.server
    assert (server.max_connections, server.header_timeout, server.body_timeout, server.keep_alive_timeout,
            server.max_header_bytes) == (2000, 10, 30, 5, 32768)
    assert Pipelines(tmp_path, "version: 1\nserver: {header_timeout: PT2S, body_timeout: 1m}\n").load().model.server \
        .model_dump(include={"header_timeout", "body_timeout"}) == {"header_timeout": 2, "body_timeout": 60}
    case = Pipelines(
        tmp_path,
        """
        version: 1
        server:
          max_connections: 0
          header_timeout: 0
          body_timeout: 2h
          keep_alive_timeout: soon
          max_header_bytes: 100
        """,
    )
    problems = case.problems()
    assert [where(p) for p in problems] == [case.at("0"), case.at("0", 2), case.at("2h"), case.at("soon"),
                                            case.at("100")]
    assert [p.message.split(":")[0] for p in problems] == [
        "server.max_connections", "server.header_timeout", "server.body_timeout", "server.keep_alive_timeout",
        "server.max_header_bytes"]
    assert "must be 3600 or less" in problems[2].message
    properties = json_schema()["$defs"]["ServerConfig"]["properties"]
    # Any scalar may also be written as ${VAR} (or as text): the typed form is the first of anyOf.
    assert properties["max_connections"]["anyOf"][0]["minimum"] == 1 and properties["header_timeout"]["default"] == 10
    assert properties["body_timeout"]["anyOf"][0]["anyOf"][0]["maximum"] == 3600


def test_a_wildcard_host_without_public_url_is_a_warning(tmp_path: Path) -> None:
    warned = Pipelines(tmp_path, "version: 1\nserver: {host: 0.0.0.0}\n").load().warnings
    assert [str(w).split(": ", 1)[1] for w in warned] == [
        "warning: server.host '0.0.0.0' listens on every interface: set server.public_url, the base of the URLs "
        "handed to partners (leo run refuses to start without it)"]
    assert Pipelines(tmp_path, "version: 1\nserver: {host: '::', public_url: 'https://leo.example.com'}\n") \
        .load().warnings == []
    assert Pipelines(tmp_path, "version: 1\nserver: {host: leo.internal}\n").load().warnings == []


@pytest.mark.parametrize("value", ["2", "0", "'1'", "true"])
def test_unsupported_version(tmp_path: Path, value: str) -> None:
    message = Pipelines(tmp_path, f"version: {value}\n").error_at(value)
    assert message.startswith("version: ")
    assert "version: 1" in message


def test_invalid_names_point_at_the_key(tmp_path: Path) -> None:
    case = Pipelines(
        tmp_path,
        """
        version: 1
        object_types:
          inventory: {}
          "bad type": {key: sku}
        pipelines:
          "bad name":
            bots: []
          feed:
            bots:
              - id: "-bad id"
                use: filter
                in: raw
                with: {query: {}}
        """,
    )
    problems = case.problems()
    assert [where(p) for p in problems] == [
        case.at("inventory:"),
        case.at('"bad type"'),
        case.at('"bad name"'),
        case.at("[]"),
        case.at('"-bad id"'),
    ]
    assert problems[0].message == "missing required field 'object_types.inventory.key'"
    assert problems[1].message.startswith("object_types: a name holds only letters, digits")
    assert problems[1].message.endswith("(got 'bad type')")
    assert problems[2].message.startswith("pipelines: a name holds only letters")
    assert problems[3].message.startswith("pipelines.bad name.bots: must hold at least 1 item")
    assert problems[4].message.startswith("bot '-bad id': id: a name holds only letters")


# --------------------------------------------------------------------------------------------
# `use:` and the bot's own settings (`with:`)
# --------------------------------------------------------------------------------------------


def test_unknown_bot_suggests_the_close_built_in(tmp_path: Path) -> None:
    text = feed("""
        - id: low-stock
          use: filtr
          in: raw
        """)
    case = Pipelines(tmp_path, text)
    message = case.error_at("filtr")
    assert message.startswith("bot 'low-stock': unknown bot 'filtr' (did you mean 'filter'?)")
    assert "file_reader, filter" in message


# Also read by `leo validate` in test_leo_validate_prints_the_located_problems.
MISTYPED_OPERATOR = feed(
    """
    - id: low-stock
      use: filter
      in: inventory.changes
      with:
        query:
          warehouse: NYC
          quantity:
            less: 5
      out: inventory.low_stock
    """,
    object_types="inventory: {key: sku}",
    pipeline="inventory-feed",
)


def test_unknown_query_operator_points_at_the_operator(tmp_path: Path) -> None:
    case = Pipelines(tmp_path, MISTYPED_OPERATOR)
    problem = case.error()
    assert where(problem) == case.at("less:")
    assert problem.message.startswith("bot 'low-stock': ")
    assert "'quantity" in problem.message  # the field is named
    assert problem.message.endswith("unknown operator 'less' (did you mean 'lt'?)")
    assert str(problem).startswith(f"{case.path}:{problem.line}:{problem.column}: bot 'low-stock': ")


def test_unknown_query_operator_in_flow_style(tmp_path: Path) -> None:
    text = feed("""
        - id: low-stock
          use: filter
          in: inventory.changes
          with: {query: {warehouse: NYC, quantity: {less: 5}}}
        """)
    case = Pipelines(tmp_path, text)
    problem = [p for p in case.problems() if p.severity == "error"]
    assert len(problem) == 1
    assert where(problem[0]) == case.at("less")
    assert "unknown operator 'less' (did you mean 'lt'?)" in problem[0].message


def order_filter(with_: str) -> str:
    """One filter bot, `f` (order.changes -> nowhere), with the YAML `with_` nested under its `with:`."""
    bot = textwrap.dedent("""
        - id: f
          use: filter
          in: order.changes
          with:
        """)
    return feed(bot + _nested(with_, 4), object_types="order: {key: po}")


@pytest.mark.parametrize(
    ("text", "marker", "shift", "fragments"),
    [
        pytest.param(
            order_filter("query: {status: {in: active}}"),
            "{in: active}",
            1,
            ["'status", "operator 'in' needs a list"],
            id="wrong-operand-type-points-at-the-operator",
        ),
        pytest.param(
            order_filter("query: [status, open]"),
            "[status",
            0,
            ["a query must be a mapping"],
            id="query-that-is-not-a-mapping",
        ),
        pytest.param(
            order_filter("""
                query:
                  status: {}
                """),
            "status:",
            0,
            ["no operators given"],
            id="empty-operator-mapping-is-located",
        ),
    ],
)
def test_bad_query(tmp_path: Path, text: str, marker: str, shift: int, fragments: list[str]) -> None:
    message = Pipelines(tmp_path, text).error_at(marker, shift=shift)
    assert message.startswith("bot 'f': ")
    for fragment in fragments:
        assert fragment in message


@pytest.mark.parametrize(
    ("with_", "marker", "message"),
    [
        pytest.param(
            "{query: {status: open}, qurey: {status: closed}}",
            "qurey",
            "bot 'f': unknown field 'qurey' in 'with' (did you mean 'query'?); known fields: query",
            id="unknown-setting",
        ),
        pytest.param("nope", "nope", "bot 'f': with: must be a mapping (key: value entries) (got 'nope')", id="not-a-mapping"),
    ],
)
def test_bad_with(tmp_path: Path, with_: str, marker: str, message: str) -> None:
    text = feed(
        f"""
        - id: f
          use: filter
          in: order.changes
          with: {with_}
        """,
        object_types="order: {key: po}",
    )
    assert Pipelines(tmp_path, text).error_at(marker) == message


def test_missing_required_setting(tmp_path: Path) -> None:
    text = feed(
        """
        - id: f
          use: filter
          in: order.changes
          with: {}
        - id: g
          use: filter
          in: order.changes
        """,
        object_types="order: {key: po}",
    )
    case = Pipelines(tmp_path, text)
    problems = case.problems()
    assert [(where(p), p.message) for p in problems] == [
        (case.at("with: {}"), "bot 'f': missing required field 'query'"),
        (case.at("id: g"), "bot 'g': missing required field 'query'"),  # no `with` at all: the bot
    ]


def test_bot_field_errors_and_settings_errors_are_reported_together(tmp_path: Path) -> None:
    text = feed(
        """
        - id: low-stock
          use: filter
          in: inventory.changes
          with:
            query: {quantity: {less: 5}}
          ot: inventory.low
        """,
        object_types="inventory: {key: sku}",
    )
    case = Pipelines(tmp_path, text)
    problems = case.problems()
    assert [where(p) for p in problems] == [case.at("less"), case.at("ot:")]
    assert "unknown operator 'less'" in problems[0].message
    assert problems[1].message.startswith("bot 'low-stock': unknown field 'ot' (did you mean 'out'?)")


# --------------------------------------------------------------------------------------------
# The graph: duplicate ids, cycles, queues nobody writes
# --------------------------------------------------------------------------------------------


def test_duplicate_bot_id_across_pipelines(tmp_path: Path) -> None:
    text = document(
        {
            "one": """
                - id: picker
                  use: filter
                  in: order.changes
                  with: {query: {a: 1}}
                  out: one.out
                """,
            "two": """
                - id: picker
                  use: filter
                  in: order.changes
                  with: {query: {a: 2}}
                  out: two.out
                """,
        },
        object_types="order: {key: po}",
    )
    case = Pipelines(tmp_path, text)
    first_line = case.at("id: picker")[0]
    assert case.error_at("picker", nth=2) == f"duplicate bot id 'picker' (first used at line {first_line})"


def test_duplicate_bot_id_is_reported_even_when_the_bot_has_other_errors(tmp_path: Path) -> None:
    text = feed(
        """
        - id: picker
          use: filter
          in: order.changes
          with: {query: {a: 1}}
          out: picked
        - id: picker
          use: filtr
          in: order.changes
        """,
        object_types="order: {key: po}",
        pipeline="one",
    )
    case = Pipelines(tmp_path, text)
    problems = case.problems()
    assert [where(p) for p in problems] == [case.at("picker", nth=2), case.at("filtr")]
    assert problems[0].message == f"duplicate bot id 'picker' (first used at line {case.at('id: picker')[0]})"


# One error each, like FIELD_ERRORS.
CYCLES = [
    pytest.param(
        feed(
            """
            - id: ping
              use: filter
              in: q1
              with: {query: {}}
              out: q2
            - id: pong
              use: filter
              in: q2
              with: {query: {}}
              out: q1
            """,
            pipeline="loop",
        ),
        "in: q1",
        "pipeline cycle: ping (q2) -> pong (q1) -> ping; a bot would feed itself",
        id="a-cycle-between-two-bots",
    ),
    pytest.param(
        document(
            {
                "one": """
                    - id: entry
                      use: filter
                      in: order.changes
                      with: {query: {}}
                      out: a
                    - id: first
                      use: filter
                      in: a
                      with: {query: {}}
                      out: b
                    """,
                "two": """
                    - id: second
                      use: filter
                      in: b
                      with: {query: {}}
                      out: a
                    """,
            },
            object_types="order: {key: po}",
        ),
        "in: a",
        "pipeline cycle: first (b) -> second (a) -> first; a bot would feed itself",
        id="a-cycle-across-pipelines",
    ),
    pytest.param(
        feed(
            """
            - id: echo
              use: filter
              in: q
              with: {query: {}}
              out: q
            """,
            pipeline="loop",
        ),
        "out: q",
        "bot 'echo': reads and writes the same queue 'q' (a cycle)",
        id="a-bot-reading-its-own-output",
    ),
]


def test_a_queue_nobody_writes_is_a_warning_with_a_suggestion(tmp_path: Path) -> None:
    text = feed("""
        - id: reader
          use: file_reader
          with: {path: data}
          out: inventory.raw
        - id: low
          use: filter
          in: inventory.rwa
          with: {query: {quantity: {lt: 5}}}
          out: inventory.low
        """)
    case = Pipelines(tmp_path, text)
    config = case.load()  # a warning is not an error
    assert [spec.id for spec in config.bots] == ["reader", "low"]
    assert len(config.warnings) == 1
    warning = config.warnings[0]
    assert warning.severity == "warning"
    assert where(warning) == case.at("in: inventory.rwa")
    assert warning.message.startswith("bot 'low': no bot writes queue 'inventory.rwa' (did you mean 'inventory.raw'?)")
    assert str(warning).startswith(f"{case.path}:{warning.line}:{warning.column}: warning: bot 'low'")


UNWRITTEN_QUEUE = feed("""
    - id: low
      use: filter
      in: manual
      with: {query: {}}
      out: filtered
    """)


def test_a_queue_nobody_writes_without_a_close_name(tmp_path: Path) -> None:
    case = Pipelines(tmp_path, UNWRITTEN_QUEUE)
    (warning,) = case.load().warnings
    assert where(warning) == case.at("in: manual")
    assert warning.message == ("bot 'low': no bot writes queue 'manual'; it gets events only from `leo queues put` or the API")


def test_change_queues_of_declared_object_types_need_no_writer(tmp_path: Path) -> None:
    text = feed(
        """
        - id: low
          use: filter
          in: inventory.changes
          with: {query: {quantity: {lt: 5}}}
          out: inventory.low
        - id: big
          use: filter
          in: order.changes
          with: {query: {total: {gt: 1000}}}
          out: orders.big
        """,
        object_types="""
            inventory: {key: sku}
            order: {key: po_number}
            """,
    )
    case = Pipelines(tmp_path, text)
    assert case.load().warnings == []


def test_change_queue_of_an_undeclared_object_type_is_a_warning(tmp_path: Path) -> None:
    text = feed(
        """
        - id: big
          use: filter
          in: orders.changes
          with: {query: {}}
          out: orders.big
        - id: stock
          use: filter
          in: inventory.changes
          with: {query: {}}
          out: stock.all
        """,
        object_types="order: {key: po_number}",
    )
    case = Pipelines(tmp_path, text)
    first, second = case.load().warnings
    assert where(first) == case.at("in: orders.changes")
    assert "no bot writes queue 'orders.changes' (did you mean 'order.changes'?)" in first.message
    assert where(second) == case.at("in: inventory.changes")
    assert "(object type 'inventory' is not declared under object_types)" in second.message


def test_warnings_are_listed_with_errors_when_the_file_is_invalid_for_other_reasons(tmp_path: Path) -> None:
    # The file of the test above, with an error in another section.
    text = UNWRITTEN_QUEUE.replace("version: 1\n", "version: 1\nserver: {port: abc}\n")
    case = Pipelines(tmp_path, text)
    problems = case.problems()
    # While the file has errors, a queue-without-writer warning could be caused by a broken
    # writer bot, so it is not guessed; the error is reported alone.
    assert [(where(p), p.severity) for p in problems] == [(case.at("abc"), "error")]


# --------------------------------------------------------------------------------------------
# Bot kinds: `in`, `out`, `schedule`, `start`
# --------------------------------------------------------------------------------------------


# One error each, like FIELD_ERRORS.
BOT_KIND_ERRORS = [
    pytest.param(
        feed("""
            - id: reader
              use: file_reader
              in: raw
              with: {path: data}
              out: inventory.raw
            """),
        "in: raw",
        "bot 'reader': 'file_reader' is a source bot and reads no queue; remove 'in'",
        id="source-bot-given-in",
    ),
    pytest.param(
        feed("""
            - id: reader
              use: file_reader
              with: {path: data}
            """),
        "id: reader",
        "bot 'reader': a source bot needs 'out' (the queue it writes)",
        id="source-bot-without-out",
    ),
    pytest.param(
        feed("""
            - id: low
              use: filter
              with: {query: {a: 1}}
              out: low
            """),
        "id: low",
        "bot 'low': a processor bot needs 'in' (the queue it reads)",
        id="processor-without-in",
    ),
    pytest.param(
        low_with("schedule: 5s"),
        "schedule:",
        "bot 'low': 'schedule' is for source bots; a processor runs as soon as its 'in' queue grows",
        id="processor-with-schedule",
    ),
    pytest.param(
        reader_with("start: latest"),
        "start:",
        "bot 'reader': 'start' is for bots that read a queue",
        id="start-on-a-source-bot",
    ),
    pytest.param(
        feed(
            """
            - id: push
              use: ./bots/custom.py:Post
              in: inventory.changes
              out: nowhere
            """,
            object_types="inventory: {key: sku}",
        ),
        "out: nowhere",
        "bot 'push': a sink bot writes no queue; remove 'out'",
        id="sink-bot-given-out",
    ),
]


# The files above with one error: it points at the marker and says exactly the message.
@pytest.mark.parametrize(("text", "marker", "message"), FIELD_ERRORS + CYCLES + BOT_KIND_ERRORS)
def test_the_only_error_is_located_at_its_marker(tmp_path: Path, text: str, marker: str, message: str) -> None:
    write_module(tmp_path, "bots/custom.py")  # the sink bot Post, for `sink-bot-given-out`
    assert Pipelines(tmp_path, text).error_at(marker) == message


@pytest.mark.parametrize("schedule", ["every minute", "0s", "-5s", "'* * *'", "'61 * * * *'"])
def test_bad_schedule_is_located_at_the_value(tmp_path: Path, schedule: str) -> None:
    message = Pipelines(tmp_path, reader_with(f"schedule: {schedule}")).error_at(schedule)
    assert message.startswith("bot 'reader': invalid schedule ")
    assert "'watch'" in message or "more than zero" in message


@pytest.mark.parametrize(
    ("written", "expected"),
    [
        ("watch", Schedule("watch", text="watch")),
        ("5s", Schedule("interval", interval=5.0, text="5s")),
        ("PT1M", Schedule("interval", interval=60.0, text="PT1M")),
        ("60", Schedule("interval", interval=60.0, text="60")),
        ("'*/5 * * * *'", Schedule("cron", cron="*/5 * * * *", text="*/5 * * * *")),
        ("'0 3 * * mon-fri'", Schedule("cron", cron="0 3 * * mon-fri", text="0 3 * * mon-fri")),
        (None, Schedule("watch", text="watch")),  # file_reader's default
    ],
)
def test_good_schedules(tmp_path: Path, written: str | None, expected: Schedule) -> None:
    line = f"schedule: {written}" if written is not None else "description: default schedule"
    (spec,) = Pipelines(tmp_path, reader_with(line)).load().bots
    assert spec.schedule == expected


def test_schedule_parse_names_the_accepted_forms() -> None:
    with pytest.raises(ValueError, match=r"use 'watch', an interval like '5s' or 'PT1M', or a cron line"):
        Schedule.parse("hourly-ish")
    with pytest.raises(ValueError, match="more than zero"):
        Schedule.parse("PT0S")


@pytest.mark.parametrize(
    ("written", "stored"),
    [
        ("latest", "latest"),
        ("earliest", "earliest"),
        ("2026-11-26T00:00:00Z", "2026-11-26T00:00:00Z"),  # YAML reads an unquoted timestamp as a datetime
        ("'2026-11-26T00:00:00Z'", "2026-11-26T00:00:00Z"),
        ("2026-11-26T19:10:33.123+02:00", "2026-11-26T19:10:33.123000+02:00"),
        ("-PT1H", "-PT1H"),
    ],
)
def test_good_start_values(tmp_path: Path, written: str, stored: str) -> None:
    (spec,) = Pipelines(tmp_path, low_with(f"start: {written}")).load().bots
    assert spec.config.start == stored


def test_unquoted_start_time_keeps_its_instant(tmp_path: Path) -> None:
    from leo_runtime.timeutil import parse_time

    (spec,) = Pipelines(tmp_path, low_with("start: 2026-11-26T19:10:33.5+02:00")).load().bots
    expected = datetime.datetime(2026, 11, 26, 17, 10, 33, 500000, tzinfo=datetime.UTC)
    assert parse_time(spec.config.start) == int(expected.timestamp() * 1000)


@pytest.mark.parametrize(
    ("value", "why"),
    [
        ("yesterday", ""),
        ("now", ""),
        ("'2026-13-01T00:00:00Z'", " (invalid time '2026-13-01T00:00:00Z': month must be in 1..12"),
        ("2026-11-26", " (invalid time '2026-11-26': it has no UTC offset"),  # YAML's date, without its time
        ("2026-11-26T19:00:00", " (invalid time '2026-11-26T19:00:00': it has no UTC offset"),  # YAML's naive datetime
        ("'2999-01-01T00:00:00Z'", " ('2999-01-01T00:00:00Z' is in the future; use latest"),
        ("PT1H", " ('PT1H': a duration means that long ago, so it starts with '-'"),
        ("'42'", ""),  # a position: not for a start
    ],
)
def test_bad_start(tmp_path: Path, value: str, why: str) -> None:
    message = Pipelines(tmp_path, low_with(f"start: {value}")).error_at(value)
    expected = ("bot 'low': start must be earliest, latest, an RFC 3339 time or a negative duration like -PT1H, "
                f"not {value if value.startswith(chr(39)) else repr(value)}")
    assert message.startswith(expected + why), message


def test_source_with_a_default_out_and_no_schedule(tmp_path: Path) -> None:
    write_module(tmp_path, "bots/custom.py")
    text = feed("""
        - id: tick
          use: ./bots/custom.py:Ticker
        """)
    case = Pipelines(tmp_path, text)
    assert case.error_at("id: tick").startswith("bot 'tick': a source bot needs 'schedule'")


def test_source_default_out_is_used(tmp_path: Path) -> None:
    write_module(tmp_path, "bots/custom.py")
    text = feed("""
        - id: tick
          use: ./bots/custom.py:Ticker
          schedule: 10s
        """)
    case = Pipelines(tmp_path, text)
    (spec,) = case.load().bots
    assert (spec.kind, spec.out_queue, spec.schedule.interval) == ("source", "ticks", 10.0)


# --------------------------------------------------------------------------------------------
# YAML itself
# --------------------------------------------------------------------------------------------


def test_broken_yaml_is_located_by_the_parser(tmp_path: Path) -> None:
    text = feed("""
        - id: low
          use: filter
           in: raw
        """)
    case = Pipelines(tmp_path, text)
    # PyYAML stops at the ':' after the over-indented 'in'; the message points at the line's key.
    message = case.error_at(" in: raw", shift=1)
    assert message == (
        "invalid YAML: 'in' is indented more than 'use' above it, whose value is already given: line it up with "
        "'use' (8 spaces), or remove the value of 'use' to nest keys under it"
    )


def test_unclosed_flow_mapping(tmp_path: Path) -> None:
    case = Pipelines(tmp_path, "version: 1\nserver: {port: 1\nstore: x\n")
    # The parser notices at the next key, and names where the mapping started.
    message = case.error_at("store", shift=5)
    assert message.startswith("invalid YAML: ")
    assert "line 2, column 9" in message


@pytest.mark.parametrize(
    ("text", "marker", "nth", "message"),
    [
        pytest.param(
            "version: 1\nserver:\n\tport: 1\n",
            "\tport",  # (3, 1)
            1,
            "invalid YAML: a tab cannot indent YAML; use spaces",
            id="tab-indentation",
        ),
        pytest.param(
            """
            version: 1
            server:
              port: 8000
              host: 0.0.0.0
              port: 9000
            """,
            "port:",
            2,
            "duplicate key 'port' (first at line 3)",
            id="duplicate-yaml-key",
        ),
        pytest.param(
            """
            version: 1
            pipelines:
              feed:
                bots: [{id: a, use: filter, in: x, with: {query: {}}}]
              feed:
                bots: [{id: b, use: filter, in: x, with: {query: {}}}]
            """,
            "feed:",
            2,
            "duplicate key 'feed' (first at line 3)",
            id="duplicate-pipeline-name",
        ),
    ],
)
def test_yaml_the_loader_refuses(tmp_path: Path, text: str, marker: str, nth: int, message: str) -> None:
    assert Pipelines(tmp_path, text).error_at(marker, nth) == message


@pytest.mark.parametrize("text", ["", "\n\n", "# only a comment\n", "---\n"])
def test_empty_file(tmp_path: Path, text: str) -> None:
    path = tmp_path / "pipelines.yaml"
    path.write_text(text)
    with pytest.raises(ConfigError) as info:
        load_config(path, env={})
    (problem,) = info.value.problems
    assert where(problem) == (1, 1)
    assert problem.message == "the file is empty: start with 'version: 1'"
    assert str(info.value) == f"{path}:1:1: the file is empty: start with 'version: 1'"


@pytest.mark.parametrize("text", ["- version: 1\n", "version 1\n", "42\n"])
def test_a_file_that_is_not_a_mapping(tmp_path: Path, text: str) -> None:
    case = Pipelines(tmp_path, text)
    problem = case.error()
    assert where(problem) == (1, 1)
    assert problem.message == "the file must be a mapping (start with 'version: 1')"


def test_file_not_found_suggests_leo_init(tmp_path: Path) -> None:
    missing = tmp_path / "nowhere" / "pipelines.yaml"
    with pytest.raises(ConfigError) as info:
        load_config(missing)
    assert info.value.problems == []
    message = str(info.value)
    assert message.startswith(f"{missing}: file not found")
    assert "leo init" in message and "-f FILE" in message


def test_display_name_in_file_not_found(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"^pipelines\.yaml: file not found"):
        load_config(tmp_path / "pipelines.yaml", display_name="pipelines.yaml")


def test_a_directory_or_undecodable_file_is_a_config_error(tmp_path: Path) -> None:
    with pytest.raises(ConfigFileMissing, match="is a directory"):
        load_config(tmp_path)
    binary = tmp_path / "pipelines.yaml"
    binary.write_bytes(b"version: 1\nstore: \xff\xfe\n")
    with pytest.raises(ConfigError) as info:
        load_config(binary)
    assert str(info.value) == f"{binary}:2:8: not UTF-8 text (byte 0xff); save the file as UTF-8"


# --------------------------------------------------------------------------------------------
# Environment interpolation
# --------------------------------------------------------------------------------------------

ENV_FILE = """
version: 1
store: ${LEO_TEST_STORE:-sqlite:///leo.db}
server:
  port: ${LEO_TEST_PORT:-8765}
  public_url: "https://leo.example.com/$$x"
  allow_private_callbacks: ${LEO_TEST_PRIVATE:-false}
object_types:
  inventory: {key: sku}
pipelines:
  feed:
    bots:
      - id: low
        use: filter
        in: inventory.changes
        with:
          query: {warehouse: "${LEO_TEST_WAREHOUSE:-NYC}", price: {prefix: "$$"}}
        out: low
"""


def test_interpolation_defaults_are_typed_like_the_yaml_they_replace(tmp_path: Path) -> None:
    config = Pipelines(tmp_path, ENV_FILE).load(env={})
    server = config.model.server
    assert server.port == 8765 and isinstance(server.port, int)
    assert server.allow_private_callbacks is False
    assert server.public_url == "https://leo.example.com/$x"
    assert config.model.store == "sqlite:///leo.db"
    query = config.bots[0].settings.query
    assert query.spec == {"warehouse": "NYC", "price": {"prefix": "$"}}
    assert query.matches({"warehouse": "NYC", "price": "$12"})


def test_interpolation_from_a_given_environment(tmp_path: Path) -> None:
    env = {"LEO_TEST_PORT": "9999", "LEO_TEST_PRIVATE": "true", "LEO_TEST_WAREHOUSE": "007"}
    config = Pipelines(tmp_path, ENV_FILE).load(env=env)
    assert config.model.server.port == 9999
    assert config.model.server.allow_private_callbacks is True
    # Quoted in the YAML, so it stays the string "007" (not the number 7).
    assert config.bots[0].settings.query.spec["warehouse"] == "007"


def test_interpolation_from_the_process_environment(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("LEO_TEST_PORT", "7001")
    config = load_config(Pipelines(tmp_path, ENV_FILE).path)
    assert config.model.server.port == 7001


def test_interpolated_value_is_validated_at_its_place(tmp_path: Path) -> None:
    case = Pipelines(tmp_path, ENV_FILE)
    problem = case.error(env={"LEO_TEST_PORT": "eighty"})
    assert where(problem) == case.at("${LEO_TEST_PORT")
    # The value came from the environment: the message names the variable, never the value.
    assert problem.message == (
        "server.port (from ${LEO_TEST_PORT:-8765}): must be a whole number"
    )


def test_unset_variable_is_located_at_its_dollar(tmp_path: Path) -> None:
    case = Pipelines(
        tmp_path,
        """
        version: 1
        server:
          host: 127.0.0.1
          public_url: https://${MISSING_HOST}/leo
        """,
    )
    message = case.error_at("${MISSING_HOST}")
    assert "'MISSING_HOST'" in message and "not set" in message


def test_required_variable_message_and_several_interpolation_errors(tmp_path: Path) -> None:
    case = Pipelines(
        tmp_path,
        """
        version: 1
        store: ${MISSING}
        server:
          host: ${LEO_HOST:?set LEO_HOST to the interface to bind}
        """,
    )
    problems = case.problems()
    assert [where(p) for p in problems] == [case.at("${MISSING}"), case.at("${LEO_HOST")]
    assert "'MISSING'" in problems[0].message
    assert problems[1].message == "environment variable 'LEO_HOST' is required: set LEO_HOST to the interface to bind"


def test_double_dollar_is_a_literal_dollar(tmp_path: Path) -> None:
    case = Pipelines(tmp_path, 'version: 1\nstore: "sqlite:///$${NOT_A_VAR}.db"\n')
    assert case.load().model.store == "sqlite:///${NOT_A_VAR}.db"


# --------------------------------------------------------------------------------------------
# Several problems at once
# --------------------------------------------------------------------------------------------


def test_every_problem_is_reported_sorted_by_line(tmp_path: Path) -> None:
    case = Pipelines(
        tmp_path,
        """
        version: 1
        sever:
          port: 1
        server:
          port: abc
        pipelines:
          feed:
            bots:
              - id: reader
                use: file_reader
                with: {path: data, patern: "*.json"}
                out: raw
              - id: low-stock
                use: filter
                in: raw
                with:
                  query: {quantity: {less: 5}}
                out: low
              - id: f
                use: filtr
                in: raw
              - id: tagger
                use: filter
                in: low
                with: {query: {}}
                out: tagged
                schedule: 5s
        """,
    )
    with pytest.raises(ConfigError) as info:
        case.load()
    problems = info.value.problems
    assert [where(p) for p in problems] == [
        case.at("sever:"),
        case.at("abc"),
        case.at("patern"),
        case.at("less"),
        case.at("filtr"),
        case.at("schedule:"),
    ]
    assert [p.line for p in problems] == sorted(p.line for p in problems)
    assert all(p.severity == "error" for p in problems)
    assert "did you mean 'server'" in problems[0].message
    assert "did you mean 'pattern'" in problems[2].message
    assert str(info.value) == f"{problems[0]} (and 5 more problems)"


# --------------------------------------------------------------------------------------------
# store_url
# --------------------------------------------------------------------------------------------


def test_store_url_honours_env_leo_store(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    case = Pipelines(tmp_path, "version: 1\nstore: sqlite:///from-file.db\n")
    monkeypatch.delenv("LEO_STORE", raising=False)
    config = load_config(case.path)
    assert config.store_url == "sqlite:///from-file.db"
    monkeypatch.setenv("LEO_STORE", "sqlite:///from-env.db")
    assert config.store_url == "sqlite:///from-env.db"
    monkeypatch.setenv("LEO_STORE", "")  # set but empty: as if unset
    assert config.store_url == "sqlite:///from-file.db"


def test_store_url_uses_the_environment_the_file_was_read_with(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("LEO_STORE", "sqlite:///from-process.db")
    case = Pipelines(tmp_path, "version: 1\n")
    assert case.load(env={"LEO_STORE": "sqlite:///given.db"}).store_url == "sqlite:///given.db"
    assert case.load(env={"OTHER": "1"}).store_url == "sqlite:///leo.db"


# --------------------------------------------------------------------------------------------
# Custom bots: ./file.py:Class and module:attr
# --------------------------------------------------------------------------------------------


def test_custom_bot_from_a_file_with_its_own_settings(tmp_path: Path) -> None:
    write_module(tmp_path, "bots/custom.py")
    text = feed(
        """
        - id: upper
          use: ./bots/custom.py:Upper
          in: inventory.changes
          with: {field: name, times: 3}
          out: upper
        """,
        object_types="inventory: {key: sku}",
    )
    case = Pipelines(tmp_path, text)
    (spec,) = case.load().bots
    assert spec.cls.__name__ == "Upper" and issubclass(spec.cls, Bot)
    assert isinstance(spec.settings, spec.cls.Settings)
    assert (spec.settings.field, spec.settings.times) == ("name", 3)


def test_custom_bot_settings_errors_are_located_under_with(tmp_path: Path) -> None:
    write_module(tmp_path, "bots/custom.py")
    text = feed(
        """
        - id: upper
          use: ./bots/custom.py:Upper
          in: inventory.changes
          with:
            field: name
            times: 0
            feild: other
          out: upper
        - id: upper2
          use: ./bots/custom.py:Upper
          in: inventory.changes
          with: {times: two}
          out: upper2
        """,
        object_types="inventory: {key: sku}",
    )
    case = Pipelines(tmp_path, text)
    problems = case.problems()
    assert [(where(p), p.message) for p in problems] == [
        (case.at("0"), "bot 'upper': times: must be 1 or more (got 0)"),
        (
            case.at("feild"),
            "bot 'upper': unknown field 'feild' in 'with' (did you mean 'field'?); known fields: field, times",
        ),
        (case.at("with: {times"), "bot 'upper2': missing required field 'field'"),
        (
            case.at("two"),
            "bot 'upper2': times: must be a whole number (got 'two')",
        ),
    ]


@pytest.mark.parametrize(
    ("use", "fragment"),
    [
        ("./bots/custom.py:Uper", "./bots/custom.py has no attribute 'Uper' (did you mean 'Upper'?)"),
        ("./bots/custom.py:NOT_A_BOT", "42 is not a bot"),
        ("./bots/custom.py:Plain", "is not a bot: a bot class subclasses leo_runtime.Bot"),
        ("./bots/missing.py:Upper", "does not exist"),
        ("./bots/custom.py", "name the class after the file, like './bots/custom.py:MyBot'"),
    ],
)
def test_custom_bot_file_problems_point_at_use(tmp_path: Path, use: str, fragment: str) -> None:
    write_module(tmp_path, "bots/custom.py")
    text = feed(
        f"""
        - id: custom
          use: {use}
          in: inventory.changes
        """,
        object_types="inventory: {key: sku}",
    )
    message = Pipelines(tmp_path, text).error_at(use)
    assert message.startswith("bot 'custom': ")
    assert fragment in message
    assert "bot 'custom': bot '" not in message  # the bot is named once


def test_custom_bot_file_is_relative_to_the_pipelines_file_not_the_cwd(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    project = tmp_path / "project"
    project.mkdir()
    write_module(project, "bots/custom.py")
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    monkeypatch.chdir(elsewhere)
    text = feed("""
        - id: upper
          use: ./bots/custom.py:Upper
          in: manual
          with: {field: name}
          out: upper
        """)
    case = Pipelines(project, text)
    (spec,) = case.load().bots
    assert spec.cls.__name__ == "Upper"


def test_custom_bot_file_that_fails_to_import(tmp_path: Path) -> None:
    write_module(tmp_path, "bots/broken.py", "import leo_runtime\n\nraise RuntimeError('boom')\n")
    text = feed("""
        - id: broken
          use: ./bots/broken.py:Broken
          in: manual
        """)
    case = Pipelines(tmp_path, text)
    path = (tmp_path / "bots" / "broken.py").resolve()
    message = case.error_at("./bots/broken.py")
    assert message.startswith(f"bot 'broken': loading {path} (line 3) failed: RuntimeError('boom')")


def test_module_attr_resolution_adds_the_pipelines_folder_to_sys_path(tmp_path: Path) -> None:
    write_module(tmp_path, "leo_cfg_company/__init__.py", "")
    write_module(tmp_path, "leo_cfg_company/bots.py")
    text = feed(
        """
        - id: erp-push
          use: leo_cfg_company.bots:Post
          in: inventory.changes
        - id: upper
          use: leo_cfg_company.bots:Upper
          in: inventory.changes
          with: {field: sku}
          out: upper
        """,
        object_types="inventory: {key: sku}",
    )
    case = Pipelines(tmp_path, text)
    config = case.load()
    push, upper = config.bots
    assert (push.cls.__module__, push.cls.__name__, push.kind) == ("leo_cfg_company.bots", "Post", "sink")
    assert upper.settings.field == "sku"
    assert str(tmp_path.resolve()) in sys.path


@pytest.mark.parametrize(
    ("use", "fragment"),
    [
        ("leo_cfg_mod:Plain", "the class leo_cfg_mod.Plain is not a bot: a bot class subclasses leo_runtime.Bot"),
        ("leo_cfg_mod:NOT_A_BOT", "42 is not a bot"),
        ("leo_cfg_mod:Uper", "leo_cfg_mod has no attribute 'Uper' (did you mean 'Upper'?)"),
        ("leo_cfg_mod:", "name the class after ':'"),
        ("leo_cfg_nowhere:Bot", "cannot import module 'leo_cfg_nowhere'"),
        ("leo_cfg_mod.Upper", "for a class in a module write 'leo_cfg_mod:Upper'"),
    ],
)
def test_module_attr_problems_point_at_use(tmp_path: Path, use: str, fragment: str) -> None:
    write_module(tmp_path, "leo_cfg_mod.py")
    text = feed(f"""
        - id: custom
          use: "{use}"
          in: manual
        """)
    message = Pipelines(tmp_path, text).error_at(f'"{use}"')
    assert message.startswith("bot 'custom': ")
    assert fragment in message


def test_module_that_fails_to_import(tmp_path: Path) -> None:
    write_module(tmp_path, "leo_cfg_bad.py", "x = 1 / 0\n")
    text = feed("""
        - id: bad
          use: leo_cfg_bad:Bot
          in: manual
        """)
    case = Pipelines(tmp_path, text)
    message = case.error_at("leo_cfg_bad:Bot")
    assert message.startswith("bot 'bad': importing 'leo_cfg_bad' failed: ZeroDivisionError")


def test_a_registry_can_be_given(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(bot_module, "_REGISTERED", dict(bot_module._REGISTERED))

    @register_bot("leo_cfg_echo")
    class Echo(Bot):
        def process(self, events, ctx):  # type: ignore[no-untyped-def]
            yield from events

    text = feed("""
        - id: echo
          use: leo_cfg_echo
          in: manual
          out: echoed
        """)
    case = Pipelines(tmp_path, text)
    (spec,) = case.load(registry=BotRegistry()).bots
    assert spec.cls is Echo


# --------------------------------------------------------------------------------------------
# JSON Schema
# --------------------------------------------------------------------------------------------


def _refs(node: Any) -> Iterator[str]:
    if isinstance(node, dict):
        for key, value in node.items():
            if key == "$ref":
                yield value
            else:
                yield from _refs(value)
    elif isinstance(node, list):
        for item in node:
            yield from _refs(item)


def test_json_schema_shape() -> None:
    schema = json_schema()
    json.dumps(schema)  # serialisable as is
    assert schema["$schema"] == "https://json-schema.org/draft/2020-12/schema"
    assert schema["type"] == "object"
    assert schema["additionalProperties"] is False
    assert schema["required"] == ["version"]
    properties = schema["properties"]
    for name in ("version", "store", "server", "retention", "webhooks", "object_types", "pipelines"):
        assert name in properties
    assert properties["version"]["anyOf"][0]["const"] == 1  # or a ${VAR} giving 1
    for ref in _refs(schema):
        assert ref.startswith("#/$defs/"), ref
        assert ref[len("#/$defs/") :] in schema["$defs"], ref


def test_json_schema_bot_config_has_a_branch_per_bot() -> None:
    schema = json_schema()
    bot = schema["$defs"]["BotConfig"]
    assert {"id", "use", "with", "in", "out", "schedule", "start", "batch"} <= set(bot["properties"])
    assert "with_" not in bot["properties"] and "in_" not in bot["properties"]
    assert bot["required"] == ["id", "use"]
    branches = {branch["if"]["properties"]["use"]["const"]: branch["then"]["properties"]["with"] for branch in bot["allOf"]}
    assert {"filter", "file_reader"} <= set(branches)
    assert set(bot["properties"]["use"]["examples"]) >= {"filter", "file_reader"}

    filter_settings = branches["filter"]
    assert filter_settings["required"] == ["query"]
    assert filter_settings["additionalProperties"] is False
    query = filter_settings["properties"]["query"]
    assert query["type"] == "object"
    operators = query["additionalProperties"]["anyOf"][1]["properties"]
    assert set(operators) == {"eq", "ne", "lt", "lte", "gt", "gte", "in", "nin", "exists", "prefix"}
    assert branches["file_reader"]["required"] == ["path"]


class Target(BaseModel):
    url: str


def test_json_schema_includes_nested_settings_models(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(bot_module, "_REGISTERED", dict(bot_module._REGISTERED))

    @register_bot("leo_cfg_poster")
    class Poster(Bot):
        class Settings(BotSettings):
            targets: list[Target]

    schema = json_schema(BotRegistry())
    assert "leo_cfg_poster.Target" in schema["$defs"]
    for ref in _refs(schema):
        assert ref[len("#/$defs/") :] in schema["$defs"], ref
    json.dumps(schema)


# --------------------------------------------------------------------------------------------
# The same checks through the CLI (`leo validate`, `leo schema`)
# --------------------------------------------------------------------------------------------


def test_leo_validate_prints_the_located_problems(tmp_path: Path) -> None:
    from typer.testing import CliRunner

    from leo_runtime.cli import app

    case = Pipelines(tmp_path, MISTYPED_OPERATOR)
    result = CliRunner().invoke(app, ["validate", "--json", "-f", str(case.path)])
    assert result.exit_code == 1, result.output
    report = json.loads(result.stdout)
    assert report["valid"] is False
    (problem,) = report["problems"]
    assert (problem["line"], problem["column"]) == case.at("less")
    assert problem["severity"] == "error"
    assert problem["message"].startswith("bot 'low-stock': ")
    assert problem["message"].endswith("unknown operator 'less' (did you mean 'lt'?)")


def test_leo_schema_prints_the_json_schema(tmp_path: Path) -> None:
    from typer.testing import CliRunner

    from leo_runtime.cli import app

    result = CliRunner().invoke(app, ["schema", "-f", str(tmp_path / "none.yaml")])  # no file: no custom bots
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout) == json_schema()


def test_a_custom_settings_validator_that_crashes_is_reported_not_raised(tmp_path: Path) -> None:
    write_module(
        tmp_path,
        "bots/fragile.py",
        """
        from pydantic import field_validator

        from leo_runtime import Bot, BotSettings


        class Fragile(Bot):
            class Settings(BotSettings):
                limit: int = 1

                @field_validator("limit")
                @classmethod
                def check(cls, value):
                    raise TypeError("validator bug")
        """,
    )
    text = feed("""
        - id: fragile
          use: ./bots/fragile.py:Fragile
          in: manual
          with: {limit: 3}
        """)
    case = Pipelines(tmp_path, text)
    assert case.error_at("{limit: 3}") == (
        "bot 'fragile': checking the settings of './bots/fragile.py:Fragile' failed: TypeError('validator bug')"
    )


def test_json_schema_accepts_what_the_loader_accepts_for_schedule() -> None:
    schedule = json_schema()["$defs"]["BotConfig"]["properties"]["schedule"]
    types = json.dumps(schedule)
    assert '"type": "string"' in types and '"type": "number"' in types and '"type": "null"' in types


# --------------------------------------------------------------------------------------------
# Secrets: a value taken from the environment is named by its variable, never shown
# --------------------------------------------------------------------------------------------

SECRET = "hunter2-Secret/Token"

SECRETS_FILE = """
version: 1
retention: ${API_TOKEN}
server:
  port: ${API_TOKEN}
webhooks:
  timeout: "x-${API_TOKEN}"
  retry_schedule: [1, "${API_TOKEN}"]
pipelines:
  p:
    bots:
      - id: r
        use: file_reader
        with: {path: data}
        out: b
        schedule: ${API_TOKEN}
      - id: f
        use: filter
        in: b
        out: c
        with: {query: {}}
        start: ${API_TOKEN}
      - id: g
        use: filter
        in: c
        with: ${API_TOKEN}
      - id: h
        use: filter
        in: c
        out: d
        with: {query: {}}
        batch: {records: "${API_TOKEN}"}
"""


def test_values_from_the_environment_are_named_never_shown(tmp_path: Path) -> None:
    case = Pipelines(tmp_path, SECRETS_FILE)
    problems = case.problems(env={"API_TOKEN": SECRET})
    assert not [str(p) for p in problems if SECRET in str(p) or "hunter2" in str(p)]
    by_line = {p.line: p.message for p in problems}
    assert by_line[case.at("retention")[0]] == (
        "retention (from ${API_TOKEN}): invalid duration '${API_TOKEN}': expected seconds, a short form like "
        "'5s', '10m', '2h', '7d', or an ISO 8601 duration like 'PT1M' or 'P7D'"
    )
    assert by_line[case.at("port:")[0]] == (
        "server.port (from ${API_TOKEN}): must be a whole number"
    )
    assert by_line[case.at("timeout:")[0]].startswith("webhooks.timeout (from x-${API_TOKEN}): invalid duration")
    assert by_line[case.at("retry_schedule")[0]].startswith("webhooks.retry_schedule[1] (from ${API_TOKEN}): ")
    assert by_line[case.at("schedule: ${")[0]].startswith("bot 'r': schedule (from ${API_TOKEN}): invalid schedule")
    assert by_line[case.at("start:")[0]] == (
        "bot 'f': start must be earliest, latest, an RFC 3339 time or a negative duration like -PT1H, not '${API_TOKEN}'"
    )
    assert by_line[case.at("with: ${API_TOKEN}")[0]] == (
        "bot 'g': with (from ${API_TOKEN}): must be a mapping (key: value entries)"
    )
    assert by_line[case.at("records:")[0]].startswith("bot 'h': batch.records (from ${API_TOKEN}): must be")


def test_a_short_environment_value_is_still_never_quoted(tmp_path: Path) -> None:
    case = Pipelines(tmp_path, "version: 1\nretention: ${T}\nserver: {port: '${P}'}\n")
    problems = case.problems(env={"T": "ab", "P": "-1"})
    assert [p.message.split(":")[0] for p in problems] == ["retention (from ${T})", "server.port (from ${P})"]
    assert "'ab'" not in problems[0].message and "-1" not in problems[1].message


def test_a_url_password_is_never_shown(tmp_path: Path) -> None:
    case = Pipelines(tmp_path, "version: 1\nretention: postgresql://leo:pa55w0rd@db/leo\n")
    assert case.error().message.startswith("retention: invalid duration 'postgresql://leo:***@db/leo': expected")


def test_numbers_are_finite_and_bounded(tmp_path: Path) -> None:
    case = Pipelines(
        tmp_path,
        """
        version: 1
        retention: .inf
        server: {get_object_rate: .nan}
        webhooks: {timeout: P99999999999D, retry_schedule: [-5]}
        pipelines:
          p:
            bots:
              - {id: f, use: filter, in: a, out: b, with: {query: {}}, batch: {bytes: 9999999999999999999}}
        """,
    )
    messages = [p.message for p in case.problems()]
    assert messages == [
        "retention: invalid duration inf: not a finite number of seconds",
        "server.get_object_rate: must be a finite number (got nan)",
        "webhooks.timeout: invalid duration 'P99999999999D': longer than 100 years",
        "webhooks.retry_schedule[0]: must be zero or more, got -5",
        "bot 'f': batch.bytes: must be 1000000000 or less (got 9999999999999999999)",
    ]


def test_a_huge_file_or_an_alias_bomb_is_refused_quickly(tmp_path: Path) -> None:
    big = tmp_path / "big.yaml"
    big.write_bytes(b"version: 1\n" + b"# padding\n" * 110_000)
    with pytest.raises(ConfigError) as info:
        load_config(big)
    assert str(info.value) == f"{big}:1:1: the file is too big (more than 1,048,576 bytes)"
    bomb = Pipelines(tmp_path, "version: 1\na: &a [x, x, x, x, x, x, x, x, x, x]\n" + "".join(
        f"{chr(98 + n)}: &{chr(98 + n)} [{', '.join([f'*{chr(97 + n)}'] * 10)}]\n" for n in range(8)
    ) + "version: *i\n", name="bomb.yaml")
    assert bomb.error().message.startswith("too many values: with its aliases expanded")


def test_a_symlinked_file_keeps_its_project_folder(tmp_path: Path) -> None:
    (tmp_path / "configs").mkdir()
    (tmp_path / "configs" / "real.yaml").write_text("version: 1\n")
    (tmp_path / "project").mkdir()
    link = tmp_path / "project" / "pipelines.yaml"
    link.symlink_to("../configs/real.yaml")
    config = load_config(link)
    assert config.path == link and config.base_dir == tmp_path / "project"
    dangling = tmp_path / "project" / "dangling.yaml"
    dangling.symlink_to("nowhere.yaml")
    with pytest.raises(ConfigFileMissing, match=r"the symlink points to nowhere\.yaml, which does not exist"):
        load_config(dangling)


def test_cluster_settings_have_defaults_and_ranges(tmp_path: Path) -> None:
    config = Pipelines(tmp_path, "version: 1\n").load()
    assert (config.model.cluster.lease_ttl, config.model.cluster.workers) == (15.0, 0)
    assert Pipelines(tmp_path, "version: 1\ncluster: {lease_ttl: PT1M, workers: 2}\n").load().model.cluster.lease_ttl == 60
    short = Pipelines(tmp_path, "version: 1\ncluster:\n  lease_ttl: 1\n")
    assert short.error_at("lease_ttl: 1", shift=len("lease_ttl: ")) == "cluster.lease_ttl: must be 3.0 or more (got 1.0)"
    many = Pipelines(tmp_path, "version: 1\ncluster:\n  workers: -1\n")
    assert many.error_at("-1") == "cluster.workers: must be 0 or more (got -1)"
