"""Tests for leo_runtime.yaml_loader: positions, duplicate keys, syntax errors, interpolation."""

from __future__ import annotations

import datetime
import textwrap

import pytest

from leo_runtime.errors import ConfigError, Problem
from leo_runtime.yaml_loader import (
    MAX_DEPTH,
    MAX_FILE_SIZE,
    MAX_PROBLEMS,
    MAX_TEXT,
    MAX_VALUES,
    YamlDocument,
    interpolate,
    load_yaml,
)

FILE = "pipelines.yaml"


def load(text: str, env: dict[str, str] | None = None) -> YamlDocument:
    return load_yaml(textwrap.dedent(text), FILE, env if env is not None else {})


def problems(text: str, env: dict[str, str] | None = None) -> list[Problem]:
    with pytest.raises(ConfigError) as info:
        load(text, env)
    return info.value.problems


def located(text: str, env: dict[str, str] | None = None) -> list[tuple[int, int, str]]:
    return [(p.line, p.column, p.message) for p in problems(text, env)]


# --------------------------------------------------------------------------------------------
# Data and positions
# --------------------------------------------------------------------------------------------

NESTED = """\
# leading comment
pipelines:
  feed:
    bots:
      - name: first
        with:
          limit: 5
      - name: second
        with:
          query:
            quantity:
              less: 10
    enabled: true
"""


def test_nested_data_is_plain_python():
    doc = load(NESTED)
    assert doc.filename == FILE
    assert doc.data == {
        "pipelines": {
            "feed": {
                "bots": [
                    {"name": "first", "with": {"limit": 5}},
                    {"name": "second", "with": {"query": {"quantity": {"less": 10}}}},
                ],
                "enabled": True,
            }
        }
    }
    assert type(doc.data["pipelines"]) is dict
    assert type(doc.data["pipelines"]["feed"]["bots"]) is list


@pytest.mark.parametrize(
    ("path", "key", "value"),
    [
        (("pipelines",), (2, 1), (3, 3)),
        (("pipelines", "feed"), (3, 3), (4, 5)),
        (("pipelines", "feed", "bots"), (4, 5), (5, 7)),
        (("pipelines", "feed", "bots", 0), (5, 9), (5, 9)),
        (("pipelines", "feed", "bots", 0, "name"), (5, 9), (5, 15)),
        (("pipelines", "feed", "bots", 0, "with", "limit"), (7, 11), (7, 18)),
        (("pipelines", "feed", "bots", 1), (8, 9), (8, 9)),
        (("pipelines", "feed", "bots", 1, "with", "query", "quantity", "less"), (12, 15), (12, 21)),
        (("pipelines", "feed", "enabled"), (13, 5), (13, 14)),
    ],
)
def test_positions_at_several_depths(path, key, value):
    doc = load(NESTED)
    assert doc.key_position(path) == key
    assert doc.value_position(path) == value


def test_root_positions():
    doc = load(NESTED)
    assert doc.key_position(()) == (1, 1)
    assert doc.value_position(()) == (2, 1)  # the root mapping starts after the comment


def test_missing_path_falls_back_to_deepest_existing_ancestor():
    doc = load(NESTED)
    # missing key under an existing mapping: the mapping's key / value
    assert doc.key_position(("pipelines", "feed", "bots", 1, "with", "missing")) == (9, 9)
    assert doc.value_position(("pipelines", "feed", "bots", 1, "with", "missing")) == (10, 11)
    # index out of range
    assert doc.key_position(("pipelines", "feed", "bots", 7, "name")) == (4, 5)
    assert doc.value_position(("pipelines", "feed", "bots", 7, "name")) == (5, 7)
    # descending into a scalar
    assert doc.key_position(("pipelines", "feed", "enabled", "x")) == (13, 5)
    # a string where a list index is expected, and an index where a key is expected
    assert doc.key_position(("pipelines", "feed", "bots", "name")) == (4, 5)
    assert doc.key_position(("pipelines", 0)) == (2, 1)
    # nothing exists at all
    assert doc.key_position(("nope", "deeper")) == (1, 1)
    assert doc.value_position(("nope",)) == (2, 1)
    # negative indexes and unhashable elements are not found, but never raise
    assert doc.key_position(("pipelines", "feed", "bots", -1)) == (4, 5)
    assert doc.key_position(("pipelines", ["x"])) == (2, 1)  # type: ignore[list-item]


