"""Errors in plain words: each class of mistake in pipelines.yaml is told at FILE:LINE:COL as what
is wrong in the integrator's words, with the fix (never a parser's or a validator's jargon).

Every case is the bundled-style file below with one edit; the expected place is derived from the
edited text (a marker substring), so each assertion says which character the message points at.
"""

from __future__ import annotations

from pathlib import Path

import pytest

import leo_runtime.bots  # noqa: F401  (the built-ins)
from leo_runtime.config import load_config
from leo_runtime.errors import ConfigError

pytestmark = pytest.mark.usefixtures("isolated_imports")

BASE = """\
version: 1
object_types:
  inventory: {key: sku}
pipelines:
  inv:
    bots:
      - id: detector
        use: change_detector
        with:
          object_type: inventory
          source: {kind: json_dir, path: data}
          snapshot: full
      - id: low
        use: filter
        in: inventory.changes
        with: {query: {quantity: {lt: 5}}}
        out: low
"""


def problems_of(tmp_path: Path, old: str, new: str) -> tuple[str, list[tuple[int, int, str]]]:
    assert old in BASE, old
    text = BASE.replace(old, new, 1)
    path = tmp_path / "pipelines.yaml"
    path.write_text(text)
    with pytest.raises(ConfigError) as info:
        load_config(path, env={})
    return text, [(p.line, p.column, p.message) for p in info.value.problems]


def at(text: str, marker: str, shift: int = 0) -> tuple[int, int]:
    index = text.index(marker) + shift
    return text.count("\n", 0, index) + 1, index - (text.rfind("\n", 0, index) + 1) + 1


YAML_CASES = [
    pytest.param(
        "          source: {kind", "      source: {kind", "source: {kind",
        "invalid YAML: 'source' is indented 6 spaces, which lines it up with none of the keys above it (the keys above "
        "it: 'object_type' at 10 spaces, 'with' at 8 spaces, 'bots' at 4 spaces, 'inv' at 2 spaces); YAML nests by "
        "indentation: indent it exactly like the keys it belongs with",
        id="dedented-key",
    ),
    pytest.param(
        "        use: filter", "       use: filter", "use: filter",
        "invalid YAML: 'use' is indented 7 spaces, which lines it up with none of the keys above it (the keys above it: "
        "'id' at 8 spaces, 'bots' at 4 spaces, 'inv' at 2 spaces, 'pipelines' at 0 spaces); YAML nests by indentation: "
        "indent it exactly like the keys it belongs with",
        id="one-space-short",
    ),
    pytest.param(
        "          object_type: inventory", "        object_type: inventory", "source: {kind",
        "invalid YAML: 'source' is indented more than 'object_type' above it, whose value is already given: line it up "
        "with 'object_type' (8 spaces), or remove the value of 'object_type' to nest keys under it",
        id="over-indented-key",
    ),
    pytest.param(
        "      - id: low", "      -id: low", "-id: low",
        "invalid YAML: a list item needs a space after '-': write '- id: low'",
        id="dash-without-space",
    ),
    pytest.param(
        "        in: inventory.changes", "        in inventory.changes", "in inventory",
        "invalid YAML: 'in inventory.changes' has no ':' after it (did you mean 'in: inventory.changes'?); a key and its "
        "value are written 'key: value' (a line that goes on the value above must be indented under that value's key)",
        id="missing-colon",
    ),
    pytest.param(
        "{query: {quantity: {lt: 5}}}", "{query: {quantity: {lt: 5}}", "out: low",
        "invalid YAML: the '{' at line 16, column 15 is not closed before this: add the missing '}', or a ',' between "
        "its entries",
        id="unclosed-brace",
    ),
    pytest.param(
        "path: data}", "path: data, pattern: [x}", "}\n          snapshot",
        "invalid YAML: the '[' at line 11, column 57 is closed with '}': close it with ']'",
        id="wrong-closing-bracket",
    ),
    pytest.param(
        "path: data}", 'path: "data}', '"data',
        'invalid YAML: the " that opens this value is never closed: add the closing "',
        id="unclosed-quote",
    ),
    pytest.param(
        "        use: filter", "        use: filter: strict", ": strict",
        "invalid YAML: a value cannot hold ': ' unquoted (YAML takes it for another key): quote the value, like "
        "'key: \"a: b\"'",
        id="colon-in-a-value",
    ),
    pytest.param(
        "object_type: inventory", "object_type: *type", "*type",
        "invalid YAML: no anchor '&type' above: define it (key: &type VALUE) before using '*type'",
        id="undefined-alias",
    ),
    pytest.param(
        "      - id: low", "\t- id: low", "\t- id",
        "invalid YAML: a tab cannot indent YAML; use spaces",
        id="tab",
    ),
]


