"""Tests for leo_runtime.query: the query language (compile-time checks and match semantics)."""

from __future__ import annotations

import copy
import datetime
from collections import OrderedDict, defaultdict
from collections.abc import Iterator, Mapping
from types import MappingProxyType
from typing import Any

import pytest

from leo_runtime.errors import LeoError, QueryError
from leo_runtime.query import OPERATORS, QUERY_JSON_SCHEMA, Query

DOC: dict[str, Any] = {
    "warehouse": "NYC",
    "quantity": 3,
    "price": 9.5,
    "status": "active",
    "sku": "AB-123",
    "flag": True,
    "off": False,
    "zero": 0,
    "one": 1,
    "nothing": None,
    "tags": ["a", "b"],
    "bools": [True, False],
    "empty": {},
    "meta": {"region": "us-east", "level": 2, "deep": {"x": 1, "none": None}},
}


def match(spec: Any, doc: Any = DOC) -> bool:
    query = Query.compile(spec)
    result = query.matches(doc)
    assert query(doc) is result  # callable form agrees
    assert isinstance(result, bool)
    return result


def compile_error(spec: Any) -> QueryError:
    with pytest.raises(QueryError) as info:
        Query.compile(spec)
    return info.value


# --------------------------------------------------------------------------------------------
# Public surface


def test_operators_in_documented_order() -> None:
    assert OPERATORS == ("eq", "ne", "lt", "lte", "gt", "gte", "in", "nin", "exists", "prefix")


def test_query_error_is_a_leo_error() -> None:
    assert isinstance(compile_error([]), LeoError)


def test_public_surface_has_docstrings() -> None:
    import leo_runtime.query as module

    for obj in (module, Query, Query.compile, Query.matches):
        assert obj.__doc__ and obj.__doc__.strip()


def test_contract_example() -> None:
    spec = {"warehouse": "NYC", "quantity": {"lt": 5}, "status": {"in": ["active", "backorder"]}}
    query = Query.compile(spec)
    assert query.matches({"warehouse": "NYC", "quantity": 2, "status": "backorder"})
    assert not query.matches({"warehouse": "NYC", "quantity": 5, "status": "backorder"})
    assert not query.matches({"warehouse": "SFO", "quantity": 2, "status": "active"})
    assert not query.matches({"warehouse": "NYC", "quantity": 2, "status": "closed"})
    assert not query.matches({"warehouse": "NYC", "status": "active"})


# --------------------------------------------------------------------------------------------
# Operators: true and false cases


