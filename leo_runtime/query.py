"""Queries: declarative filters over event documents.

A query is a JSON/YAML mapping; every entry must hold (AND). Keys are field paths (``a.b`` for
nesting). A value is either a literal (equality) or a mapping of operators:
``eq ne lt lte gt gte in nin exists prefix``. For example::

    {"warehouse": "NYC", "quantity": {"lt": 5}, "status": {"in": ["active", "backorder"]}}

An unknown operator or a wrong operand type is a `QueryError` naming the field; its ``path`` is
the tuple of keys leading to the offending node inside the query (``("quantity", "less")``).

Compile a query once with `Query.compile` and call `Query.matches` (or the query itself) per
document; compiling does all the checking, matching never raises.

Semantics
---------
Field paths
    ``a.b.c`` walks nested mappings; dots always mean nesting (a literal key containing a dot
    cannot be addressed). A missing key, or a non-mapping on the way, means the field is *absent*.
    Field names must be non-empty strings without empty segments (``"a..b"``, ``".a"`` and
    ``"a."`` are errors).
Literals
    A non-mapping value means equality (``{"a": 5}`` is ``{"a": {"eq": 5}}``); a list literal
    means equality with the whole list. A mapping value is always an operator mapping, so
    ``{"a": {"b": 1}}`` is an error: to match a nested field write ``{"a.b": 1}`` (or, to match
    a whole mapping, ``{"a": {"eq": {"b": 1}}}``). An empty operator mapping is an error.
Equality (``eq``, ``ne``, ``in``, ``nin``, literals)
    Like Python ``==`` except that booleans only equal booleans: ``true`` does not equal ``1``,
    ``false`` does not equal ``0``, while ``1`` equals ``1.0``. The rule applies inside lists and
    mappings too (lists and tuples compare element-wise). An absent field equals nothing, not
    even ``null``; a field present with value ``null`` equals ``null``.
``ne``
    Holds when the field is absent or not equal.
``lt lte gt gte``
    The operand must be a number (not a boolean) or a string. A number only compares with
    numbers (int or float, not booleans) and a string only with strings (code-point order);
    anything else (absent, ``null``, another type) does not match.
``in`` / ``nin``
    The operand must be a list. ``in`` holds when the value equals any member; ``nin`` holds when
    the field is absent or equals no member. ``in: []`` matches nothing, ``nin: []`` everything.
``exists``
    The operand must be ``true`` or ``false``: ``true`` holds when the field is present (even if
    ``null``), ``false`` when it is absent.
``prefix``
    The operand must be a string; holds only for string values starting with it.

Several operators in one mapping must all hold. The empty query (``{}`` or ``None``) matches
every document. A document that is not a mapping has every field absent.

Operands are copied at compile time, so mutating the spec afterwards does not change a compiled
query (`Query.spec` still returns the original object).
"""

from __future__ import annotations

import copy
import difflib
import json
import math
from collections.abc import Callable, Mapping
from typing import Any

from leo_runtime.errors import QueryError

__all__ = ["OPERATORS", "QUERY_JSON_SCHEMA", "Query", "json_equal"]

OPERATORS: tuple[str, ...] = ("eq", "ne", "lt", "lte", "gt", "gte", "in", "nin", "exists", "prefix")
"""The operator names, in documentation order."""

Test = Callable[[Any], bool]
"""A compiled operator: takes the field value (or `_MISSING`) and answers."""


class _Missing:
    """Type of the sentinel that stands for an absent field."""

    __slots__ = ()

    def __repr__(self) -> str:
        return "<absent>"


_MISSING: Any = _Missing()

_NUMBER_TYPES = (int, float)


# --------------------------------------------------------------------------------------------
# Equality that does not confuse booleans with numbers


def _same(a: Any, b: Any) -> bool:
    """Deep equality where booleans only equal booleans (``True`` is not ``1``)."""
    if a.__class__ is bool or b.__class__ is bool:
        return a is b
    if isinstance(a, (list, tuple)):
        if not isinstance(b, (list, tuple)) or len(a) != len(b):
            return False
        return all(_same(x, y) for x, y in zip(a, b, strict=True))
    if isinstance(a, Mapping):
        if not isinstance(b, Mapping) or len(a) != len(b):
            return False
        for key, value in a.items():
            other = b.get(key, _MISSING) if isinstance(b, dict) else _lookup(b, key)
            if other is _MISSING or not _same(value, other):
                return False
        return True
    if isinstance(b, (list, tuple, Mapping)):
        return False
    return bool(a == b)