def test_problem_helper():
    doc = load(NESTED)
    path = ("pipelines", "feed", "bots", 1, "with", "query", "quantity", "less")
    assert doc.problem(path, "bad") == Problem(FILE, 12, 15, "bad", "error")
    assert doc.problem(path, "meh", "warning", at="value") == Problem(FILE, 12, 21, "meh", "warning")
    assert str(doc.problem(path, "bad")) == "pipelines.yaml:12:15: bad"
    with pytest.raises(ValueError):
        doc.problem(path, "bad", at="elsewhere")


def test_flow_style_positions():
    doc = load("""\
        top: {a: 1, b: [10, 20], c: {d: x}}
        list: [ {k: v}, [1, 2] ]
        """)
    assert doc.data == {"top": {"a": 1, "b": [10, 20], "c": {"d": "x"}}, "list": [{"k": "v"}, [1, 2]]}
    assert doc.value_position(("top",)) == (1, 6)
    assert doc.key_position(("top", "a")) == (1, 7)
    assert doc.value_position(("top", "a")) == (1, 10)
    assert doc.key_position(("top", "b")) == (1, 13)
    assert doc.value_position(("top", "b")) == (1, 16)
    assert doc.value_position(("top", "b", 0)) == (1, 17)
    assert doc.key_position(("top", "b", 1)) == (1, 21)
    assert doc.key_position(("top", "c", "d")) == (1, 30)
    assert doc.value_position(("top", "c", "d")) == (1, 33)
    assert doc.value_position(("list", 0)) == (2, 9)
    assert doc.key_position(("list", 0, "k")) == (2, 10)
    assert doc.value_position(("list", 1, 1)) == (2, 21)


def test_scalar_types_as_pyyaml_builds_them():
    doc = load("""\
        i: 5
        f: 1.5
        b: true
        n: null
        tilde: ~
        empty:
        s: '5'
        d: "true"
        hex: 0x10
        date: 2024-01-02
        yes_: yes
        text: |
          line one
          line two
        tagged: !!str 5
        6: six
        """)
    assert doc.data == {
        "i": 5,
        "f": 1.5,
        "b": True,
        "n": None,
        "tilde": None,
        "empty": None,
        "s": "5",
        "d": "true",
        "hex": 16,
        "date": datetime.date(2024, 1, 2),
        "yes_": True,
        "text": "line one\nline two\n",
        "tagged": "5",
        6: "six",
    }
    assert doc.key_position((6,)) == (16, 1)


def test_top_level_list_and_scalar_documents():
    doc = load("- a\n- b: 1\n")
    assert doc.data == ["a", {"b": 1}]
    assert doc.key_position((1, "b")) == (2, 3)
    assert doc.value_position((1,)) == (2, 3)
    scalar = load("42\n")
    assert scalar.data == 42
    assert scalar.value_position(()) == (1, 1)


@pytest.mark.parametrize("text", ["", "\n\n", "# only a comment\n"])
def test_empty_document(text):
    doc = load(text)
    assert doc.data is None
    assert doc.key_position(("anything",)) == (1, 1)
    assert doc.value_position(("anything",)) == (1, 1)
    assert doc.value_position(()) == (1, 1)


@pytest.mark.parametrize("text", ["---\n", "---\n...\n", "# c\n---\n"])
def test_document_with_only_a_start_marker_is_null(text):
    doc = load(text)
    assert doc.data is None
    assert doc.key_position(("anything",)) == (1, 1)