@pytest.mark.parametrize(
    ("spec", "expected"),
    [
        # literals = eq
        ({"warehouse": "NYC"}, True),
        ({"warehouse": "nyc"}, False),
        ({"quantity": 3}, True),
        ({"quantity": 3.0}, True),
        ({"quantity": 4}, False),
        ({"quantity": "3"}, False),
        ({"price": 9.5}, True),
        ({"nothing": None}, True),
        ({"warehouse": None}, False),
        ({"flag": True}, True),
        ({"flag": False}, False),
        ({"off": False}, True),
        ({"tags": ["a", "b"]}, True),
        ({"tags": ["b", "a"]}, False),
        ({"tags": ["a"]}, False),
        ({"tags": "a"}, False),
        # eq
        ({"warehouse": {"eq": "NYC"}}, True),
        ({"warehouse": {"eq": "SFO"}}, False),
        ({"quantity": {"eq": 3}}, True),
        ({"quantity": {"eq": 3.5}}, False),
        ({"nothing": {"eq": None}}, True),
        ({"zero": {"eq": None}}, False),
        ({"meta": {"eq": {"region": "us-east", "level": 2, "deep": {"x": 1, "none": None}}}}, True),
        ({"meta": {"eq": {"region": "us-east"}}}, False),
        ({"empty": {"eq": {}}}, True),
        ({"tags": {"eq": ["a", "b"]}}, True),
        ({"tags": {"eq": ("a", "b")}}, True),
        # ne
        ({"warehouse": {"ne": "SFO"}}, True),
        ({"warehouse": {"ne": "NYC"}}, False),
        ({"quantity": {"ne": 3}}, False),
        ({"quantity": {"ne": 3.0}}, False),
        ({"quantity": {"ne": 4}}, True),
        ({"nothing": {"ne": None}}, False),
        ({"warehouse": {"ne": None}}, True),
        ({"flag": {"ne": True}}, False),
        ({"flag": {"ne": False}}, True),
        ({"off": {"ne": False}}, False),
        ({"tags": {"ne": ["a", "b"]}}, False),
        ({"tags": {"ne": ["a"]}}, True),
        ({"missing": {"ne": "x"}}, True),
        # lt / lte / gt / gte on numbers
        ({"quantity": {"lt": 5}}, True),
        ({"quantity": {"lt": 3}}, False),
        ({"quantity": {"lt": 3.5}}, True),
        ({"quantity": {"lte": 3}}, True),
        ({"quantity": {"lte": 2.99}}, False),
        ({"quantity": {"gt": 2}}, True),
        ({"quantity": {"gt": 3}}, False),
        ({"quantity": {"gte": 3}}, True),
        ({"quantity": {"gte": 3.01}}, False),
        ({"price": {"gt": 9}}, True),
        ({"price": {"lt": -1}}, False),
        # lt / lte / gt / gte on strings
        ({"warehouse": {"lt": "SFO"}}, True),
        ({"warehouse": {"lt": "NYC"}}, False),
        ({"warehouse": {"lte": "NYC"}}, True),
        ({"warehouse": {"gt": "LAX"}}, True),
        ({"warehouse": {"gt": "NYC"}}, False),
        ({"warehouse": {"gte": "NYC"}}, True),
        ({"warehouse": {"gte": "NYD"}}, False),
        # in / nin
        ({"status": {"in": ["active", "backorder"]}}, True),
        ({"status": {"in": ["closed"]}}, False),
        ({"status": {"in": []}}, False),
        ({"quantity": {"in": [1, 2, 3]}}, True),
        ({"quantity": {"in": [3.0]}}, True),
        ({"quantity": {"in": ["3"]}}, False),
        ({"nothing": {"in": [None]}}, True),
        ({"tags": {"in": [["a", "b"], "x"]}}, True),
        ({"tags": {"in": [["a"]]}}, False),
        ({"meta": {"in": [{"region": "us-east", "level": 2, "deep": {"x": 1, "none": None}}]}}, True),
        ({"status": {"nin": ["closed", "deleted"]}}, True),
        ({"status": {"nin": ["active"]}}, False),
        ({"status": {"nin": []}}, True),
        ({"quantity": {"nin": [3]}}, False),
        ({"tags": {"nin": [["a", "b"]]}}, False),
        ({"tags": {"nin": [["a"]]}}, True),
        # exists
        ({"warehouse": {"exists": True}}, True),
        ({"warehouse": {"exists": False}}, False),
        ({"nothing": {"exists": True}}, True),
        ({"nothing": {"exists": False}}, False),
        ({"missing": {"exists": True}}, False),
        ({"missing": {"exists": False}}, True),
        ({"off": {"exists": True}}, True),
        # prefix
        ({"sku": {"prefix": "AB-"}}, True),
        ({"sku": {"prefix": "AB-123"}}, True),
        ({"sku": {"prefix": ""}}, True),
        ({"sku": {"prefix": "ab"}}, False),
        ({"sku": {"prefix": "AB-1234"}}, False),
        ({"sku": {"prefix": "B"}}, False),
        # several operators on one field
        ({"quantity": {"gt": 1, "lt": 5}}, True),
        ({"quantity": {"gt": 1, "lt": 3}}, False),
        ({"quantity": {"gte": 3, "lte": 3, "ne": 4, "in": [3], "exists": True}}, True),
        ({"sku": {"prefix": "AB", "ne": "AB-123"}}, False),
        # several fields
        ({"warehouse": "NYC", "quantity": 3, "flag": True}, True),
        ({"warehouse": "NYC", "quantity": 3, "flag": False}, False),
        ({"warehouse": "SFO", "quantity": 3}, False),
    ],
)
def test_operator(spec: dict[str, Any], expected: bool) -> None:
    assert match(spec) is expected


# --------------------------------------------------------------------------------------------
# Nested paths and absent fields


