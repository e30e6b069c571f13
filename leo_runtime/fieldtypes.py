"""Declared field types of an object type, and casting objects to them as they come in.

``object_types: {inventory: {key: sku, fields: {quantity: integer, price: number, active:
boolean}}}``: every source (and ingest) casts those fields, so a CSV's ``"2"`` arrives as ``2``
and a filter's ``quantity: {lt: 5}`` sees a number. A value that does not cast is the input's
located error (``data/inventory.csv:3: field 'quantity': 'lots' is not an integer ...``): nothing
of that read is applied, never an object silently dropped or kept as text.

What casts (a null, and an empty text for a type other than string, is kept as null):

- ``integer``: an integer; a number without a fraction (``2.0``); text holding one (``" 42 "``).
- ``number``: any number; text holding one (``"2.5"``, ``"1e3"``; not ``nan`` or ``inf``).
- ``boolean``: true/false; ``0``/``1``; text ``true``/``false``, ``yes``/``no``, ``1``/``0``
  (any case).
- ``string``: text; a number or boolean as its JSON text (``7`` gives ``"7"``).

Anything else (a list or a mapping, a boolean where a number is declared) is an error.
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping
from typing import Any, Literal

from .errors import ObjectInputError
from .safetext import shown

FieldType = Literal["string", "integer", "number", "boolean"]
FIELD_TYPES: tuple[str, ...] = ("string", "integer", "number", "boolean")

_INTEGER = re.compile(r"^[+-]?\d+$", re.ASCII)
_NUMBER = re.compile(r"^[+-]?(?:\d+\.?\d*|\.\d+)(?:[eE][+-]?\d+)?$", re.ASCII)
_TRUE = frozenset(("true", "yes", "1"))
_FALSE = frozenset(("false", "no", "0"))
_ARTICLES = {"integer": "an integer", "number": "a number", "boolean": "a boolean", "string": "text"}
_UNCHANGED: Any = object()


class FieldCaster:
    """Casts the declared fields of one object type (see the module docstring)."""

    __slots__ = ("fields", "object_type", "signature")

    def __init__(self, object_type: str, fields: Mapping[str, str]) -> None:
        self.object_type = object_type
        self.fields = dict(fields)
        self.signature = ",".join(f"{name}:{kind}" for name, kind in sorted(self.fields.items())).encode()

    def __call__(self, value: dict[str, Any], where: str) -> dict[str, Any]:
        """`value` with its declared fields cast (`value` itself when nothing changed);
        `ObjectInputError` located at `where` for a value that does not cast."""
        changed: dict[str, Any] | None = None
        for name, kind in self.fields.items():
            if name not in value:
                continue
            cast = _cast(value[name], kind)
            if cast is _UNCHANGED:
                continue
            if cast is _FAILED:
                raise ObjectInputError(
                    f"field '{name}': {shown(value[name])} is not {_ARTICLES[kind]} (object_types.{self.object_type}"
                    f".fields says {kind}); fix the input, or change the field's type", where,
                )
            if changed is None:
                changed = dict(value)
            changed[name] = cast
        return value if changed is None else changed


_FAILED: Any = object()


def _cast(value: Any, kind: str) -> Any:
    """The cast value, `_UNCHANGED` when it already has the type, or `_FAILED`."""
    if value is None:
        return _UNCHANGED
    value_type = type(value)
    if kind == "string":
        if value_type is str:
            return _UNCHANGED
        if value_type is bool:
            return "true" if value else "false"
        if value_type is int or (value_type is float and math.isfinite(value)):
            return repr(value)
        return _FAILED
    if value_type is str:
        text = value.strip()
        if not text:
            return None  # an empty cell: no value
        return _from_text(text, kind)
    if kind == "integer":
        if value_type is int:
            return _UNCHANGED
        if value_type is float and value.is_integer():
            return int(value)
        return _FAILED
    if kind == "number":
        return _UNCHANGED if value_type in (int, float) else _FAILED
    if value_type is bool:
        return _UNCHANGED
    if value_type is int and value in (0, 1):
        return value == 1
    return _FAILED


def _from_text(text: str, kind: str) -> Any:
    if kind == "integer":
        if _INTEGER.match(text):
            return int(text)
        if _NUMBER.match(text):
            number = float(text)
            if math.isfinite(number) and number.is_integer():
                return int(number)
        return _FAILED
    if kind == "number":
        if _INTEGER.match(text):
            return int(text)
        if _NUMBER.match(text):
            number = float(text)
            return number if math.isfinite(number) else _FAILED
        return _FAILED
    lowered = text.lower()
    if lowered in _TRUE:
        return True
    if lowered in _FALSE:
        return False
    return _FAILED


def caster_for(config: Any, object_type: str) -> FieldCaster | None:
    """The caster of an object type declared in `config` (a `Config` or its `PipelinesFile`
    model), None when it declares no fields."""
    model = getattr(config, "model", config)
    declared = getattr(model, "object_types", None) or {}
    type_config = declared.get(object_type)
    fields = getattr(type_config, "fields", None)
    return FieldCaster(object_type, fields) if fields else None


def json_type(value: Any) -> str | None:
    """The field type a literal of a query has (None for null, lists and mappings)."""
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, int):
        return "integer"
    if isinstance(value, float):
        return "number"
    if isinstance(value, str):
        return "string"
    return None


def comparable(declared: str, literal: str) -> bool:
    """Whether a value of the declared type can equal or order against a literal of that type."""
    numeric = ("integer", "number")
    return declared == literal or (declared in numeric and literal in numeric)


_ORDERING = ("eq", "ne", "lt", "lte", "gt", "gte")


def query_type_problems(
    spec: Mapping[str, Any], fields: Mapping[str, str], object_type: str
) -> list[tuple[tuple[Any, ...], str]]:
    """Where a query compares a declared field with a value of another type, which never
    matches: (the path inside the query, what is wrong and how to fix it)."""
    found: list[tuple[tuple[Any, ...], str]] = []
    for field_path, condition in spec.items():
        kind = fields.get(field_path)
        if kind is None:
            continue

        def check(path: tuple[Any, ...], literal: Any, *, field_path: str = field_path, kind: str = kind) -> None:
            literal_type = json_type(literal)
            if literal_type is None or comparable(kind, literal_type):
                return
            cast = _cast(literal, kind) if literal_type == "string" or kind == "string" else _FAILED
            fix = f"write {_json(literal if cast is _UNCHANGED else cast)}" if cast is not _FAILED else (
                f"compare it with {_ARTICLES[kind]}")
            found.append((path, f"field '{field_path}' is {_ARTICLES[kind]} (object_types.{object_type}.fields), but the "
                                f"query compares it with {_ARTICLES[literal_type]} {shown(literal)}, which never matches; "
                                f"{fix}"))

        if isinstance(condition, dict):
            for operator, operand in condition.items():
                if operator in _ORDERING:
                    check((field_path, operator), operand)
                elif operator in ("in", "nin") and isinstance(operand, list):
                    for index, item in enumerate(operand):
                        check((field_path, operator, index), item)
                elif operator == "prefix" and kind != "string":
                    found.append(((field_path, operator), f"field '{field_path}' is {_ARTICLES[kind]} "
                                  f"(object_types.{object_type}.fields): prefix matches only text, so this never matches"))
        else:
            check((field_path,), condition)
    return found


def _json(value: Any) -> str:
    import json

    return json.dumps(value)