def json_equal(a: Any, b: Any) -> bool:
    """Deep equality of JSON values as queries compare them: booleans equal only booleans
    (``true`` is not ``1``), while ``1`` equals ``1.0``."""
    return _same(a, b)


def _lookup(mapping: Mapping[Any, Any], key: Any) -> Any:
    try:
        return mapping[key]
    except KeyError:
        return _MISSING


def _eq_test(x: Any) -> Test:
    """Compile equality with the literal ``x`` into the cheapest closure that implements it."""
    cls = x.__class__
    if cls is bool:
        if x:
            return lambda v: v is True
        return lambda v: v is False
    if x is None:
        return lambda v: v is None
    if cls is str:
        return lambda v: v == x
    if cls is int or cls is float:
        # `v == x` first: the common "not equal" case then costs a single comparison.
        return lambda v: v == x and v.__class__ is not bool
    frozen = copy.deepcopy(x)
    return lambda v: v is not _MISSING and _same(v, frozen)


def _ne_test(x: Any) -> Test:
    cls = x.__class__
    if cls is bool:
        if x:
            return lambda v: v is not True
        return lambda v: v is not False
    if x is None:
        return lambda v: v is not None
    if cls is str:
        return lambda v: v != x
    if cls is int or cls is float:
        return lambda v: v != x or v.__class__ is bool
    eq = _eq_test(x)
    return lambda v: not eq(v)


def _in_test(members: list[Any] | tuple[Any, ...]) -> Test:
    """Compile membership: booleans and hashable scalars go to sets, the rest to a tuple."""
    bools = frozenset(m for m in members if m.__class__ is bool)
    scalars = frozenset(
        m for m in members if m.__class__ is not bool and (m is None or isinstance(m, (str, int, float)))
    )
    others = tuple(
        copy.deepcopy(m)
        for m in members
        if m.__class__ is not bool and m is not None and not isinstance(m, (str, int, float))
    )
    if not others:

        def test(v: Any) -> bool:
            if v.__class__ is bool:
                return v in bools
            try:
                return v in scalars
            except TypeError:  # unhashable value (list, dict): equals no scalar
                return False

        return test

    def test_with_others(v: Any) -> bool:
        if v.__class__ is bool:
            return v in bools
        if v is _MISSING:
            return False
        try:
            if v in scalars:
                return True
        except TypeError:
            pass
        return any(_same(v, m) for m in others)

    return test_with_others


# --------------------------------------------------------------------------------------------
# Operand checking and operator compilation


def _show(value: Any) -> str:
    """Render a value the way the user wrote it (JSON), shortened."""
    try:
        text = json.dumps(value, ensure_ascii=False, default=str)
    except (TypeError, ValueError):
        text = repr(value)
    return text if len(text) <= 40 else text[:37] + "..."