@pytest.mark.parametrize(
    ("spec", "expected"),
    [
        ({"meta.region": "us-east"}, True),
        ({"meta.region": "eu"}, False),
        ({"meta.level": {"gte": 2}}, True),
        ({"meta.deep.x": 1}, True),
        ({"meta.deep.x": {"in": [2, 3]}}, False),
        ({"meta.deep.none": None}, True),
        ({"meta.deep.none": {"exists": True}}, True),
        ({"meta.deep.y": {"exists": False}}, True),
        ({"meta.deep.y.z": {"exists": False}}, True),
        ({"meta.nope": {"exists": True}}, False),
        ({"meta.region.x": {"exists": True}}, False),  # through a string: absent
        ({"tags.0": "a"}, False),  # lists are not walked: dots only mean mapping keys
        ({"quantity.x": {"exists": False}}, True),  # through a number: absent
        ({"nothing.x": {"exists": False}}, True),  # through null: absent
        ({"missing.x": {"ne": 1}}, True),
        ({"missing.x": {"nin": [1]}}, True),
        ({"meta.region": "us-east", "meta.level": 2, "warehouse": "NYC"}, True),
        ({"meta.deep": {"eq": {"x": 1, "none": None}}}, True),
    ],
)
def test_nested_paths(spec: dict[str, Any], expected: bool) -> None:
    assert match(spec) is expected


def test_dots_always_mean_nesting() -> None:
    doc = {"a.b": 1, "a": {"b": 2}}
    assert match({"a.b": 2}, doc)
    assert not match({"a.b": 1}, doc)
    assert not match({"a.b": 1}, {"a.b": 1})


@pytest.mark.parametrize(
    ("condition", "expected"),
    [
        ("x", False),
        (None, False),
        ({"eq": None}, False),
        ({"ne": None}, True),
        ({"ne": "x"}, True),
        ({"lt": 5}, False),
        ({"lte": 5}, False),
        ({"gt": 5}, False),
        ({"gte": "a"}, False),
        ({"in": [None, "x"]}, False),
        ({"in": [[], {}]}, False),
        ({"nin": [None, "x"]}, True),
        ({"nin": []}, True),
        ({"exists": True}, False),
        ({"exists": False}, True),
        ({"prefix": ""}, False),
    ],
)
@pytest.mark.parametrize("field", ["missing", "meta.missing", "meta.deep.none.x", "a.b.c.d"])
def test_absent_fields(field: str, condition: Any, expected: bool) -> None:
    assert match({field: condition}) is expected


# --------------------------------------------------------------------------------------------
# Booleans are not numbers


@pytest.mark.parametrize(
    ("spec", "expected"),
    [
        ({"flag": 1}, False),
        ({"one": True}, False),
        ({"off": 0}, False),
        ({"zero": False}, False),
        ({"flag": 1.0}, False),
        ({"flag": {"eq": 1}}, False),
        ({"one": {"eq": True}}, False),
        ({"one": {"eq": 1}}, True),
        ({"one": {"eq": 1.0}}, True),
        ({"flag": {"ne": 1}}, True),
        ({"one": {"ne": True}}, True),
        ({"zero": {"ne": False}}, True),
        ({"off": {"ne": 0}}, True),
        ({"flag": {"in": [1, 2]}}, False),
        ({"one": {"in": [True]}}, False),
        ({"one": {"in": [True, 1]}}, True),
        ({"flag": {"in": [True, 1]}}, True),
        ({"zero": {"in": [False, None]}}, False),
        ({"off": {"in": [0]}}, False),
        ({"flag": {"nin": [1]}}, True),
        ({"one": {"nin": [True]}}, True),
        ({"bools": [1, 0]}, False),
        ({"bools": [True, False]}, True),
        ({"bools": {"in": [[1, 0]]}}, False),
        ({"bools": {"in": [[True, False]]}}, True),
        ({"flag": {"gt": 0}}, False),
        ({"flag": {"lte": 1}}, False),
        ({"off": {"lt": 1}}, False),
        ({"off": {"gte": 0}}, False),
    ],
)
def test_bool_is_not_int(spec: dict[str, Any], expected: bool) -> None:
    assert match(spec) is expected


def test_bool_inside_nested_mapping_equality() -> None:
    assert not match({"m": {"eq": {"a": 1}}}, {"m": {"a": True}})
    assert match({"m": {"eq": {"a": True}}}, {"m": {"a": True}})
    assert match({"m": {"eq": {"a": 1}}}, {"m": {"a": 1.0}})
    assert not match({"m": {"eq": {"a": 1}}}, {"m": {"b": 1}})
    assert not match({"m": {"eq": {"a": [1]}}}, {"m": {"a": [True]}})


