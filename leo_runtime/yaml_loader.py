"""Load ``pipelines.yaml`` keeping source positions, with environment interpolation.

`load_yaml` parses one YAML document with PyYAML's safe loader, builds plain Python data from the
node tree (dict / list / str / int / float / bool / None, plus the few other safe scalar types
PyYAML produces such as dates) and remembers where every key and value starts, so validation
can report problems as ``FILE:LINE:COL: message`` (1-based line and column)::

    doc = load_yaml(text, "pipelines.yaml")
    if not isinstance(doc.data.get("pipelines"), dict):
        raise ConfigError(problems=[doc.problem(("pipelines",), "'pipelines' must be a mapping")])

Differences from ``yaml.safe_load``:

* a duplicate key in a mapping is an error (PyYAML silently keeps the last value);
* a file holding several YAML documents is an error;
* every scalar *value* (not mapping keys) is interpolated from the environment:
  ``${VAR}``, ``${VAR:-default}``, ``${VAR-default}``, ``${VAR:?message}``, ``${VAR?message}``
  and ``$$`` for a literal ``$`` (see `interpolate`);
* an unquoted scalar that contained an interpolation is typed again after substitution, so
  ``port: ${PORT:-8765}`` gives the int 8765; quoted scalars stay strings (inside a flow
  collection, ``[...]`` or ``{...}``, a ``${VAR}`` must be quoted anyway: ``{`` ends a plain
  scalar there);
* only standard YAML tags are accepted (``!!set``, ``!!omap``, ``!!pairs`` and custom tags are
  errors);
* the input is bounded: at most `MAX_FILE_SIZE` characters, `MAX_DEPTH` levels of nesting and,
  with every alias expanded, `MAX_VALUES` values and `MAX_TEXT` characters of text (so a file of
  nested aliases, a "billion laughs", is one located error instead of gigabytes downstream);
* values taken from the environment are secrets until proven otherwise: the document knows
  which scalars were interpolated (`YamlDocument.template`) and every problem it makes has
  those values replaced by the variable's name (`YamlDocument.scrub`).

Every problem (syntax error, duplicate key, interpolation error, ...) is reported as a located
`Problem` inside one `ConfigError`; problems found after parsing are all collected, not only the
first.
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import yaml
from yaml.constructor import SafeConstructor
from yaml.nodes import MappingNode, Node, ScalarNode, SequenceNode
from yaml.resolver import Resolver

from leo_runtime.errors import ConfigError, Problem
from leo_runtime.jsonio import MAX_INT, MIN_INT
from leo_runtime.safetext import bounded, redact_urls, shown
from leo_runtime.yaml_words import plain_words

__all__ = [
    "MAX_DEPTH",
    "MAX_FILE_SIZE",
    "MAX_PROBLEMS",
    "MAX_TEXT",
    "MAX_VALUES",
    "YamlDocument",
    "capped",
    "interpolate",
    "load_yaml",
]

# Bounds of one document. A real pipelines.yaml is a few kilobytes; these leave room for large
# generated files while keeping parsing (pure-Python PyYAML) to seconds and memory to megabytes.
MAX_FILE_SIZE = 1024 * 1024  # bytes of a file, characters of a text: a Kubernetes ConfigMap's limit
MAX_DEPTH = 64  # levels of nesting, aliases expanded
MAX_VALUES = 100_000  # scalars, lists and mappings, aliases expanded
MAX_TEXT = 10_000_000  # characters of scalar text, aliases expanded
MAX_PROBLEMS = 100  # problems kept in one ConfigError; the rest are counted
# Environment values shorter than this are not hunted for inside other messages (a value such
# as "1" or "on" would mangle unrelated text); the scalar they fill is still never shown.
_MIN_SCRUBBED = 4

Position = tuple[int, int]
PathElement = str | int

_TAG = "tag:yaml.org,2002:"
_STR_TAG = _TAG + "str"
_MAP_TAG = _TAG + "map"
_SEQ_TAG = _TAG + "seq"
_MERGE_TAG = _TAG + "merge"
_VALUE_TAG = _TAG + "value"
_SCALAR_TAGS = frozenset(
    _TAG + name for name in ("null", "bool", "int", "float", "str", "binary", "timestamp")
)

_NAME_RE = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
_OPERATORS = (":-", ":?", "-", "?")
_FORMS = "${NAME}, ${NAME:-default}, ${NAME-default} or ${NAME:?message}"

_RESOLVER = Resolver()
_MISSING: Any = object()


class Unset(str):
    """A scalar whose ``${VAR}`` names a variable that is not set, kept as written: what
    `load_yaml` gives with ``unset="warn"`` (the commands that run no bots read a file whose
    secrets they do not need; see `leo_runtime.config.loader`)."""


# --------------------------------------------------------------------------------------------
# Public API
# --------------------------------------------------------------------------------------------


class YamlDocument:
    """A loaded YAML document: plain `data` plus the source position of every key and value.

    Positions are 1-based ``(line, column)`` tuples. A *path* is the sequence of mapping keys and
    list indexes leading from the root to a node, e.g. ``("pipelines", "feed", "bots", 1)``.
    Position lookups never raise: for a path that does not exist (completely), they fall back to
    the deepest part of it that does.
    """

    def __init__(
        self, filename: str, data: Any, root: _Pos | None, secrets: Sequence[tuple[str, str]] = ()
    ) -> None:
        """Wrap loaded data; use `load_yaml` rather than building one directly."""
        self.filename = filename
        self.data = data
        self._root = root
        # (variable, value) of every environment value interpolated into the document, longest
        # value first so that a value containing another is replaced whole.
        self._secrets = sorted(
            {(name, value) for name, value in secrets if len(value) >= _MIN_SCRUBBED},
            key=lambda pair: -len(pair[1]),
        )
        self.warnings: list[Problem] = []  # unset variables, with load_yaml(unset="warn")

    def __repr__(self) -> str:
        return f"YamlDocument(filename={self.filename!r}, data={shown(self.data)})"

    def key_position(self, path: Sequence[PathElement]) -> Position:
        """Position of the mapping key named by the last element of `path`.

        When the last element is a list index, the position of that item's value. When the path
        does not exist completely, the key (or list item) of the deepest existing ancestor; when
        not even the first element exists (or the document is empty), ``(1, 1)``.

        For entries pulled in through a merge key (``<<: *defaults``) this is where the entry is
        written in the merged mapping.
        """
        found = self._walk(path)
        return found[-1][0] if found else (1, 1)

    def value_position(self, path: Sequence[PathElement]) -> Position:
        """Position where the value at `path` starts.

        When the path does not exist completely, the start of the deepest existing ancestor's
        value (the root node for an empty path; ``(1, 1)`` for an empty document). A value
        written as an alias (``*name``) is located at the alias; nodes *inside* it are located
        where the anchored node defines them.
        """
        if self._root is None:
            return (1, 1)
        found = self._walk(path)
        return found[-1][1].start if found else self._root.start

    def value_span(self, path: Sequence[PathElement]) -> tuple[Position, Position] | None:
        """Where the value at `path` starts and ends (just past its last character), or None
        when the path does not exist. An alias spans only the ``*name`` written there."""
        found = self._walk(path)
        if len(found) != len(path):
            return None
        node = found[-1][1] if found else self._root
        if node is None:
            return None
        return node.start, node.end or node.start

    def template(self, path: Sequence[PathElement]) -> str | None:
        """The scalar at `path` as written, when it holds a ``${...}`` interpolation; else None.

        Messages about such a value name its template (``${API_TOKEN}``), never its value.
        """
        found = self._walk(path)
        if len(found) != len(path):
            return None
        node = found[-1][1] if found else self._root
        return node.template if node is not None else None

    def origin(self, path: Sequence[PathElement]) -> str:
        """`` (from ${VAR})`` when the value at `path` was interpolated, else ``""``: what a
        message says instead of showing a value that may be a secret."""
        template = self.template(path)
        return _origin(template) if template is not None else ""

    def scrub(self, text: str) -> str:
        """`text` with every environment value interpolated into the document replaced by
        ``${NAME}`` and URL passwords hidden, cut to a readable length."""
        for name, value in self._secrets:
            if value in text:
                text = text.replace(value, f"${{{name}}}")
        return bounded(redact_urls(text))

    def problem(
        self,
        path: Sequence[PathElement],
        message: str,
        severity: str = "error",
        *,
        at: str = "key",
    ) -> Problem:
        """A `Problem` in this file located at `path`'s key (``at="key"``) or value (``at="value"``).

        The message is scrubbed of environment values (see `scrub`).
        """
        if at == "key":
            line, column = self.key_position(path)
        elif at == "value":
            line, column = self.value_position(path)
        else:
            raise ValueError(f"at must be 'key' or 'value', not {at!r}")
        return Problem(self.filename, line, column, self.scrub(message), severity)

    def _walk(self, path: Sequence[PathElement]) -> list[tuple[Position, _Pos]]:
        """The ``(key position, value positions)`` of each existing step of `path`, in order."""
        found: list[tuple[Position, _Pos]] = []
        current = self._root
        for element in path:
            if current is None:
                break
            step: tuple[Position, _Pos] | None = None
            if current.keys is not None:
                try:
                    step = current.keys.get(element)
                except TypeError:  # unhashable path element
                    step = None
            elif (
                current.items is not None
                and isinstance(element, int)
                and not isinstance(element, bool)
                and 0 <= element < len(current.items)
            ):
                item = current.items[element]
                step = (item.start, item)
            if step is None:
                break
            found.append(step)
            current = step[1]
        return found


def load_yaml(
    text: str, filename: str, env: Mapping[str, str] | None = None, *, interpolate: bool = True, unset: str = "error"
) -> YamlDocument:
    """Parse `text` (the contents of `filename`) into a `YamlDocument`.

    `env` is the environment used for ``${VAR}`` interpolation; ``None`` means `os.environ`.
    ``interpolate=False`` takes every scalar as written (test files: their payloads are data).
    An empty document (or one holding only comments) gives ``data`` ``None``.
    ``unset="warn"``: a scalar naming an environment variable that is not set is a warning (in
    ``document.warnings``) and stays as written, an `Unset` string; other problems are errors.

    Raises `ConfigError` with one located `Problem` for a YAML syntax error (or several
    documents in the file) or a document past its bounds (size, nesting, aliases expanded), and
    with every problem found (up to `MAX_PROBLEMS`) for duplicate keys, interpolation errors,
    unsupported tags or recursive aliases.
    """
    environ: Mapping[str, str] = os.environ if env is None else env
    if len(text) > MAX_FILE_SIZE:
        raise ConfigError(
            problems=[
                Problem(
                    filename, 1, 1, f"the file is too big ({len(text):,} characters; at most {MAX_FILE_SIZE:,})"
                )
            ]
        )
    try:
        loader = _Loader(text)  # the reader rejects forbidden characters right away
        try:
            root = loader.get_single_node()
        finally:
            loader.dispose()
    except _LimitExceeded as exc:
        line, column = _position(exc.mark)
        raise ConfigError(problems=[Problem(filename, line, column, exc.message)]) from None
    except yaml.MarkedYAMLError as exc:
        raise ConfigError(problems=[_syntax_problem(exc, filename, text)]) from None
    except yaml.YAMLError as exc:
        raise ConfigError(problems=[_reader_problem(exc, text, filename)]) from None
    if root is None:
        return YamlDocument(filename, None, None)
    builder = _Builder(text, filename, environ, loader.explicit_tags, interpolate=interpolate, unset_ok=unset == "warn")
    data, positions = builder.build(root)
    document = YamlDocument(filename, data, positions, builder.secrets)
    problems = [Problem(p.file, p.line, p.column, document.scrub(p.message), p.severity) for p in builder.problems]
    if any(p.severity == "error" for p in problems):
        raise ConfigError(problems=capped(problems))
    document.warnings = problems
    return document


def capped(problems: Sequence[Problem], limit: int = MAX_PROBLEMS) -> list[Problem]:
    """`problems` sorted by place, at most `limit` of them plus one that counts the rest."""
    ordered = sorted(problems, key=lambda p: (p.line, p.column))
    errors = [p for p in ordered if p.severity == "error"]
    if len(ordered) <= limit:
        return ordered
    kept = (errors + [p for p in ordered if p.severity != "error"])[:limit]
    kept.sort(key=lambda p: (p.line, p.column))
    rest = ordered[len(kept)] if len(kept) < len(ordered) else ordered[-1]
    omitted = len(ordered) - len(kept)
    more = Problem(rest.file, rest.line, rest.column, f"{omitted} more problem(s) not shown; fix the ones above first")
    return [*kept, more]


def interpolate(value: str, env: Mapping[str, str]) -> tuple[str, list[tuple[int, str]]]:
    """Substitute environment variables in `value`.

    Forms (as in POSIX shells and docker compose):

    * ``${VAR}``: the value of VAR; an error when VAR is unset (an empty value is fine);
    * ``${VAR:-default}``: `default` when VAR is unset or empty; ``${VAR-default}``: only when
      unset. The default may itself contain ``${...}`` and is only expanded when used;
    * ``${VAR:?message}``: an error carrying `message` when VAR is unset or empty;
      ``${VAR?message}``: only when unset;
    * ``$$``: a literal ``$``; a ``$`` followed by anything else than ``{`` or ``$`` stays as is.

    Returns the substituted string and the errors as ``(offset of the '$' in value, message)``
    pairs; when there are errors the string is not meaningful.
    """
    result, errors, _ = _interpolate(value, env)
    return result, errors


def _interpolate(value: str, env: Mapping[str, str]) -> tuple[str, list[tuple[int, str]], list[tuple[str, str]]]:
    """`interpolate`, plus the ``(name, value)`` of every environment variable substituted."""
    parser = _Parser(value)
    parts = parser.parse_parts(nested=False)
    errors = list(parser.errors)
    if parser.fatal:
        return value, errors, []
    used: list[tuple[str, str]] = []
    result = _evaluate(parts, env, errors, used)
    return result, errors, used


# --------------------------------------------------------------------------------------------
# Interpolation
# --------------------------------------------------------------------------------------------


@dataclass
class _Var:
    """One ``${NAME<op>word}`` substitution; `offset` is where its ``$`` is in the scalar."""

    name: str
    op: str
    word: list[str | _Var]
    offset: int


class _Parser:
    """Recursive-descent parser for the interpolation syntax, collecting syntax errors."""

    def __init__(self, text: str) -> None:
        self.text = text
        self.pos = 0
        self.errors: list[tuple[int, str]] = []
        self.fatal = False  # an unterminated "${": nothing after it can be parsed

    def parse_parts(self, nested: bool) -> list[str | _Var]:
        """Parse up to the end of the text, or up to (not including) a ``}`` when `nested`."""
        text = self.text
        parts: list[str | _Var] = []
        literal: list[str] = []
        while self.pos < len(text) and not self.fatal:
            char = text[self.pos]
            if nested and char == "}":
                break
            if char != "$":
                literal.append(char)
                self.pos += 1
                continue
            following = text[self.pos + 1 : self.pos + 2]
            if following == "$":
                literal.append("$")
                self.pos += 2
            elif following == "{":
                var = self._parse_var()
                if var is not None:
                    if literal:
                        parts.append("".join(literal))
                        literal = []
                    parts.append(var)
            else:
                literal.append("$")
                self.pos += 1
        if literal:
            parts.append("".join(literal))
        return parts

    def _parse_var(self) -> _Var | None:
        """Parse the ``${...}`` starting at `pos`; on a syntax error record it and return None."""
        text = self.text
        start = self.pos
        match = _NAME_RE.match(text, start + 2)
        if match is not None:
            name = match.group()
            after = match.end()
            if text.startswith("}", after):
                self.pos = after + 1
                return _Var(name, "", [], start)
            for op in _OPERATORS:
                if text.startswith(op, after):
                    self.pos = after + len(op)
                    word = self.parse_parts(nested=True)
                    if self.fatal:
                        return None
                    if self.pos >= len(text):
                        self._unterminated(start)
                        return None
                    self.pos += 1  # the closing "}"
                    return _Var(name, op, word, start)
        close = text.find("}", start + 2)
        if close == -1:
            self._unterminated(start)
            return None
        inner = text[start + 2 : close]
        if match is not None:
            message = f"invalid substitution '${{{inner}}}' (write {_FORMS})"
        elif not inner:
            message = f"empty variable name in '${{}}' (write {_FORMS}; '$$' is a literal '$')"
        else:
            message = (
                f"invalid variable name in '${{{inner}}}' (names are letters, digits and '_', "
                "not starting with a digit)"
            )
        self.errors.append((start, message))
        self.pos = close + 1
        return None

    def _unterminated(self, start: int) -> None:
        self.errors.append((start, "unterminated '${' (missing '}'; write '$$' for a literal '$')"))
        self.fatal = True
        self.pos = len(self.text)


_UNSET_PREFIX = "environment variable "


def _evaluate(
    parts: list[str | _Var],
    env: Mapping[str, str],
    errors: list[tuple[int, str]],
    used: list[tuple[str, str]] | None = None,
) -> str:
    """Expand parsed `parts`, appending ``(offset, message)`` to `errors` for unset variables
    and ``(name, value)`` to `used` for every value taken from `env`."""
    out: list[str] = []
    for part in parts:
        if isinstance(part, str):
            out.append(part)
            continue
        value = env.get(part.name)
        if value is not None and used is not None:
            used.append((part.name, value))
        op = part.op
        if op == "":
            if value is None:
                errors.append(
                    (
                        part.offset,
                        f"{_UNSET_PREFIX}'{part.name}' is not set "
                        f"(write ${{{part.name}:-default}} for a default)",
                    )
                )
            else:
                out.append(value)
        elif op in (":-", "-"):
            use_default = value is None or (op == ":-" and value == "")
            out.append(_evaluate(part.word, env, errors, used) if use_default else value or "")
        else:  # ":?" or "?"
            missing = value is None or (op == ":?" and value == "")
            if missing:
                message = _evaluate(part.word, env, errors, used)
                if message:
                    text = f"{_UNSET_PREFIX}'{part.name}' is required: {message}"
                elif value is None:
                    text = f"{_UNSET_PREFIX}'{part.name}' is required but is not set"
                else:
                    text = f"{_UNSET_PREFIX}'{part.name}' is required but is empty"
                errors.append((part.offset, text))
            else:
                out.append(value or "")
    return "".join(out)


# --------------------------------------------------------------------------------------------
# Parsing and building
# --------------------------------------------------------------------------------------------


@dataclass(eq=False)
class _Pos:
    """Where a value node starts and, for collections, where its children are."""

    start: Position
    keys: dict[Any, tuple[Position, _Pos]] | None = None
    items: list[_Pos] | None = None
    template: str | None = None  # a scalar as written, when it held ${...}
    end: Position | None = None  # just past the value's last character (comments after it excluded)


@dataclass(eq=False)
class _AliasNode:
    """A ``*name`` occurrence: the anchored node plus where the alias itself is written."""

    target: Node
    anchor: str
    start_mark: yaml.Mark


class _LimitExceeded(Exception):
    """The document is past one of its bounds; `mark` is where that became clear."""

    def __init__(self, mark: yaml.Mark, message: str) -> None:
        super().__init__(message)
        self.mark = mark
        self.message = message


class _Loader(yaml.SafeLoader):
    """SafeLoader whose composer keeps alias positions and which scalars had explicit tags, and
    enforces the document's bounds while composing.

    The composer itself never copies an aliased node, but everything downstream (validation,
    messages, comparing pipelines on reload) sees the expanded data: so every node is counted
    with its size *expanded* (an alias counts the whole anchored node again), and composing
    stops at the first alias or node past a bound: linear time, whatever the aliases say.
    """

    def __init__(self, stream: str) -> None:
        super().__init__(stream)
        self.explicit_tags: set[int] = set()
        self._values = 0  # values composed so far, aliases expanded
        self._text = 0  # characters of scalar text so far, aliases expanded
        self._depth = 0
        self._deepest = 0
        self._sizes: dict[int, tuple[int, int, int]] = {}  # id(node) -> (values, text, height)

    def compose_node(self, parent: Node | None, index: Any) -> Any:
        event = self.peek_event()
        if isinstance(event, yaml.AliasEvent):
            node = super().compose_node(parent, index)
            # An anchored node still being composed has no size yet: a recursive alias, which
            # the builder reports.
            values, text, height = self._sizes.get(id(node), (1, 0, 1))
            self._grow(values, text, self._depth + height, event.start_mark)
            return _AliasNode(node, event.anchor, event.start_mark)
        self._depth += 1
        outer_deepest = self._deepest
        self._deepest = self._depth
        before = (self._values, self._text)
        try:
            if self._depth > MAX_DEPTH:
                raise _LimitExceeded(event.start_mark, f"the document is nested deeper than {MAX_DEPTH} levels")
            node = super().compose_node(parent, index)
            height = self._deepest - self._depth + 1
            text = len(node.value) if isinstance(node, ScalarNode) else 0
            self._grow(1, text, self._depth, node.start_mark)
        finally:
            self._depth -= 1
            self._deepest = max(outer_deepest, self._deepest)
        self._sizes[id(node)] = (self._values - before[0], self._text - before[1], height)
        if isinstance(event, yaml.ScalarEvent) and event.tag is not None:
            self.explicit_tags.add(id(node))
        return node

    def _grow(self, values: int, text: int, depth: int, mark: yaml.Mark) -> None:
        self._values += values
        self._text += text
        self._deepest = max(self._deepest, depth)
        if depth > MAX_DEPTH:
            raise _LimitExceeded(mark, f"with its aliases expanded, the document is nested deeper than {MAX_DEPTH} levels")
        if self._values > MAX_VALUES:
            raise _LimitExceeded(
                mark,
                f"too many values: with its aliases expanded, the document holds more than {MAX_VALUES:,} "
                "(nested aliases multiply; write the values out or alias less)",
            )
        if self._text > MAX_TEXT:
            raise _LimitExceeded(
                mark,
                f"too much text: with its aliases expanded, the document holds more than {MAX_TEXT:,} "
                "characters (nested aliases multiply; write the values out or alias less)",
            )


def _origin(template: str) -> str:
    return f" (from {template})" if len(template) <= 60 else f" (from {template[:60]}...)"


def _position(mark: yaml.Mark) -> Position:
    return (mark.line + 1, mark.column + 1)


def _unwrap(node: Any) -> Node:
    return node.target if isinstance(node, _AliasNode) else node


def _short(tag: str) -> str:
    return "!!" + tag[len(_TAG) :] if tag.startswith(_TAG) else tag


class _Builder:
    """Turns a composed node tree into plain data plus `_Pos` trees, collecting problems."""

    def __init__(
        self, text: str, filename: str, env: Mapping[str, str], explicit_tags: set[int], *, interpolate: bool = True,
        unset_ok: bool = False,
    ) -> None:
        self.interpolate = interpolate
        self.unset_ok = unset_ok
        self.text = text
        self.filename = filename
        self.env = env
        self.explicit_tags = explicit_tags
        self.constructor = SafeConstructor()
        self.problems: list[Problem] = []
        self.secrets: list[tuple[str, str]] = []  # (variable, value) taken from the environment
        self._done: dict[int, tuple[Any, _Pos]] = {}
        self._active: set[int] = set()

    def add(self, position: Position, message: str, severity: str = "error") -> None:
        self.problems.append(Problem(self.filename, position[0], position[1], message, severity))

    def build(self, node: Any) -> tuple[Any, _Pos]:
        """Data and positions for any value node (aliases share the anchored node's data)."""
        if isinstance(node, _AliasNode):
            where = _position(node.start_mark)
            if id(node.target) in self._active:
                self.add(where, f"recursive alias '*{node.anchor}' (an anchor cannot contain itself)")
                return None, _Pos(where)
            data, positions = self.build(node.target)
            end = (where[0], where[1] + 1 + len(node.anchor))  # just the `*name` written here
            return data, _Pos(where, positions.keys, positions.items, positions.template, end)
        key = id(node)
        done = self._done.get(key)
        if done is not None:
            return done
        self._active.add(key)
        try:
            if isinstance(node, MappingNode):
                result = self._build_mapping(node)
            elif isinstance(node, SequenceNode):
                result = self._build_sequence(node)
            else:
                result = self._build_scalar(node)
        finally:
            self._active.discard(key)
        self._done[key] = result
        return result

    def _build_sequence(self, node: SequenceNode) -> tuple[Any, _Pos]:
        if node.tag != _SEQ_TAG:
            self.add(_position(node.start_mark), f"unsupported tag '{_short(node.tag)}' on a list")
        data: list[Any] = []
        items: list[_Pos] = []
        for child in node.value:
            value, positions = self.build(child)
            data.append(value)
            items.append(positions)
        return data, _Pos(_position(node.start_mark), items=items, end=_collection_end(node, items))

    def _build_mapping(self, node: MappingNode) -> tuple[Any, _Pos]:
        if node.tag != _MAP_TAG:
            self.add(_position(node.start_mark), f"unsupported tag '{_short(node.tag)}' on a mapping")
        merged: list[tuple[Any, Position, Any, _Pos]] = []
        explicit: list[tuple[Any, Position, Any, _Pos]] = []
        first_seen: dict[Any, Position] = {}
        for key_node, value_node in node.value:
            plain_key = _unwrap(key_node)
            if isinstance(plain_key, ScalarNode) and plain_key.tag == _MERGE_TAG:
                merged.extend(self._merge_entries(value_node))
                continue
            key_at = _position(key_node.start_mark)
            key = self._build_key(key_node)
            if key is _MISSING:
                self.build(value_node)  # still report problems inside the value
                continue
            try:
                first = first_seen.get(key)
            except TypeError:
                self.add(key_at, "unhashable mapping key")
                self.build(value_node)
                continue
            if first is not None:
                self.add(key_at, f"duplicate key {shown(key)} (first at line {first[0]})")
                self.build(value_node)
                continue
            first_seen[key] = key_at
            value, positions = self.build(value_node)
            explicit.append((key, key_at, value, positions))
        data: dict[Any, Any] = {}
        keys: dict[Any, tuple[Position, _Pos]] = {}
        # As in PyYAML: merged entries first, later ones win, explicit keys win over all.
        for key, key_at, value, positions in merged + explicit:
            data[key] = value
            keys[key] = (key_at, positions)
        return data, _Pos(_position(node.start_mark), keys=keys, end=_collection_end(node, [pos for _, pos in keys.values()]))

    def _merge_entries(self, value_node: Any) -> list[tuple[Any, Position, Any, _Pos]]:
        """The entries a ``<<`` key brings in, in PyYAML's order (the last one wins)."""
        target = _unwrap(value_node)
        if isinstance(target, MappingNode):
            sources = [value_node]
        elif isinstance(target, SequenceNode):
            sources = []
            # Earlier mappings in the list take precedence, so they come last.
            for item in reversed(target.value):
                if isinstance(_unwrap(item), MappingNode):
                    sources.append(item)
                else:
                    self.add(_position(item.start_mark), "a merge key '<<' list may only hold mappings")
        else:
            self.add(
                _position(value_node.start_mark),
                "the merge key '<<' needs a mapping or a list of mappings (e.g. '<<: *defaults')",
            )
            return []
        entries: list[tuple[Any, Position, Any, _Pos]] = []
        for source in sources:
            data, positions = self.build(source)
            if not isinstance(data, dict) or positions.keys is None:
                continue
            for key, value in data.items():
                key_at, value_positions = positions.keys[key]
                entries.append((key, key_at, value, value_positions))
        return entries

    def _build_key(self, key_node: Any) -> Any:
        """A mapping key, constructed exactly as PyYAML would (no interpolation)."""
        node = _unwrap(key_node)
        if not isinstance(node, ScalarNode):
            kind = "mapping" if isinstance(node, MappingNode) else "list"
            self.add(_position(key_node.start_mark), f"a mapping key must be a scalar, not a {kind}")
            return _MISSING
        tag = _STR_TAG if node.tag == _VALUE_TAG else node.tag
        return self._construct(node, tag, node.value)

    def _build_scalar(self, node: ScalarNode) -> tuple[Any, _Pos]:
        tag = node.tag
        value = node.value
        positions = _Pos(_position(node.start_mark), end=_position(node.end_mark))
        if "$" in value and self.interpolate:
            value, errors, used = _interpolate(node.value, self.env)
            if errors:
                unset = self.unset_ok and all(message.startswith(_UNSET_PREFIX) for _, message in errors)
                for offset, message in errors:
                    self.add(self._offset_position(node, offset), message, "warning" if unset else "error")
                return (Unset(node.value) if unset else None), positions
            if used or "${" in node.value:
                positions.template = node.value
                self.secrets.extend(used)
            if node.style is None and id(node) not in self.explicit_tags:
                # An unquoted scalar is typed by what it says after substitution; an empty
                # result stays the empty string rather than turning into null.
                tag = _RESOLVER.resolve(ScalarNode, value, (True, False)) if value else _STR_TAG
        if tag in (_MERGE_TAG, _VALUE_TAG):  # a bare "<<" or "=" as a value: just text
            tag = _STR_TAG
        result = self._construct(node, tag, value, positions.template)
        return (None if result is _MISSING else result), positions

    def _construct(self, node: ScalarNode, tag: str, value: str, template: str | None = None) -> Any:
        where = _position(node.start_mark)
        if tag not in _SCALAR_TAGS:
            self.add(where, f"unsupported tag '{_short(tag)}' (only standard YAML types are allowed)")
            return _MISSING
        scalar = ScalarNode(tag, value, node.start_mark, node.end_mark, node.style)
        try:
            result = self.constructor.yaml_constructors[tag](self.constructor, scalar)
            if type(result) is int and not MIN_INT <= result <= MAX_INT:  # one rule with JSON input (jsonio)
                raise ValueError(f"outside 64 bits: leo keeps integers exact from {MIN_INT} to {MAX_INT}; "
                                 "quote larger ones to keep them as strings")
            return result
        except Exception as exc:
            reason = getattr(exc, "problem", None) or str(exc)
            if template is None:
                self.add(where, f"invalid {_short(tag)} value {shown(value)}: {bounded(reason, 200)}")
            else:  # the value came from the environment: name where from, never what
                self.add(where, f"invalid {_short(tag)} value{_origin(template)}")
            return _MISSING

    def _offset_position(self, node: ScalarNode, offset: int) -> Position:
        """Source position of the ``$`` at `offset` in the scalar's value.

        The n-th ``$`` of the value is the n-th ``$`` of the scalar's source text (quotes, escapes
        and line folding never add or remove one) unless an escape such as ``\\x24`` produced
        it; then fall back to the scalar's start.
        """
        start = node.start_mark
        source = self.text[start.index : node.end_mark.index]
        if source.count("$") != node.value.count("$"):
            return _position(start)
        index = -1
        for _ in range(node.value.count("$", 0, offset) + 1):
            index = source.find("$", index + 1)
        absolute = start.index + index
        newlines = self.text.count("\n", start.index, absolute)
        if newlines == 0:
            return (start.line + 1, start.column + index + 1)
        return (start.line + newlines + 1, absolute - self.text.rfind("\n", 0, absolute))


def _collection_end(node: Node, children: Sequence[_Pos]) -> Position:
    """Where a list or mapping ends: after its closing bracket when written in flow style, else
    after its last child (a block's own end mark lies past the comments and blank lines after it)."""
    if node.flow_style or not children:
        return _position(node.end_mark)
    return max(child.end or child.start for child in children)


def _syntax_problem(exc: yaml.MarkedYAMLError, filename: str, text: str = "") -> Problem:
    """A located problem for a PyYAML scanner / parser / composer error (in plain words where
    `yaml_words` knows the class of error)."""
    plain = plain_words(exc, text) if text else None
    if plain is not None:
        (line, column), message = plain
        return Problem(filename, line, column, bounded(message, 500))
    mark = exc.problem_mark or exc.context_mark
    line, column = _position(mark) if mark is not None else (1, 1)
    if (
        isinstance(exc, yaml.composer.ComposerError)
        and exc.context == "expected a single document in the stream"
    ):
        return Problem(
            filename,
            line,
            column,
            "invalid YAML: the file must hold a single YAML document, but another one starts here",
        )
    if exc.problem and "'\\t'" in exc.problem:
        return Problem(filename, line, column, "invalid YAML: a tab cannot indent YAML; use spaces")
    message = f"invalid YAML: {exc.problem or exc.context or 'syntax error'}"
    if exc.problem and exc.context:
        context_mark = exc.context_mark
        if (
            context_mark is not None
            and context_mark is not mark
            and ((context_mark.line, context_mark.column) != (mark.line, mark.column))
        ):
            message += f" ({exc.context} at line {context_mark.line + 1}, column {context_mark.column + 1})"
        else:
            message += f" ({exc.context})"
    return Problem(filename, line, column, bounded(message, 500))


def _reader_problem(exc: yaml.YAMLError, text: str, filename: str) -> Problem:
    """A located problem for an unmarked PyYAML error (e.g. a forbidden control character)."""
    position = getattr(exc, "position", None)
    if isinstance(position, int) and 0 <= position <= len(text):
        line = text.count("\n", 0, position) + 1
        column = position - text.rfind("\n", 0, position)
    else:
        line, column = 1, 1
    reason = getattr(exc, "reason", None)
    character = getattr(exc, "character", None)
    if isinstance(character, str) and len(character) == 1:
        character = ord(character)
    if reason and isinstance(character, int):
        message = f"invalid YAML: {reason} (character U+{character:04X})"
    else:
        message = f"invalid YAML: {reason or exc}"
    return Problem(filename, line, column, bounded(message, 500))
