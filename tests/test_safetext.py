"""What messages may show of a value: short, and never a URL's password."""

from __future__ import annotations

import json

import pytest

from leo_runtime.safetext import bounded, printable, redact_urls, shown


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("postgresql://leo:pa55@db/leo", "postgresql://leo:***@db/leo"),
        ("store 'sqlite://u:p@ss@h/x.db': bad", "store 'sqlite://u:***@h/x.db': bad"),  # an unescaped '@'
        ("a://b:c@d e://f:g@h", "a://b:***@d e://f:***@h"),
        ("x http://:token@h/", "x http://:***@h/"),
        ("http://host:8080/path@x", "http://host:8080/path@x"),  # a port, not a password
        ("redis://user@h", "redis://user@h"),
        ("no url: a:b@c", "no url: a:b@c"),
    ],
)
def test_url_passwords_are_hidden(text: str, expected: str) -> None:
    assert redact_urls(text) == expected


def test_huge_text_is_handled_in_one_pass() -> None:
    text = "a" * 1_000_000 + "://" * 100_000 + "u:secret@h"
    assert "secret" not in redact_urls(text)


def test_shown_cuts_values_and_never_expands_shared_ones() -> None:
    assert shown("x" * 200) == "'" + "x" * 79 + "..."
    level = ["lol"] * 9
    for _ in range(9):  # 387 million strings if written out
        level = [level] * 9
    assert len(shown(level)) <= 83
    # A cut never splits a password from its URL.
    assert shown("postgresql://leo:" + "p" * 200 + "@db/leo") == "'postgresql://leo:***@db/leo'"


def test_bounded_says_how_much_is_left_out() -> None:
    assert bounded("y" * 3000) == "y" * 2000 + "... (1000 more characters)"
    assert bounded("short") == "short"


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("plain text, tabs\tand\nnewlines stay", "plain text, tabs\tand\nnewlines stay"),
        ("\x1b]0;title\x07\x1b[2J", "\\x1b]0;title\\x07\\x1b[2J"),
        ("over\rwrite\x08\x00\x7f", "over\\x0dwrite\\x08\\x00\\x7f"),
        ("8-bit \x9b31m \x85", "8-bit \\x9b31m \\x85"),
        ("\u202egnp.exe \u2066x\u2069 \u200f \u2028", "\\u202egnp.exe \\u2066x\\u2069 \\u200f \\u2028"),
        ("Grüße, 東京, emoji 🎉", "Grüße, 東京, emoji 🎉"),
    ],
)
def test_printable_escapes_every_terminal_control(text: str, expected: str) -> None:
    assert printable(text) == expected


def test_printable_json_keeps_json_valid_with_the_same_value() -> None:
    value = {"name": "\x1b[2J\u009b\u202e\u2028 ok", "n": 1}
    text = json.dumps(value, ensure_ascii=False)
    shown = printable(text, json=True)
    assert shown.isprintable() and json.loads(shown) == value
    assert printable('{"a": "plain"}', json=True) == '{"a": "plain"}'