# --------------------------------------------------------------------------------------------
# Type mismatches at match time never raise, they just do not match


@pytest.mark.parametrize(
    "value",
    [None, True, False, "5", 5, 5.5, [], [1], {}, {"a": 1}, datetime.date(2024, 1, 1), object()],
)
@pytest.mark.parametrize(
    "condition",
    [
        {"lt": 10},
        {"lte": 10.5},
        {"gt": -1},
        {"gte": 0},
        {"lt": "z"},
        {"lte": "zz"},
        {"gt": ""},
        {"gte": "0"},
        {"prefix": "5"},
        {"in": [5, "5", [1], {"a": 1}]},
        {"eq": [1]},
        {"eq": {"a": 1}},
    ],
)
def test_match_never_raises(value: Any, condition: dict[str, Any]) -> None:
    match({"v": condition}, {"v": value})  # result checked elsewhere; must not raise


@pytest.mark.parametrize(
    ("condition", "value"),
    [
        ({"lt": 10}, "5"),
        ({"lt": 10}, None),
        ({"lt": 10}, [1]),
        ({"gt": -1}, True),
        ({"gte": 0}, False),
        ({"lt": "z"}, 5),
        ({"gt": ""}, None),
        ({"lte": "zz"}, ["a"]),
        ({"gte": "2024"}, datetime.date(2025, 1, 1)),
        ({"prefix": "5"}, 55),
        ({"prefix": "a"}, ["a"]),
        ({"prefix": "N"}, None),
        ({"in": ["5"]}, 5),
        ({"in": [5]}, "5"),
        ({"in": [5]}, [5]),
        ({"eq": [1]}, 1),
        ({"eq": {"a": 1}}, [("a", 1)]),
        ({"eq": "a"}, ["a"]),
    ],
)
def test_type_mismatch_does_not_match(condition: dict[str, Any], value: Any) -> None:
    assert match({"v": condition}, {"v": value}) is False


def test_string_and_number_order() -> None:
    assert match({"v": {"lt": "b"}}, {"v": "a"})
    assert match({"v": {"lt": "a"}}, {"v": "A"})  # code-point order
    assert match({"v": {"gt": 9}}, {"v": 10})
    assert not match({"v": {"gt": "9"}}, {"v": "10"})  # strings compare as strings
    assert match({"v": {"lt": 1}}, {"v": 0.5})
    assert match({"v": {"gt": 1.5}}, {"v": 2})


# --------------------------------------------------------------------------------------------
# Documents: other mappings, non-mappings


class FrozenMapping(Mapping[str, Any]):
    """A minimal read-only mapping that is not a dict."""

    def __init__(self, data: dict[str, Any]) -> None:
        self._data = data

    def __getitem__(self, key: str) -> Any:
        return self._data[key]

    def __iter__(self) -> Iterator[str]:
        return iter(self._data)

    def __len__(self) -> int:
        return len(self._data)


@pytest.mark.parametrize(
    "wrap",
    [dict, OrderedDict, MappingProxyType, FrozenMapping],
    ids=["dict", "OrderedDict", "MappingProxyType", "custom Mapping"],
)
def test_other_mapping_documents(wrap: Any) -> None:
    doc = wrap({"a": 1, "b": wrap({"c": "x", "d": wrap({"e": True})})})
    assert match({"a": 1}, doc)
    assert match({"b.c": "x"}, doc)
    assert match({"b.d.e": True}, doc)
    assert match({"b.d.f": {"exists": False}}, doc)
    assert not match({"b.c": "y"}, doc)
    assert not match({"z": {"exists": True}}, doc)
    assert match({"b.d": {"eq": {"e": True}}}, doc)


def test_defaultdict_document_is_not_mutated() -> None:
    doc: defaultdict[str, Any] = defaultdict(dict, {"a": defaultdict(int)})
    assert match({"x": {"exists": False}, "a.y": {"exists": False}}, doc)
    assert set(doc) == {"a"}
    assert dict(doc["a"]) == {}


