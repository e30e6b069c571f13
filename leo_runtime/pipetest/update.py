"""``leo test --update``: the actual payloads written into the expectations marked ``record``.

Only the text of those expectations changes; the rest of the file (comments, spacing, order)
stays as it was, so the change reads well in a diff. An updated expectation holds ``record:
true``, ``equals:`` (one payload per line, as JSON) and the ``ordered`` and ``dead_letter`` it
had; ``count``, ``none`` and ``contains`` are dropped (``equals`` says all they said).
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from ..errors import LeoError
from ..yaml_loader import YamlDocument, load_yaml
from .spec import Expect


@dataclass
class Recorded:
    """What an expectation marked ``record`` saw, to be written into it."""

    expect: Expect
    actual: list[Any]


def updated_text(text: str, doc: YamlDocument, recorded: Sequence[Recorded]) -> str:
    """`text` with each recorded expectation rewritten (see the module docstring)."""
    starts = _line_starts(text)
    edits = []
    for item in recorded:
        span = doc.value_span(item.expect.path)
        if span is None:
            continue
        (start_line, start_column), (end_line, end_column) = span
        key_line, key_column = doc.key_position(item.expect.path)
        start = starts[start_line - 1] + start_column - 1
        end = starts[end_line - 1] + end_column - 1
        if start_line == key_line:  # `queue: {record: true}`: the block goes on the lines below
            indent = key_column - 1 + 2
            block = "\n" + _block(item, indent, first=True)
            while start > 0 and text[start - 1] == " ":  # no blanks left at the end of the key's line
                start -= 1
        else:
            indent = start_column - 1
            block = _block(item, indent, first=False)
        edits.append((start, end, block))
    for start, end, block in sorted(edits, reverse=True):
        text = text[:start] + block + text[end:]
    try:
        load_yaml(text, doc.filename, interpolate=False)
    except LeoError as exc:  # never write a file that no longer reads
        raise LeoError(f"{doc.filename}: --update would break the file ({exc}); nothing was written") from None
    return text


def _block(item: Recorded, indent: int, *, first: bool) -> str:
    pad = " " * indent
    spec = item.expect.spec
    lines = ["record: true"]
    if spec.ordered is not None:
        lines.append(f"ordered: {'true' if spec.ordered else 'false'}")
    if spec.dead_letter is not None:
        value = spec.dead_letter if isinstance(spec.dead_letter, bool) else spec.dead_letter.model_dump(exclude_none=True)
        lines.append(f"dead_letter: {json.dumps(value)}")
    if item.actual:
        lines.append("equals:")
        lines.extend(f"  - {json.dumps(payload, ensure_ascii=False)}" for payload in item.actual)
    else:
        lines.append("equals: []")
    text = "\n".join(pad + line for line in lines)
    return text if first else text[indent:]


def _line_starts(text: str) -> list[int]:
    starts = [0]
    for index, char in enumerate(text):
        if char == "\n":
            starts.append(index + 1)
    starts.append(len(text))
    return starts