def _describe(value: Any) -> str:
    """Name the type of a user-supplied value, for error messages ("a string "x"")."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return f"a boolean ({_show(value)})"
    if isinstance(value, (int, float)):
        return f"a number ({_show(value)})"
    if isinstance(value, str):
        return f"a string ({_show(value)})"
    if isinstance(value, (list, tuple)):
        return "a list"
    if isinstance(value, Mapping):
        return "a mapping"
    name = type(value).__name__
    return f"an {name}" if name[:1] in "aeiou" else f"a {name}"


def _operand_error(field: str, op: str, expected: str, value: Any, hint: str = "") -> QueryError:
    message = f"operator '{op}' needs {expected}, got {_describe(value)}"
    if hint:
        message += f"; {hint}"
    return QueryError(message, (field, op))


def _is_number(value: Any) -> bool:
    return isinstance(value, _NUMBER_TYPES) and not isinstance(value, bool)


def _order_test(field: str, op: str, x: Any) -> Test:
    if isinstance(x, str):
        x = str(x)
        if op == "lt":
            return lambda v: isinstance(v, str) and v < x
        if op == "lte":
            return lambda v: isinstance(v, str) and v <= x
        if op == "gt":
            return lambda v: isinstance(v, str) and v > x
        return lambda v: isinstance(v, str) and v >= x
    if _is_number(x):
        if isinstance(x, float) and math.isnan(x):
            raise _operand_error(field, op, "a number or a string", x, "NaN compares with nothing")
        nums = _NUMBER_TYPES
        if op == "lt":
            return lambda v: isinstance(v, nums) and v is not True and v is not False and v < x
        if op == "lte":
            return lambda v: isinstance(v, nums) and v is not True and v is not False and v <= x
        if op == "gt":
            return lambda v: isinstance(v, nums) and v is not True and v is not False and v > x
        return lambda v: isinstance(v, nums) and v is not True and v is not False and v >= x
    hint = ""
    if hasattr(x, "isoformat") and not isinstance(x, str):
        hint = "quote dates and times in YAML to compare them as strings"
    raise _operand_error(field, op, "a number or a string", x, hint)


def _compile_operator(field: str, op: str, x: Any) -> Test:
    """Check operator ``op``'s operand ``x`` (for field ``field``) and compile it."""
    if op == "eq":
        return _eq_test(x)
    if op == "ne":
        return _ne_test(x)
    if op in ("lt", "lte", "gt", "gte"):
        return _order_test(field, op, x)
    if op in ("in", "nin"):
        if not isinstance(x, (list, tuple)):
            hint = f"write [{_show(x)}] to test a single value" if not isinstance(x, Mapping) else ""
            raise _operand_error(field, op, "a list", x, hint)
        test = _in_test(x)
        if op == "in":
            return test
        return lambda v: not test(v)
    if op == "exists":
        if not isinstance(x, bool):
            raise _operand_error(field, op, "true or false", x)
        if x:
            return lambda v: v is not _MISSING
        return lambda v: v is _MISSING
    if op == "prefix":
        if not isinstance(x, str):
            raise _operand_error(field, op, "a string", x)
        prefix = str(x)
        return lambda v: isinstance(v, str) and v.startswith(prefix)
    raise AssertionError(f"unhandled operator {op!r}")  # pragma: no cover - OPERATORS is closed


# Spellings people reach for, keyed by their normalised form (see `_normalise`).
_ALIASES: dict[str, str] = {
    "=": "eq", "==": "eq", "===": "eq", "equal": "eq", "equals": "eq", "is": "eq", "eql": "eq",
    "!=": "ne", "<>": "ne", "!==": "ne", "neq": "ne", "not": "ne", "isnot": "ne",
    "notequal": "ne", "notequals": "ne",
    "<": "lt", "less": "lt", "lessthan": "lt", "below": "lt",
    "<=": "lte", "le": "lte", "lessorequal": "lte", "lessthanorequal": "lte", "atmost": "lte",
    ">": "gt", "greater": "gt", "greaterthan": "gt", "above": "gt",
    ">=": "gte", "ge": "gte", "greaterorequal": "gte", "greaterthanorequal": "gte", "atleast": "gte",
    "oneof": "in", "anyof": "in", "isin": "in", "within": "in",
    "notin": "nin", "noneof": "nin", "notoneof": "nin",
    "exist": "exists", "has": "exists", "present": "exists", "defined": "exists", "isset": "exists",
    "startswith": "prefix", "startwith": "prefix", "startingwith": "prefix", "beginswith": "prefix",
    "beginwith": "prefix", "begins": "prefix", "starts": "prefix",
}  # fmt: skip


def _normalise(name: str) -> str:
    return "".join(ch for ch in name.lower() if ch not in "$_- ")


def _suggest(name: str) -> tuple[str | None, bool]:
    """Return ``(operator, confident)`` for an unknown operator name, or ``(None, False)``."""
    norm = _normalise(name)
    if norm in OPERATORS:
        return norm, True
    if norm in _ALIASES:
        return _ALIASES[norm], True
    close = difflib.get_close_matches(norm, [*OPERATORS, *_ALIASES], n=1, cutoff=0.7)
    if close:
        return _ALIASES.get(close[0], close[0]), False
    return None, False