def test_explicit_document_start_is_fine():
    assert load("---\na: 1\n...\n").data == {"a": 1}


# --------------------------------------------------------------------------------------------
# Anchors, aliases, merge keys
# --------------------------------------------------------------------------------------------


def test_anchors_and_aliases():
    doc = load("""\
        defaults: &defaults
          retries: 3
          query: {kind: trade}
        one: *defaults
        list: &items [a, b]
        again: *items
        """)
    assert doc.data["one"] == {"retries": 3, "query": {"kind": "trade"}}
    assert doc.data["again"] == ["a", "b"]
    # the alias value is located where the alias is written ...
    assert doc.key_position(("one",)) == (4, 1)
    assert doc.value_position(("one",)) == (4, 6)
    # ... and what is inside it where the anchored node defines it
    assert doc.key_position(("one", "retries")) == (2, 3)
    assert doc.value_position(("one", "query", "kind")) == (3, 17)
    assert doc.value_position(("again", 1)) == (5, 18)


def test_merge_keys():
    doc = load("""\
        base: &base
          retries: 3
          timeout: 10
        extra: &extra
          timeout: 20
          verbose: true
        single:
          <<: *base
          retries: 5
        several:
          <<: [*extra, *base]
          name: x
        """)
    assert doc.data["single"] == {"retries": 5, "timeout": 10}
    # earlier mappings in the list win over later ones; explicit keys win over all
    assert doc.data["several"] == {"retries": 3, "timeout": 20, "verbose": True, "name": "x"}
    assert "<<" not in doc.data["single"]
    # explicit key: where written; merged key: where it is defined
    assert doc.key_position(("single", "retries")) == (9, 3)
    assert doc.key_position(("single", "timeout")) == (3, 3)
    assert doc.value_position(("several", "timeout")) == (5, 12)
    assert doc.key_position(("several", "retries")) == (2, 3)


def test_merge_key_matches_pyyaml():
    import yaml

    text = "a: &a {x: 1, y: 2}\nb: &b {y: 3, z: 4}\nc: {<<: [*a, *b], z: 5}\nd: {<<: *a}\n"
    assert load(text).data == yaml.safe_load(text)


def test_merge_key_with_a_scalar_is_an_error():
    assert located("a:\n  <<: 5\n") == [
        (2, 7, "the merge key '<<' needs a mapping or a list of mappings (e.g. '<<: *defaults')")
    ]


def test_recursive_alias_is_an_error():
    (problem,) = problems("a: &x\n  b: *x\n")
    assert (problem.line, problem.column) == (2, 6)
    assert "recursive alias '*x'" in problem.message


def test_undefined_alias_is_a_syntax_error():
    assert located("a: *nope\n") == [
        (1, 4, "invalid YAML: no anchor '&nope' above: define it (key: &nope VALUE) before using '*nope'")
    ]


def test_interpolation_inside_an_anchor_is_done_once():
    doc = load("a: &x ${V}\nb: *x\n", {"V": "7"})
    assert doc.data == {"a": 7, "b": 7}
    assert located("a: &x ${V}\nb: *x\nc: *x\n") == [
        (1, 7, "environment variable 'V' is not set (write ${V:-default} for a default)")
    ]


# --------------------------------------------------------------------------------------------
# Duplicate keys, tags
# --------------------------------------------------------------------------------------------


def test_duplicate_key_is_an_error_at_the_second_key():
    assert located("""\
        pipelines:
          feed:
            a: 1
            b: 2
            a: 3
        """) == [(5, 5, "duplicate key 'a' (first at line 3)")]


def test_all_duplicate_keys_are_reported():
    found = located("x: 1\ny: {k: 1, k: 2}\nx: 3\n")
    assert found == [
        (2, 11, "duplicate key 'k' (first at line 2)"),
        (3, 1, "duplicate key 'x' (first at line 1)"),
    ]