@pytest.mark.parametrize(("old", "new", "marker", "message"), YAML_CASES)
def test_yaml_mistakes_are_told_in_plain_words(tmp_path: Path, old: str, new: str, marker: str, message: str) -> None:
    text, problems = problems_of(tmp_path, old, new)
    assert problems == [(*at(text, marker), message)]


VALUE_CASES = [
    pytest.param(
        "kind: json_dir", "kind: json_folder", "json_folder",
        "bot 'detector': source.kind: unknown kind 'json_folder' (did you mean 'json_dir'?); kinds: json_dir, "
        "sqlite_table, http_poll",
        id="wrong-source-kind",
    ),
    pytest.param(
        "{kind: json_dir, path: data}", "{path: data}", "{path",
        "bot 'detector': source: missing 'kind' (which kind of source this is); kinds: json_dir, sqlite_table, http_poll",
        id="source-without-kind",
    ),
    pytest.param(
        "snapshot: full", "snapshot: fulll", "fulll",
        "bot 'detector': snapshot: must be 'full' or 'partial' (got 'fulll') (did you mean 'full'?)",
        id="literal",
    ),
    pytest.param(
        "        out: low\n", "", "id: low",
        "bot 'low': a filter bot needs 'out' (the queue matching events go to); add out: QUEUE (a bot that only acts "
        "outside is a SinkBot)",
        id="filter-without-out",
    ),
    pytest.param(
        "version: 1\n", "version: 1\nserver: {port: eighty}\n", "eighty",
        "server.port: must be a whole number (got 'eighty')", id="whole-number",
    ),
    pytest.param(
        "version: 1\n", "version: 1\nserver: {port: 99999}\n", "99999",
        "server.port: must be 65535 or less (got 99999)", id="bound",
    ),
    pytest.param(
        "version: 1\n", "version: 1\nserver: {allow_private_callbacks: perhaps}\n", "perhaps",
        "server.allow_private_callbacks: must be true or false (got 'perhaps')", id="boolean",
    ),
    pytest.param(
        "version: 1\n", "version: 1\nwebhooks: {retry_schedule: 5}\n", "5}",
        "webhooks.retry_schedule: must be a list ([a, b], or one '- ' line per item) (got 5)", id="list",
    ),
    pytest.param(
        "  inventory: {key: sku}", "  inventory: [sku]", "[sku]",
        "object_types.inventory: must be a mapping (key: value entries)", id="mapping",
    ),
    pytest.param(
        "  inventory: {key: sku}", "  inventory: {key: ''}", "''",
        "object_types.inventory.key: must not be empty (got '')", id="empty-text",
    ),
]


@pytest.mark.parametrize(("old", "new", "marker", "message"), VALUE_CASES)
def test_value_mistakes_are_told_in_plain_words(tmp_path: Path, old: str, new: str, marker: str, message: str) -> None:
    text, problems = problems_of(tmp_path, old, new)
    assert problems == [(*at(text, marker), message)]


def test_a_setting_written_at_the_bot_level_points_under_with(tmp_path: Path) -> None:
    # The dedented `source:` of the issue: it parses, as a field of the bot itself.
    text, problems = problems_of(tmp_path, "          source: {kind: json_dir, path: data}\n          snapshot: full",
                                 "        source: {kind: json_dir, path: data}\n        snapshot: full")
    assert problems == [
        (*at(text, "with:"), "bot 'detector': missing required field 'source'"),
        (*at(text, "source: {kind"),
         "bot 'detector': unknown field 'source' ('source' is a setting of 'change_detector': indent it under 'with:')"),
        (*at(text, "snapshot"),
         "bot 'detector': unknown field 'snapshot' ('snapshot' is a setting of 'change_detector': indent it under "
         "'with:')"),
    ]


def test_no_message_speaks_the_parsers_language(tmp_path: Path) -> None:
    jargon = ("<block end>", "<block mapping start>", "input tag", "discriminator", "Input should", "input should",
              "could not find expected", "found undefined alias", "unable to extract tag")
    for param in [*YAML_CASES, *VALUE_CASES]:
        old, new, _, _ = param.values
        _, problems = problems_of(tmp_path, old, new)
        for _, _, message in problems:
            assert not any(word in message for word in jargon), message