def _unknown_operator(field: str, key: Any) -> QueryError:
    name = key if isinstance(key, str) else _show(key)
    nested = f"{field}.{key}" if isinstance(key, str) and key else None
    suggestion, confident = _suggest(key) if isinstance(key, str) else (None, False)
    message = f"unknown operator '{name}'"
    if suggestion and confident:
        message += f" (did you mean '{suggestion}'?)"
    elif suggestion:
        message += f" (did you mean '{suggestion}'?"
        message += f" or, to match a nested field, use '{nested}')" if nested else ")"
    else:
        message += f" (operators are {', '.join(OPERATORS)}"
        message += f"; to match a nested field use '{nested}')" if nested else ")"
    return QueryError(message, (field, str(name)))


# --------------------------------------------------------------------------------------------
# Field access


def _split_field(key: Any) -> tuple[str, ...]:
    """Check a field path and split it on dots."""
    if not isinstance(key, str):
        hint = "; quote it" if isinstance(key, (bool, int, float)) or key is None else ""
        raise QueryError(f"field names must be strings, got {_describe(key)}{hint}", (_show(key),))
    if not key:
        raise QueryError("field name must not be empty", ("",))
    parts = tuple(key.split("."))
    if "" in parts:
        raise QueryError(
            f"field name '{key}' has an empty segment; write dots only between names (like 'a.b')",
            (key,),
        )
    return parts


def _walk(doc: Any, parts: tuple[str, ...]) -> Any:
    """The value at ``parts`` inside ``doc``, or `_MISSING` when absent."""
    cur = doc
    for part in parts:
        if isinstance(cur, dict):
            cur = cur.get(part, _MISSING)
            if cur is _MISSING:
                return _MISSING
        elif isinstance(cur, Mapping):
            try:
                cur = cur[part]
            except KeyError:
                return _MISSING
        else:
            return _MISSING
    return cur


def _field_predicate(parts: tuple[str, ...], tests: list[Test]) -> Test:
    """Bind the field access and the operator tests of one query entry into one closure."""
    if len(tests) == 1:
        test = tests[0]
    else:
        all_tests = tuple(tests)

        def test(v: Any) -> bool:
            for t in all_tests:  # noqa: SIM110 - a plain loop avoids all()'s generator per call
                if not t(v):
                    return False
            return True

    if len(parts) == 1:
        key = parts[0]

        def predicate(doc: Any) -> bool:
            if doc.__class__ is dict:
                return test(doc.get(key, _MISSING))
            return test(_walk(doc, parts))

        return predicate

    if len(parts) == 2:
        outer, inner = parts

        def predicate2(doc: Any) -> bool:
            if doc.__class__ is dict:
                sub = doc.get(outer, _MISSING)
                if sub.__class__ is dict:
                    return test(sub.get(inner, _MISSING))
                if sub is _MISSING:
                    return test(_MISSING)
            return test(_walk(doc, parts))

        return predicate2

    return lambda doc: test(_walk(doc, parts))


def _always(doc: Any) -> bool:
    return True


# --------------------------------------------------------------------------------------------
# The public class