def test_duplicate_key_of_another_type():
    assert located("1: a\n0x1: b\n") == [(2, 1, "duplicate key 1 (first at line 1)")]


def test_merged_keys_are_not_duplicates():
    assert load("a: &a {x: 1}\nb: {<<: *a, x: 2}\n").data["b"] == {"x": 2}


def test_unsupported_tags():
    found = located("a: !custom 1\nb: !!set {x}\nc: !!int nope\n")
    assert [(line, column) for line, column, _ in found] == [(1, 4), (2, 4), (3, 4)]
    assert "unsupported tag '!custom'" in found[0][2]
    assert "unsupported tag '!!set'" in found[1][2]
    assert "invalid !!int value 'nope'" in found[2][2]


def test_collection_as_key_is_an_error():
    found = located("? [a, b]\n: 1\n")
    assert found == [(1, 3, "a mapping key must be a scalar, not a list")]


# --------------------------------------------------------------------------------------------
# Syntax errors
# --------------------------------------------------------------------------------------------


def test_syntax_error_missing_colon():
    text = "pipelines:\n  feed:\n    bots: []\n    oops\n    other: 1\n"
    (problem,) = problems(text)
    # PyYAML notices at the next line that the plain scalar "oops" was a key without ':'; the
    # problem points at "oops", where the fix goes.
    assert (problem.file, problem.line, problem.column) == (FILE, 4, 5)
    assert problem.message.startswith("invalid YAML: 'oops' has no ':' after it; a key and its value are written")


def test_syntax_error_bad_indentation():
    (problem,) = problems("a:\n  b: 1\n c: 2\n")
    assert (problem.line, problem.column) == (3, 2)
    assert problem.message == (
        "invalid YAML: 'c' is indented 1 space, which lines it up with none of the keys above it (the keys above it: "
        "'b' at 2 spaces, 'a' at 0 spaces); YAML nests by indentation: indent it exactly like the keys it belongs with"
    )


def test_syntax_error_unclosed_flow_sequence():
    (problem,) = problems("a: [1, 2\nb: 3\n")
    assert (problem.line, problem.column) == (2, 2)
    assert problem.message == (
        "invalid YAML: the '[' at line 1, column 4 is not closed before this: add the missing ']', or a ',' between "
        "its entries"
    )


def test_syntax_error_tab_indentation():
    (problem,) = problems("a:\n\tb: 1\n")
    assert (problem.line, problem.column) == (2, 1)
    assert "a tab cannot indent YAML" in problem.message


def test_syntax_error_str_is_file_line_col():
    with pytest.raises(ConfigError) as info:
        load("a: [1, 2\nb: 3\n")
    assert str(info.value).startswith("pipelines.yaml:2:2: invalid YAML: ")


def test_forbidden_character():
    assert located("a: 1\nb: x\x07\n") == [
        (2, 5, "invalid YAML: special characters are not allowed (character U+0007)")
    ]


@pytest.mark.parametrize("text", ["a: 1\n---\nb: 2\n", "a: 1\n---\n", "---\na: 1\n---\nb: 2\n"])
def test_several_documents_are_an_error(text):
    (problem,) = problems(text)
    second = text.splitlines().index("---", 1) + 1
    assert (problem.line, problem.column) == (second, 1)
    assert problem.message == (
        "invalid YAML: the file must hold a single YAML document, but another one starts here"
    )


# --------------------------------------------------------------------------------------------
# Interpolation
# --------------------------------------------------------------------------------------------


def test_simple_variable():
    doc = load("url: https://${HOST}:${PORT}/x\nname: ${NAME}\n", {"HOST": "h", "PORT": "1", "NAME": "n"})
    assert doc.data == {"url": "https://h:1/x", "name": "n"}