@pytest.mark.parametrize("doc", [None, 5, "warehouse", ["warehouse"], ("a", "b")])
def test_non_mapping_document_has_no_fields(doc: Any) -> None:
    assert match({}, doc)
    assert not match({"warehouse": {"exists": True}}, doc)
    assert match({"warehouse": {"exists": False}}, doc)
    assert match({"a.b": {"ne": 1}}, doc)
    assert not match({"a.b": 1}, doc)


# --------------------------------------------------------------------------------------------
# Compile once; empty query


@pytest.mark.parametrize("spec", [None, {}, MappingProxyType({}), OrderedDict()])
def test_empty_query_matches_everything(spec: Any) -> None:
    query = Query.compile(spec)
    for doc in ({}, DOC, {"a": None}, None, 5, "x", []):
        assert query.matches(doc) is True
        assert query(doc) is True


def test_none_is_the_empty_query() -> None:
    assert Query.compile(None).spec == {}


def test_spec_is_kept() -> None:
    spec = {"warehouse": "NYC", "quantity": {"lt": 5}}
    query = Query.compile(spec)
    assert query.spec is spec
    assert "NYC" in repr(query)


def test_compiled_once_and_immune_to_later_mutation() -> None:
    spec: dict[str, Any] = {
        "status": {"in": ["active"]},
        "tags": ["a", "b"],
        "meta": {"eq": {"region": "us-east", "level": 2, "deep": {"x": 1, "none": None}}},
        "bag": {"in": [["x"]]},
    }
    original = copy.deepcopy(spec)
    query = Query.compile(spec)
    doc = dict(DOC, bag=["x"])
    assert query.matches(doc)
    spec["status"]["in"].clear()
    spec["tags"].append("c")
    spec["meta"]["eq"]["region"] = "eu"
    spec["bag"]["in"][0].append("y")
    spec["new"] = 1
    assert query.matches(doc)
    assert not Query.compile(spec).matches(doc)
    assert Query.compile(original).matches(doc)


def test_compile_returns_a_query_and_accepts_a_query() -> None:
    query = Query.compile({"a": 1})
    assert isinstance(query, Query)
    assert Query.compile(query) is query
    assert Query({"a": 1}).matches({"a": 1})


def test_query_reusable_across_many_documents() -> None:
    query = Query.compile({"n": {"gte": 10, "lt": 20}, "kind": {"nin": ["skip"]}})
    docs = [{"n": n, "kind": "skip" if n == 15 else "keep"} for n in range(30)]
    assert [d["n"] for d in docs if query(d)] == [10, 11, 12, 13, 14, 16, 17, 18, 19]


# --------------------------------------------------------------------------------------------
# Compile-time errors: exact path, message naming the field / operator, hints


