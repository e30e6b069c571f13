"""What may be shown of a value in a message or log line: short, and without passwords.

Messages quote what the user wrote so they can find it, but a quoted value may be huge (a YAML
alias bomb, a 1 MB scalar) or secret (a store URL's password). `shown` quotes a value cut to a
readable length; `redact_urls` hides the password of every ``scheme://user:password@host`` in a
text; `bounded` cuts any text (a whole message, a log line) to a maximum length.
"""

from __future__ import annotations

import re
from typing import Any

__all__ = ["MAX_LINE", "MAX_SHOWN", "bounded", "redact_urls", "shown"]

MAX_SHOWN = 80  # characters of a quoted value inside a message
MAX_LINE = 2000  # characters of one message or log line

_AUTHORITY_END = re.compile(r"[\s/?#'\"]")


def redact_urls(text: str) -> str:
    """`text` with the password of every ``scheme://user:password@host`` in it replaced by ``***``.

    Linear in the length of `text` (it may be a huge log line): each ``://`` is looked at once.
    """
    parts: list[str] = []
    done = 0
    found = text.find("://")
    while found != -1:
        authority_start = found + 3
        end_match = _AUTHORITY_END.search(text, authority_start)
        authority_end = end_match.start() if end_match else len(text)
        at = text.rfind("@", authority_start, authority_end)  # the last '@': passwords may hold one
        colon = text.find(":", authority_start, at) if at != -1 else -1
        if colon != -1:
            parts.append(text[done : colon + 1])
            parts.append("***")
            done = at
        found = text.find("://", max(authority_start, done))
    parts.append(text[done:])
    return "".join(parts)


def bounded(text: str, limit: int = MAX_LINE) -> str:
    """`text` cut to at most about `limit` characters, saying how much was left out.

    Hide passwords (`redact_urls`) before cutting: a cut could split a URL from its '@'."""
    if len(text) <= limit:
        return text
    return f"{text[:limit]}... ({len(text) - limit} more characters)"


def shown(value: Any, limit: int = MAX_SHOWN) -> str:
    """``repr(value)`` for a message: URL passwords hidden, cut to about `limit` characters.

    Containers are cut while they are written out, so a value shared a million times through
    YAML aliases never gets expanded into one huge string.
    """
    text = _short_repr(value, limit + 1)
    if len(text) <= limit:
        return text
    return text[:limit] + "..."


def _short_repr(value: Any, budget: int) -> str:
    """A repr of `value` that stops once it is longer than `budget` characters."""
    if isinstance(value, str):
        return repr(redact_urls(value)[:budget])  # hide first: a cut could split a URL from its '@'
    if isinstance(value, bytes):
        return repr(value[:budget])
    if isinstance(value, dict):
        opening, closing, items = "{", "}", (f"{_short_repr(k, budget)}: {_short_repr(v, budget)}" for k, v in value.items())
    elif isinstance(value, list | tuple):
        opening, closing, items = "[", "]", (_short_repr(item, budget) for item in value)
    else:
        text = repr(value)
        return text[: budget + 1]
    parts: list[str] = []
    length = 1
    for item in items:
        parts.append(item)
        length += len(item) + 2
        if length > budget:
            break
    return opening + ", ".join(parts) + closing