def test_default_forms():
    env = {"EMPTY": "", "SET": "value"}
    doc = load(
        """\
        a: ${UNSET:-fallback}
        b: ${EMPTY:-fallback}
        c: ${SET:-fallback}
        d: ${UNSET-fallback}
        e: x${EMPTY-fallback}x
        f: ${SET-fallback}
        g: ${UNSET:-}
        h: "${UNSET:-with spaces and : colon}"
        i: ${UNSET:-${SET}}
        j: ${UNSET:-${ALSO_UNSET:-deep}}
        k: ${SET:-${NOT_SET_BUT_UNUSED}}
        """,
        env,
    )
    assert doc.data == {
        "a": "fallback",
        "b": "fallback",
        "c": "value",
        "d": "fallback",
        "e": "xx",
        "f": "value",
        "g": "",
        "h": "with spaces and : colon",
        "i": "value",
        "j": "deep",
        "k": "value",
    }


def test_empty_variable_is_an_empty_string_not_an_error():
    assert load("a: ${EMPTY}\nb: '${EMPTY}'\n", {"EMPTY": ""}).data == {"a": "", "b": ""}


def test_dollar_escapes():
    doc = load(
        """\
        a: $$
        b: price $$5
        c: $$${X}
        d: a $ b
        e: $HOME
        f: "$$${X}$$"
        g: 'it''s $${X}'
        h: trailing $
        """,
        {"X": "x"},
    )
    assert doc.data == {
        "a": "$",
        "b": "price $5",
        "c": "$x",
        "d": "a $ b",
        "e": "$HOME",
        "f": "$x$",
        "g": "it's ${X}",
        "h": "trailing $",
    }


def test_keys_are_not_interpolated():
    doc = load("${KEY}: ${VALUE}\n", {"KEY": "k", "VALUE": "v"})
    assert doc.data == {"${KEY}": "v"}


def test_list_items_are_interpolated():
    assert load("- ${A}\n- ['${A}', \"${A}\"]\n", {"A": "1"}).data == [1, ["1", "1"]]


def test_unquoted_interpolation_in_flow_collections_is_a_yaml_error():
    # '{' is a flow indicator: inside [...] or {...} a ${VAR} must be quoted
    (problem,) = problems("a: [${A}]\n", {"A": "1"})
    assert (problem.line, problem.column) == (1, 6)
    assert problem.message.startswith("invalid YAML: ")


def test_required_variable():
    env = {"EMPTY": "", "SET": "ok"}
    assert load("a: ${SET:?give it}\nb: ${EMPTY?only when unset}\n", env).data == {"a": "ok", "b": ""}
    assert located(
        """\
        a: ${TOKEN:?set TOKEN to the partner API token}
        b: ${EMPTY:?must not be empty}
        c: ${GONE?needed}
        d: ${GONE:?}
        e: ${EMPTY:?}
        f: ${GONE:?see ${SET}}
        """,
        env,
    ) == [
        (1, 4, "environment variable 'TOKEN' is required: set TOKEN to the partner API token"),
        (2, 4, "environment variable 'EMPTY' is required: must not be empty"),
        (3, 4, "environment variable 'GONE' is required: needed"),
        (4, 4, "environment variable 'GONE' is required but is not set"),
        (5, 4, "environment variable 'EMPTY' is required but is empty"),
        (6, 4, "environment variable 'GONE' is required: see ok"),
    ]


def test_unset_variable_error_and_position():
    found = problems("pipelines:\n  feed:\n    url: https://example.com/${PATH_PART}\n")
    assert found == [
        Problem(
            FILE,
            3,
            30,
            "environment variable 'PATH_PART' is not set (write ${PATH_PART:-default} for a default)",
        )
    ]