@pytest.mark.parametrize(
    ("spec", "path", "fragments"),
    [
        # top level
        ([], (), ["must be a mapping", "got a list"]),
        ("warehouse: NYC", (), ["must be a mapping", "got a string"]),
        (5, (), ["must be a mapping", "got a number"]),
        (True, (), ["must be a mapping", "got a boolean"]),
        # field names
        ({"": 1}, ("",), ["must not be empty"]),
        ({"a..b": 1}, ("a..b",), ["'a..b'", "empty segment"]),
        ({".a": 1}, (".a",), ["'.a'", "empty segment"]),
        ({"a.": 1}, ("a.",), ["'a.'", "empty segment"]),
        ({".": 1}, (".",), ["empty segment"]),
        ({1: "x"}, ("1",), ["field names must be strings", "got a number", "quote it"]),
        ({True: "x"}, ("true",), ["field names must be strings", "got a boolean"]),
        ({None: "x"}, ("null",), ["field names must be strings", "got null"]),
        # unknown operators, did-you-mean
        ({"quantity": {"less": 5}}, ("quantity", "less"), ["unknown operator 'less' (did you mean 'lt'?)"]),
        ({"quantity": {"<": 5}}, ("quantity", "<"), ["unknown operator '<'", "did you mean 'lt'?"]),
        ({"quantity": {">=": 5}}, ("quantity", ">="), ["did you mean 'gte'?"]),
        ({"quantity": {"$lt": 5}}, ("quantity", "$lt"), ["did you mean 'lt'?"]),
        ({"quantity": {"LT": 5}}, ("quantity", "LT"), ["did you mean 'lt'?"]),
        ({"quantity": {"ltee": 5}}, ("quantity", "ltee"), ["unknown operator 'ltee'", "'lte'"]),
        ({"quantity": {"gtt": 5}}, ("quantity", "gtt"), ["did you mean 'gt'?"]),
        ({"x": {"exsits": True}}, ("x", "exsits"), ["did you mean 'exists'?"]),
        ({"x": {"exist": True}}, ("x", "exist"), ["did you mean 'exists'?"]),
        ({"x": {"prefx": "a"}}, ("x", "prefx"), ["did you mean 'prefix'?"]),
        ({"x": {"startswith": "a"}}, ("x", "startswith"), ["did you mean 'prefix'?"]),
        ({"x": {"not_in": [1]}}, ("x", "not_in"), ["did you mean 'nin'?"]),
        ({"x": {"equals": 1}}, ("x", "equals"), ["did you mean 'eq'?"]),
        ({"x": {"!=": 1}}, ("x", "!="), ["did you mean 'ne'?"]),
        ({"x": {"eq": 1, "bogus": 2}}, ("x", "bogus"), ["unknown operator 'bogus'"]),
        ({"x": {3: 1}}, ("x", "3"), ["unknown operator '3'"]),
        # a literal mapping is an operator mapping: hint at nested paths
        ({"a": {"b": 1}}, ("a", "b"), ["unknown operator 'b'", "to match a nested field use 'a.b'"]),
        (
            {"meta.deep": {"x": 1}},
            ("meta.deep", "x"),
            ["unknown operator 'x'", "use 'meta.deep.x'", "eq, ne, lt"],
        ),
        ({"user": {"name": "bob"}}, ("user", "name"), ["unknown operator 'name'", "'user.name'"]),
        ({"a": {}}, ("a",), ["no operators given"]),
        ({"a.b": {}}, ("a.b",), ["no operators given"]),
        # operand types
        (
            {"status": {"in": "active"}},
            ("status", "in"),
            ["operator 'in' needs a list, got a string", '["active"]'],
        ),
        ({"status": {"nin": "x"}}, ("status", "nin"), ["operator 'nin' needs a list, got a string"]),
        ({"status": {"in": 5}}, ("status", "in"), ["needs a list, got a number"]),
        ({"status": {"in": None}}, ("status", "in"), ["needs a list, got null"]),
        ({"status": {"in": {"a": 1}}}, ("status", "in"), ["needs a list, got a mapping"]),
        ({"q": {"lt": "5", "gt": None}}, ("q", "gt"), ["operator 'gt' needs a number or a string, got null"]),
        ({"q": {"lt": True}}, ("q", "lt"), ["operator 'lt' needs a number or a string, got a boolean"]),
        ({"q": {"lte": [1]}}, ("q", "lte"), ["operator 'lte' needs a number or a string, got a list"]),
        ({"q": {"gte": {"a": 1}}}, ("q", "gte"), ["needs a number or a string, got a mapping"]),
        ({"q": {"gt": float("nan")}}, ("q", "gt"), ["needs a number or a string", "NaN"]),
        (
            {"day": {"gte": datetime.date(2024, 1, 1)}},
            ("day", "gte"),
            ["needs a number or a string, got a date", "quote dates"],
        ),
        ({"x": {"exists": "true"}}, ("x", "exists"), ["operator 'exists' needs true or false, got a string"]),
        ({"x": {"exists": 1}}, ("x", "exists"), ["needs true or false, got a number"]),
        ({"x": {"exists": None}}, ("x", "exists"), ["needs true or false, got null"]),
        ({"x": {"prefix": 5}}, ("x", "prefix"), ["operator 'prefix' needs a string, got a number"]),
        ({"x": {"prefix": ["a"]}}, ("x", "prefix"), ["needs a string, got a list"]),
        ({"x": {"prefix": None}}, ("x", "prefix"), ["needs a string, got null"]),
        # the first bad entry is reported, with its own field
        ({"ok": 1, "a.b": {"in": "x"}, "c": {"zz": 1}}, ("a.b", "in"), ["needs a list"]),
    ],
)
def test_compile_errors(spec: Any, path: tuple[str, ...], fragments: list[str]) -> None:
    error = compile_error(spec)
    assert error.path == path
    for fragment in fragments:
        assert fragment in error.reason, (fragment, error.reason)
    text = str(error)
    assert error.reason in text
    if path:
        assert text.startswith(f"field '{path[0]}': ")  # the message names the field, not the operator


