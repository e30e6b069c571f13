"""YAML syntax errors in an integrator's words.

PyYAML says what its parser expected (``expected <block end>, but found '<block mapping
start>'``); a person editing pipelines.yaml needs what is wrong with the line and how to fix it
(``'source:' is indented 6 spaces, which lines it up with none of the keys above it ...``).
`plain_words` turns the common classes into such messages, located where the fix goes; any
other error keeps PyYAML's wording.
"""

from __future__ import annotations

import re

import yaml

Position = tuple[int, int]

_CLOSERS = {"{": "}", "[": "]"}
_FLOW_EXPECTED = re.compile(r"expected ',' or '([}\]])', but got '(.*)'")
_ANCESTORS_SHOWN = 4


def plain_words(exc: yaml.MarkedYAMLError, text: str) -> tuple[Position, str] | None:
    """Where to point and what to say for a PyYAML syntax error, or None (keep its wording)."""
    problem, context = exc.problem or "", exc.context or ""
    mark, opened = exc.problem_mark, exc.context_mark
    if mark is None:
        return None
    lines = text.split("\n")
    here = (mark.line + 1, mark.column + 1)
    if problem.startswith("expected <block end>") or problem.startswith("did not find expected key") or (
        problem.startswith("did not find expected '-' indicator")
    ):
        return here, _indentation(lines, mark.line, mark.column)
    if problem == "mapping values are not allowed here":
        column, message = _mapping_value(lines, mark.line, mark.column)
        return (mark.line + 1, column + 1), message
    if problem == "could not find expected ':'" and opened is not None:
        key = _first_word(lines[opened.line][opened.column:])
        words = key.split(None, 1)
        hint = f" (did you mean '{words[0]}: {words[1]}'?)" if len(words) == 2 else ""
        return (opened.line + 1, opened.column + 1), (
            f"invalid YAML: '{key}' has no ':' after it{hint}; a key and its value are written 'key: value' (a line "
            "that goes on the value above must be indented under that value's key)"
        )
    flow = _FLOW_EXPECTED.match(problem)
    if flow is not None and opened is not None:
        closer, got = flow.groups()
        opener = "{" if closer == "}" else "["
        where = f"line {opened.line + 1}, column {opened.column + 1}"
        if got in _CLOSERS.values():
            return here, f"invalid YAML: the '{opener}' at {where} is closed with '{got}': close it with '{closer}'"
        return here, (f"invalid YAML: the '{opener}' at {where} is not closed before this: add the missing '{closer}', "
                      f"or a ',' between its entries")
    if problem == "found unexpected end of stream" and opened is not None and "quoted scalar" in context:
        quote = lines[opened.line][opened.column:opened.column + 1] or '"'
        return (opened.line + 1, opened.column + 1), (
            f"invalid YAML: the {quote} that opens this value is never closed: add the closing {quote}"
        )
    alias = re.match(r"found undefined alias '(.*)'", problem)
    if alias is not None:
        name = alias.group(1)
        return here, f"invalid YAML: no anchor '&{name}' above: define it (key: &{name} VALUE) before using '*{name}'"
    return None


def _indentation(lines: list[str], line: int, column: int) -> str:
    current = lines[line] if line < len(lines) else ""
    word = _first_word(current[column:])
    if re.match(r"-[^\s-]", current[column:]):
        return f"invalid YAML: a list item needs a space after '-': write '- {current[column + 1:].strip()}'"
    above = _ancestors(lines, line)
    shown = ", ".join(f"'{key}' at {_spaces(indent)}" for indent, key in above[:_ANCESTORS_SHOWN])
    fits = f" (the keys above it: {shown})" if shown else ""
    return (f"invalid YAML: '{word}' is indented {_spaces(column)}, which lines it up with none of the keys above "
            f"it{fits}; YAML nests by indentation: indent it exactly like the keys it belongs with")


def _mapping_value(lines: list[str], line: int, column: int) -> tuple[int, str]:
    """Where to point (0-based column) and what to say for a ':' PyYAML did not expect."""
    current = lines[line] if line < len(lines) else ""
    start = len(current) - len(current.lstrip(" "))
    if current.find(":", start) < column:  # a second ': ' on the line: inside the value
        return column, ("invalid YAML: a value cannot hold ': ' unquoted (YAML takes it for another key): quote the "
                        "value, like 'key: \"a: b\"'")
    word = _first_word(current[start:])
    parent = _ancestors(lines, line)[:1]
    if parent:
        indent, key = parent[0]
        return start, (f"invalid YAML: '{word}' is indented more than '{key}' above it, whose value is already given: "
                       f"line it up with '{key}' ({_spaces(indent)}), or remove the value of '{key}' to nest keys under it")
    return start, f"invalid YAML: '{word}' is indented more than the line above it; line it up with the keys it belongs with"


def _spaces(count: int) -> str:
    return f"{count} space{'' if count == 1 else 's'}"


def _ancestors(lines: list[str], line: int) -> list[tuple[int, str]]:
    """The keys the lines above `line` nest under: (indentation of the key, key), nearest first."""
    found: list[tuple[int, str]] = []
    limit = None
    for text in reversed(lines[:line]):
        stripped = text.lstrip(" ")
        if not stripped or stripped.startswith("#"):
            continue
        indent = len(text) - len(stripped)
        if stripped.startswith("- "):  # a list item's key sits after its '- '
            indent += 2
            stripped = stripped[2:].lstrip(" ")
        if limit is not None and indent >= limit:
            continue
        key = _first_word(stripped)
        if key:
            found.append((indent, key))
        limit = indent
        if indent == 0:
            break
    return found


def _previous_content(lines: list[str], line: int) -> tuple[int, str] | None:
    for text in reversed(lines[:line]):
        stripped = text.lstrip(" ")
        if stripped and not stripped.startswith("#"):
            return len(text) - len(stripped), stripped
    return None


def _first_word(text: str) -> str:
    """The key (or first word) a line starts with, as written."""
    text = text.strip()
    if text.startswith("- "):
        text = text[2:].strip()
    match = re.match(r"""("[^"]*"|'[^']*'|[^:#\s]+(?:\s+[^:#\s]+)*)""", text)
    return match.group(1) if match else text[:40]