def test_error_positions_in_quoted_and_multiline_scalars():
    found = located(
        """\
        a: "x ${A}"
        b: 'it''s ${B}'
        c: "\\t${C}"
        d: plain
          continued ${D}
        e: |
          first
            ${E}
        f: [1, "${F}"]
        """
    )
    assert [(line, column) for line, column, _ in found] == [
        (1, 7),
        (2, 11),
        (3, 7),
        (5, 13),
        (8, 5),
        (9, 9),
    ]
    assert [message.split("'")[1] for _, _, message in found] == ["A", "B", "C", "D", "E", "F"]


def test_escaped_dollar_falls_back_to_scalar_start():
    # "\x24" is a '$' that does not appear in the source: locate the scalar itself
    assert located('a: "\\x24{X} ${Y}"\n') == [
        (1, 4, "environment variable 'X' is not set (write ${X:-default} for a default)"),
        (1, 4, "environment variable 'Y' is not set (write ${Y:-default} for a default)"),
    ]


def test_syntax_errors_in_interpolation():
    found = located(
        """\
        a: ${}
        b: ${1ABC}
        c: ${A B}
        d: ${A:x}
        e: x ${UNTERMINATED
        f: ${A:-${B}
        g: ${OK:-fine} and ${BAD.NAME} and ${MISSING}
        """,
        {"OK": "1"},
    )
    assert [(line, column) for line, column, _ in found] == [
        (1, 4),
        (2, 4),
        (3, 4),
        (4, 4),
        (5, 6),
        (6, 4),
        (7, 20),
        (7, 36),
    ]
    messages = [message for _, _, message in found]
    assert messages[0].startswith("empty variable name in '${}'")
    assert messages[1].startswith("invalid variable name in '${1ABC}'")
    assert messages[2].startswith("invalid substitution '${A B}'")
    assert messages[3].startswith("invalid substitution '${A:x}'")
    assert messages[4].startswith("unterminated '${'")
    assert messages[5].startswith("unterminated '${'")
    assert messages[6].startswith("invalid substitution '${BAD.NAME}'")
    assert messages[7].startswith("environment variable 'MISSING' is not set")


def test_all_interpolation_problems_are_collected():
    text = """\
        pipelines:
          a:
            url: ${URL}
            token: ${TOKEN:?needed}
          b:
            - ${ONE}
            - ok
            - {x: "${TWO}"}
        """
    with pytest.raises(ConfigError) as info:
        load(text)
    error = info.value
    assert [(p.line, p.column) for p in error.problems] == [(3, 10), (4, 12), (6, 7), (8, 12)]
    assert all(p.file == FILE and p.severity == "error" for p in error.problems)
    assert str(error).startswith("pipelines.yaml:3:10: environment variable 'URL' is not set")
    assert str(error).endswith("(and 3 more problems)")


def test_interpolation_and_duplicate_problems_together_in_document_order():
    found = located("a: ${X}\nb: 1\na: 2\n")
    assert [(line, column) for line, column, _ in found] == [(1, 4), (3, 1)]


def test_uses_os_environ_by_default(monkeypatch):
    monkeypatch.setenv("LEO_YAML_LOADER_TEST", "from-env")
    assert load_yaml("a: ${LEO_YAML_LOADER_TEST}\n", FILE).data == {"a": "from-env"}
    monkeypatch.delenv("LEO_YAML_LOADER_TEST")
    with pytest.raises(ConfigError):
        load_yaml("a: ${LEO_YAML_LOADER_TEST}\n", FILE)


# --------------------------------------------------------------------------------------------
# Typing after interpolation
# --------------------------------------------------------------------------------------------