class Query:
    """A compiled query: check the spec once, then test documents cheaply.

    Build one with `Query.compile` (or ``Query(spec)``); test a document with `matches` or by
    calling the query. The original spec is kept in `spec`.
    """

    __slots__ = ("_match", "_predicates", "spec")

    spec: Mapping[str, Any]
    """The mapping the query was compiled from (``{}`` for ``None``)."""

    def __init__(self, spec: Mapping[str, Any] | None = None) -> None:
        """Compile ``spec``; raise `QueryError` if it is malformed (see the module docstring)."""
        if spec is None:
            spec = {}
        if not isinstance(spec, Mapping):
            raise QueryError(
                f"a query must be a mapping of field paths to conditions, got {_describe(spec)}", ()
            )
        predicates: list[Test] = []
        for key, condition in spec.items():
            parts = _split_field(key)
            predicates.append(_field_predicate(parts, _compile_condition(key, condition)))
        self.spec = spec
        self._predicates: tuple[Test, ...] = tuple(predicates)
        if not predicates:
            self._match: Test = _always
        elif len(predicates) == 1:
            self._match = predicates[0]
        else:
            self._match = self._match_all

    @classmethod
    def compile(cls, spec: Mapping[str, Any] | Query | None) -> Query:
        """Check and compile a query spec (a mapping, or ``None`` for "match everything").

        A `Query` is returned unchanged. Raises `QueryError` with the path of the offending node.
        """
        if isinstance(spec, Query):
            return spec
        return cls(spec)

    def _match_all(self, doc: Any) -> bool:
        for predicate in self._predicates:  # noqa: SIM110 - hot path, no generator
            if not predicate(doc):
                return False
        return True

    @property
    def predicate(self) -> Test:
        """The compiled test itself: the fastest way to match many documents in a loop."""
        return self._match

    def matches(self, doc: Any) -> bool:
        """Whether ``doc`` (usually a mapping) satisfies every entry of the query. Never raises."""
        return self._match(doc)

    def __call__(self, doc: Any) -> bool:
        """Same as `matches`."""
        return self._match(doc)

    def __repr__(self) -> str:
        return f"Query({self.spec!r})"


def _compile_condition(field: str, condition: Any) -> list[Test]:
    """Compile the value of one query entry: a literal or a mapping of operators."""
    if not isinstance(condition, Mapping):
        return [_eq_test(condition)]
    if not condition:
        raise QueryError(
            'no operators given (for example {"exists": true}; to match an empty mapping write {"eq": {}})',
            (field,),
        )
    tests: list[Test] = []
    for op, operand in condition.items():
        if op not in OPERATORS:
            raise _unknown_operator(field, op)
        tests.append(_compile_operator(field, op, operand))
    return tests


# --------------------------------------------------------------------------------------------
# JSON Schema, for editors

QUERY_JSON_SCHEMA: dict[str, Any] = {
    "$schema": "https://json-schema.org/draft/2020-12/schema",
    "title": "Leo query",
    "description": (
        "Every entry must hold (AND). Keys are field paths ('a.b' for nesting). A value is a "
        "literal (equality) or a mapping of operators: eq ne lt lte gt gte in nin exists prefix."
    ),
    "type": "object",
    "propertyNames": {
        "type": "string",
        "minLength": 1,
        "pattern": r"^[^.]+(\.[^.]+)*$",
        "description": "A field path: names separated by single dots.",
    },
    "additionalProperties": {"$ref": "#/$defs/condition"},
    "examples": [{"warehouse": "NYC", "quantity": {"lt": 5}, "status": {"in": ["active", "backorder"]}}],
    "$defs": {
        "literal": {
            "description": "Equality with this value (booleans never equal numbers).",
            "not": {"type": "object"},
        },
        "comparable": {
            "description": "Numbers compare with numbers, strings with strings.",
            "type": ["number", "string"],
        },
        "operators": {
            "type": "object",
            "minProperties": 1,
            "additionalProperties": False,
            "properties": {
                "eq": {"description": "Equal to this value."},
                "ne": {"description": "Absent, or not equal to this value."},
                "lt": {"$ref": "#/$defs/comparable", "description": "Less than."},
                "lte": {"$ref": "#/$defs/comparable", "description": "Less than or equal."},
                "gt": {"$ref": "#/$defs/comparable", "description": "Greater than."},
                "gte": {"$ref": "#/$defs/comparable", "description": "Greater than or equal."},
                "in": {"type": "array", "description": "Equal to one of these values."},
                "nin": {"type": "array", "description": "Absent, or equal to none of these."},
                "exists": {
                    "type": "boolean",
                    "description": "true: present (even if null); false: absent.",
                },
                "prefix": {"type": "string", "description": "A string starting with this."},
            },
        },
        "condition": {
            "anyOf": [{"$ref": "#/$defs/literal"}, {"$ref": "#/$defs/operators"}],
        },
    },
}
"""A JSON Schema (draft 2020-12) describing a query, for editors and `leo validate`."""
