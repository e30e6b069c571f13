"""What a test expects, checked against what the bots did; a miss says what, where and shows both.

Payloads compare as JSON (booleans equal only booleans, ``1`` equals ``1.0``). ``equals`` is
exact, in order unless ``ordered: false``. ``contains`` lists mappings that must each be a
subset of a distinct payload (nested mappings are subsets too; lists must match item by item),
in any order unless ``ordered: true``.
"""

from __future__ import annotations

import difflib
import json
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from ..config.models import time_text
from ..query import json_equal
from ..store.base import DeadLetterInfo
from .spec import Case, Expect, Expectation

SHOWN_ITEMS = 20
"""Items of a list a miss shows before it says how many more there are."""

_NOUNS = {"queue": "event", "calls": "call", "batches": "record", "error": "error"}


@dataclass
class Observed:
    """What a test saw of one expectation's subject: its payloads (a queue's events, a
    recorder's calls, a batch's records), the dead letters among them, the batches sealed."""

    items: list[Any]
    dead_letters: list[DeadLetterInfo | None] = field(default_factory=list)
    batches: int = 0
    error: str | None = None  # a bot's: why it stopped


@dataclass
class Miss:
    """An expectation that did not hold, located in the test file."""

    file: str
    line: int
    column: int
    message: str
    expected: list[Any] | None = None
    actual: list[Any] | None = None
    diff: list[str] = field(default_factory=list)

    @property
    def where(self) -> str:
        return f"{self.file}:{self.line}:{self.column}"

    def to_dict(self) -> dict[str, Any]:
        return {"file": self.file, "line": self.line, "column": self.column, "message": self.message,
                "expected": self.expected, "actual": self.actual}


def jsonable(value: Any) -> Any:
    """A value from YAML as JSON has it: dates and times (YAML reads unquoted ones so) as text."""
    if isinstance(value, dict):
        return {str(key): jsonable(item) for key, item in value.items()}
    if isinstance(value, list):
        return [jsonable(item) for item in value]
    return time_text(value)


def subset(expected: Any, actual: Any) -> bool:
    """Whether `actual` holds `expected`: every key of a mapping (recursively), every item of a
    list in place (same length), any other value equal."""
    if isinstance(expected, dict):
        return isinstance(actual, dict) and all(key in actual and subset(value, actual[key])
                                                for key, value in expected.items())
    if isinstance(expected, list):
        return isinstance(actual, list) and len(expected) == len(actual) and all(
            subset(item, other) for item, other in zip(expected, actual, strict=True))
    return json_equal(expected, actual)


def one_line(value: Any) -> str:
    """A payload on one line, keys sorted (so two of them line up in a diff)."""
    return json.dumps(value, sort_keys=True, ensure_ascii=False, separators=(", ", ": "), default=str)


def check(case: Case, expect: Expect, observed: Observed) -> list[Miss]:
    """The misses of one expectation (empty when it holds)."""
    spec = expect.spec
    noun = _NOUNS[expect.kind]
    items = observed.items
    misses: list[Miss] = []
    name = expect.name

    def miss(key: str | tuple, message: str, *, expected: list[Any] | None = None, diff: Sequence[str] = (),
             at: str = "key") -> None:
        path = (*expect.path, *((key,) if isinstance(key, str) else key))
        line, column = case.file.doc.key_position(path) if at == "key" else case.file.doc.value_position(path)
        misses.append(Miss(case.file.shown, line, column, f"{name}: {message}", expected, list(items), list(diff)))

    if spec.error is not None:
        if observed.error is None:
            miss("error", f"expected the bot to fail with an error holding {spec.error!r}; it did not fail")
        elif spec.error not in observed.error:
            miss("error", f"the bot failed with {observed.error!r}, which does not hold {spec.error!r}")
        return misses
    if spec.none and items:
        miss("none", f"expected nothing, got {_count(len(items), noun)}")
    if spec.count is not None and len(items) != spec.count:
        miss("count", f"expected {_count(spec.count, noun)}, got {len(items)}")
    if spec.batches is not None and observed.batches != spec.batches:
        miss("batches", f"expected {_count(spec.batches, 'batch')} sealed, got {observed.batches}")
    if spec.equals is not None:
        wanted = jsonable(spec.equals)
        ordered = spec.ordered is not False
        if not (_equal_in_order(wanted, items) if ordered else _equal_any_order(wanted, items)):
            how = "" if ordered else " (in any order)"
            diff = _diff(wanted, items, sort=not ordered)
            miss("equals", f"the {noun}s differ from equals{how}", expected=wanted, diff=diff)
    elif spec.record:
        miss("record", f"no {noun}s recorded yet: run `leo test --update` to write the actual ones into equals")
    if spec.contains is not None:
        wanted = jsonable(spec.contains)
        missing = _contained_in_order(wanted, items) if spec.ordered else _contained(wanted, items)
        if missing is not None:
            after = " after the ones listed before it" if spec.ordered else ""
            miss(("contains", missing), f"no {noun} contains {one_line(wanted[missing])}{after}", expected=wanted,
                 at="value")
    if spec.dead_letter:
        problem = _dead_letter_problem(spec, observed)
        if problem is not None:
            miss("dead_letter", problem)
    return misses