def test_plain_scalars_are_typed_again_after_interpolation():
    env = {"PORT": "9000", "RATIO": "0.25", "FLAG": "false", "NOTHING": "null", "WORD": "hello"}
    doc = load(
        """\
        port: ${PORT:-8765}
        default_port: ${UNSET_PORT:-8765}
        ratio: ${RATIO}
        flag: ${FLAG}
        default_flag: ${UNSET:-true}
        nothing: ${NOTHING}
        word: ${WORD}
        mixed: ${PORT}x
        empty: ${UNSET:-}
        list:
          - ${PORT}
          - "${PORT}"
          - ['${PORT}']
        """,
        env,
    )
    assert doc.data == {
        "port": 9000,
        "default_port": 8765,
        "ratio": 0.25,
        "flag": False,
        "default_flag": True,
        "nothing": None,
        "word": "hello",
        "mixed": "9000x",
        "empty": "",
        "list": [9000, "9000", ["9000"]],
    }
    assert type(doc.data["port"]) is int


def test_quoted_and_block_scalars_stay_strings():
    doc = load(
        """\
        single: '${PORT}'
        double: "${PORT:-8765}"
        flag: "${FLAG}"
        block: |-
          ${PORT}
        """,
        {"PORT": "9000", "FLAG": "true"},
    )
    assert doc.data == {"single": "9000", "double": "9000", "flag": "true", "block": "9000"}


def test_explicit_tags_decide_the_type():
    doc = load('a: !!str ${PORT}\nb: !!int "${PORT}"\nc: !!float ${PORT}\n', {"PORT": "9000"})
    assert doc.data == {"a": "9000", "b": 9000, "c": 9000.0}
    assert type(doc.data["c"]) is float


def test_scalars_without_dollar_are_as_pyyaml():
    import yaml

    text = "a: 1_000\nb: .inf\nc: 'x'\nd: on\ne: 1e3\nf: 0o17\ng: 2001-12-14t21:59:43.10-05:00\n"
    assert load(text).data == yaml.safe_load(text)


# --------------------------------------------------------------------------------------------
# interpolate() directly
# --------------------------------------------------------------------------------------------


def test_interpolate_function_offsets():
    result, errors = interpolate("ab ${X} $$ ${Y:?why}", {"X": "1"})
    assert errors == [(11, "environment variable 'Y' is required: why")]
    result, errors = interpolate("ab ${X} $$ $Z", {"X": "1"})
    assert (result, errors) == ("ab 1 $ $Z", [])


def test_a_tab_used_for_indentation_gets_a_plain_message() -> None:
    with pytest.raises(ConfigError) as caught:
        load_yaml("version: 1\npipelines:\n\tp: 1\n", "pipelines.yaml")
    assert str(caught.value.problems[0]) == "pipelines.yaml:3:1: invalid YAML: a tab cannot indent YAML; use spaces"


# --------------------------------------------------------------------------------------------
# Bounds: size, nesting, aliases expanded
# --------------------------------------------------------------------------------------------

LAUGHS = """\
a: &a ["lol","lol","lol","lol","lol","lol","lol","lol","lol"]
b: &b [*a,*a,*a,*a,*a,*a,*a,*a,*a]
c: &c [*b,*b,*b,*b,*b,*b,*b,*b,*b]
d: &d [*c,*c,*c,*c,*c,*c,*c,*c,*c]
e: &e [*d,*d,*d,*d,*d,*d,*d,*d,*d]
f: &f [*e,*e,*e,*e,*e,*e,*e,*e,*e]
g: &g [*f,*f,*f,*f,*f,*f,*f,*f,*f]
h: &h [*g,*g,*g,*g,*g,*g,*g,*g,*g]
i: &i [*h,*h,*h,*h,*h,*h,*h,*h,*h]
"""


def test_nested_aliases_are_one_located_error():
    # 390 bytes that expand to 387 million strings: refused while composing, at the alias that
    # passes the bound (the first '*e': a..e hold 74,700 values, '*e' brings 66,430 more).
    assert located(LAUGHS) == [
        (
            6,
            8,
            f"too many values: with its aliases expanded, the document holds more than {MAX_VALUES:,} "
            "(nested aliases multiply; write the values out or alias less)",
        )
    ]


