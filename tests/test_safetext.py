"""What messages may show of a value: short, and never a URL's password."""

from __future__ import annotations

import pytest

from leo_runtime.safetext import bounded, redact_urls, shown


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