def _count(number: int, noun: str) -> str:
    plural = "es" if noun.endswith("ch") else "s"
    return f"{number} {noun}{'' if number == 1 else plural}"


def _equal_in_order(expected: list[Any], actual: list[Any]) -> bool:
    return len(expected) == len(actual) and all(json_equal(a, b) for a, b in zip(expected, actual, strict=True))


def _equal_any_order(expected: list[Any], actual: list[Any]) -> bool:
    if len(expected) != len(actual):
        return False
    left = list(actual)
    for item in expected:
        index = next((number for number, other in enumerate(left) if json_equal(item, other)), None)
        if index is None:
            return False
        left.pop(index)
    return True


def _contained_in_order(expected: list[Any], actual: list[Any]) -> int | None:
    """The first expected item with no match after the previous one's (a subsequence), or None."""
    start = 0
    for number, item in enumerate(expected):
        found = next((index for index in range(start, len(actual)) if subset(item, actual[index])), None)
        if found is None:
            return number
        start = found + 1
    return None


def _contained(expected: list[Any], actual: list[Any]) -> int | None:
    """The first expected item that cannot have a payload of its own, or None (a maximum
    matching of expected items to distinct payloads: two alike items need two payloads)."""
    candidates = [[index for index, other in enumerate(actual) if subset(item, other)] for item in expected]
    owner: dict[int, int] = {}  # payload index -> expected item holding it

    def place(item: int, seen: set[int]) -> bool:
        for index in candidates[item]:
            if index in seen:
                continue
            seen.add(index)
            if index not in owner or place(owner[index], seen):
                owner[index] = item
                return True
        return False

    for item in range(len(expected)):
        if not place(item, set()):
            return item
    return None


def _dead_letter_problem(spec: Expectation, observed: Observed) -> str | None:
    if not observed.items:
        return "nothing was set aside"
    wanted = spec.dead_letter if not isinstance(spec.dead_letter, bool) else None
    for number, (payload, info) in enumerate(zip(observed.items, observed.dead_letters, strict=True), start=1):
        label = f"event {number} ({_short(payload)})"
        if info is None:
            return f"{label} was not set aside by a bot (it was written here some other way)"
        if wanted is None:
            continue
        if wanted.bot is not None and info.bot_id != wanted.bot:
            return f"{label} was set aside by bot '{info.bot_id}', not '{wanted.bot}'"
        if wanted.failures is not None and info.failures != wanted.failures:
            return f"{label} was set aside after {_count(info.failures, 'failed run')}, not {wanted.failures}"
        if wanted.error is not None and wanted.error not in info.error:
            return f"{label} was set aside with error {info.error!r}, which does not hold {wanted.error!r}"
    return None


def _short(value: Any, limit: int = 80) -> str:
    text = one_line(value)
    return text if len(text) <= limit else text[: limit - 3] + "..."


def _diff(expected: list[Any], actual: list[Any], *, sort: bool) -> list[str]:
    left = [one_line(item) for item in expected]
    right = [one_line(item) for item in actual]
    if sort:
        left.sort()
        right.sort()
    return list(difflib.unified_diff(left, right, "expected", "actual", lineterm="", n=2))


def shown_items(items: Sequence[Any] | None) -> list[str]:
    """A list as a miss prints it: one payload per line, numbered, the first `SHOWN_ITEMS`."""
    if items is None:
        return []
    lines = [f"{number}. {one_line(item)}" for number, item in enumerate(items[:SHOWN_ITEMS], start=1)]
    if len(items) > SHOWN_ITEMS:
        lines.append(f"... and {len(items) - SHOWN_ITEMS} more")
    return lines