def test_aliases_of_long_text_are_bounded_too():
    text = f'a: &a "{"x" * 100_000}"\nb: &b [{", ".join(["*a"] * 50)}]\nc: [*b, *b]\n'
    [(line, column, message)] = located(text)
    assert (line, column) == (3, 5)  # the first '*b' brings 5,000,000 more characters
    assert message.startswith(f"too much text: with its aliases expanded, the document holds more than {MAX_TEXT:,}")


def test_a_few_aliases_are_fine():
    doc = load("d: &d {retries: 3, seconds: 5}\nbots: [{<<: *d, id: a}, {<<: *d, id: b}, *d]\n")
    assert doc.data["bots"][2] == {"retries": 3, "seconds": 5}


def test_nesting_is_bounded_without_a_traceback():
    assert load("x: " + "[" * (MAX_DEPTH - 1) + "]" * (MAX_DEPTH - 1)).data  # the root mapping is level 1
    [(line, column, message)] = located("x: " + "[" * 400 + "]" * 400)
    assert (line, column, message) == (1, 4 + MAX_DEPTH - 1, f"the document is nested deeper than {MAX_DEPTH} levels")
    [(line, column, message)] = located("x:\n" + "".join("  " * n + f"k{n}:\n" for n in range(1, 200)))
    assert message == f"the document is nested deeper than {MAX_DEPTH} levels"


def test_nesting_through_aliases_is_bounded():
    half = MAX_DEPTH // 2 + 2
    text = f"a: &a {'[' * half}1{']' * half}\nb: {'[' * half}*a{']' * half}\n"
    [(line, column, message)] = located(text)
    assert (line, column) == (2, 4 + half)
    assert message == f"with its aliases expanded, the document is nested deeper than {MAX_DEPTH} levels"


def test_size_is_bounded():
    [problem] = problems("a: " + "x" * MAX_FILE_SIZE)
    assert (problem.line, problem.column) == (1, 1)
    assert problem.message.startswith("the file is too big")


def test_messages_never_quote_a_huge_value():
    text = "a: 1\n" + f"{'k' * 100_000}: 1\n" * 2 + f'b: !!int "{"9x" * 100_000}"\n'
    for problem in problems(text):
        assert len(str(problem)) < 600


def test_problems_are_capped():
    found = problems("".join(f"k: {n}\n" for n in range(300)))
    assert len(found) == MAX_PROBLEMS + 1
    assert found[-1].message == f"{299 - MAX_PROBLEMS} more problem(s) not shown; fix the ones above first"


# --------------------------------------------------------------------------------------------
# Values from the environment are never shown
# --------------------------------------------------------------------------------------------


def test_the_document_knows_which_values_came_from_the_environment():
    doc = load("a: ${TOKEN}\nb: plain\nc: [\"x-${TOKEN}-y\"]\nd: ${UNSET:-dflt}\ne: $$5\n", {"TOKEN": "s3cr3t"})
    assert doc.data == {"a": "s3cr3t", "b": "plain", "c": ["x-s3cr3t-y"], "d": "dflt", "e": "$5"}
    assert doc.template(("a",)) == "${TOKEN}"
    assert doc.template(("c", 0)) == "x-${TOKEN}-y"
    assert doc.template(("d",)) == "${UNSET:-dflt}"
    assert doc.template(("b",)) is None and doc.template(("e",)) is None
    assert doc.template(("a", "deeper")) is None  # not the value at that path
    assert doc.origin(("a",)) == " (from ${TOKEN})"
    problem = doc.problem(("b",), "b: expected 'x-s3cr3t-y' or 's3cr3t'")
    assert problem.message == "b: expected 'x-${TOKEN}-y' or '${TOKEN}'"


def test_an_invalid_typed_value_from_the_environment_names_the_variable():
    [(line, column, message)] = located('port: !!int "${PORT}"\n', {"PORT": "hunter2-secret"})
    assert (line, column, message) == (1, 7, "invalid !!int value (from ${PORT})")