def test_exact_message_for_contract_examples() -> None:
    error = compile_error({"quantity": {"less": 5}})
    assert error.path == ("quantity", "less")
    assert error.reason == "unknown operator 'less' (did you mean 'lt'?)"
    assert str(error) == "field 'quantity': unknown operator 'less' (did you mean 'lt'?)"

    error = compile_error({"status": {"in": "active"}})
    assert error.path == ("status", "in")
    assert error.reason.startswith("operator 'in' needs a list, got a string")


def test_unknown_operator_lists_operators_when_no_close_match() -> None:
    error = compile_error({"a": {"zzzz": 1}})
    assert error.path == ("a", "zzzz")
    assert "did you mean" not in error.reason
    assert ", ".join(OPERATORS) in error.reason
    assert "'a.zzzz'" in error.reason


def test_top_level_error_has_no_field_prefix() -> None:
    error = compile_error(["a"])
    assert error.path == ()
    assert str(error) == error.reason


@pytest.mark.parametrize(
    "operand",
    ["x", 1, 1.5, True, None, [1, [2]], {"a": {"b": [True]}}, {}, [], datetime.date(2024, 1, 1)],
)
def test_eq_and_ne_accept_any_operand(operand: Any) -> None:
    assert match({"v": {"eq": operand}}, {"v": copy.deepcopy(operand)})
    assert not match({"v": {"ne": operand}}, {"v": copy.deepcopy(operand)})
    assert match({"v": {"in": [operand]}}, {"v": copy.deepcopy(operand)})
    assert not match({"v": {"nin": [operand]}}, {"v": copy.deepcopy(operand)})


# --------------------------------------------------------------------------------------------
# JSON Schema


def test_schema_shape() -> None:
    schema = QUERY_JSON_SCHEMA
    assert schema["$schema"] == "https://json-schema.org/draft/2020-12/schema"
    assert schema["type"] == "object"
    operators = schema["$defs"]["operators"]
    assert tuple(operators["properties"]) == OPERATORS
    assert operators["additionalProperties"] is False
    assert operators["minProperties"] == 1
    assert operators["properties"]["in"]["type"] == "array"
    assert operators["properties"]["exists"]["type"] == "boolean"
    assert operators["properties"]["prefix"]["type"] == "string"


def test_schema_is_json_serialisable() -> None:
    import json

    assert json.loads(json.dumps(QUERY_JSON_SCHEMA)) == QUERY_JSON_SCHEMA


def test_schema_field_pattern_agrees_with_compile() -> None:
    import re

    pattern = re.compile(QUERY_JSON_SCHEMA["propertyNames"]["pattern"])
    for name in ["a", "a.b", "a.b.c", "with space", "x-y.z_1"]:
        assert pattern.search(name)
        Query.compile({name: 1})
    for name in ["", "a..b", ".a", "a.", "."]:
        assert not pattern.search(name)
        with pytest.raises(QueryError):
            Query.compile({name: 1})


@pytest.mark.parametrize(
    ("spec", "valid"),
    [
        ({}, True),
        ({"warehouse": "NYC", "quantity": {"lt": 5}, "status": {"in": ["active", "backorder"]}}, True),
        ({"a.b": None, "c": [1, 2], "d": {"exists": False, "ne": 3}}, True),
        ({"d": {"eq": {"nested": 1}}}, True),
        ({"a": {"b": 1}}, False),
        ({"a": {}}, False),
        ({"a..b": 1}, False),
        ({"s": {"in": "x"}}, False),
        ({"q": {"lt": True}}, False),
        ({"q": {"lt": None}}, False),
        ({"x": {"exists": 1}}, False),
        ({"x": {"prefix": 1}}, False),
        ([1], False),
    ],
)
def test_schema_agrees_with_compile(spec: Any, valid: bool) -> None:
    try:
        Query.compile(spec)
        compiled = True
    except QueryError:
        compiled = False
    assert compiled is valid
    jsonschema = pytest.importorskip("jsonschema")
    validator = jsonschema.Draft202012Validator(QUERY_JSON_SCHEMA)
    validator.check_schema(QUERY_JSON_SCHEMA)
    assert validator.is_valid(spec) is valid
