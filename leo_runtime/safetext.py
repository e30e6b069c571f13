"""What may be shown of a value in a message or log line: short, and without passwords.

Messages quote what the user wrote so they can find it, but a quoted value may be huge (a YAML
alias bomb, a 1 MB scalar) or secret (a store URL's password). `shown` quotes a value cut to a
readable length; `redact_urls` hides the password of every ``scheme://user:password@host`` in a
text; `bounded` cuts any text (a whole message, a log line) to a maximum length.

Text from outside (a callback's answer, object data, a partner's name, a bot's error) may hold
terminal controls: ESC sequences that retitle the window, clear the screen or colour what
follows, a CR that overwrites a line, bidi overrides that reorder it. `printable` is the one
place that escapes them: every CLI view and every log line shows text through it.
"""

from __future__ import annotations

import re
from typing import Any

__all__ = ["MAX_LINE", "MAX_SHOWN", "bounded", "printable", "redact_urls", "shown"]

MAX_SHOWN = 80  # characters of a quoted value inside a message
MAX_LINE = 2000  # characters of one message or log line

_AUTHORITY_END = re.compile(r"[\s/?#'\"]")

# Controls a terminal acts on or that hide what a line says: C0 but tab and newline, DEL, C1
# (U+0080-U+009F: 8-bit CSI and friends), bidi marks, embeddings, overrides and isolates, and the
# line/paragraph separators. Inside JSON text C0 is escaped already (and tab, newline and CR may
# be whitespace between tokens), so only the others are.
_BIDI_AND_SEPARATORS = "\u061c\u200e\u200f\u2028\u2029\u202a-\u202e\u2066-\u2069"
_UNSAFE = re.compile(f"[\x00-\x08\x0b-\x1f\x7f-\x9f{_BIDI_AND_SEPARATORS}]")
_UNSAFE_IN_JSON = re.compile(f"[\x7f-\x9f{_BIDI_AND_SEPARATORS}]")


def printable(text: str, *, json: bool = False) -> str:
    r"""`text` as it may reach a terminal or a log: every control character escaped.

    ``\x1b`` for ESC and the other C0/C1 controls, ``\u202e`` for bidi controls and separators;
    tab and newline stay (log lines indent what follows a newline, see `leo_runtime.logs`).
    ``json=True`` is for JSON text: only what JSON leaves raw is escaped, as ``\u009b``, so
    valid JSON stays valid JSON with the same value.
    """
    pattern = _UNSAFE_IN_JSON if json else _UNSAFE
    if pattern.search(text) is None:  # the common case: nothing to do, no copy
        return text
    return pattern.sub(_json_escape if json else _escape, text)


def _escape(match: re.Match[str]) -> str:
    code = ord(match.group())
    return f"\\x{code:02x}" if code < 0x100 else f"\\u{code:04x}"


def _json_escape(match: re.Match[str]) -> str:
    return f"\\u{ord(match.group()):04x}"


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
