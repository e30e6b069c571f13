"""The log of `leo run`: control characters escaped, no forged lines, floods at a bounded rate."""

from __future__ import annotations

import io
import json
import logging
import sys

import pytest

from leo_runtime.logs import JsonLogFormatter, RepeatLimitingHandler, TextLogFormatter


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def record(message: str, *args: object, name: str = "uvicorn.error", level: int = logging.WARNING,
           exc_info: object = None) -> logging.LogRecord:
    return logging.LogRecord(name, level, __file__, 1, message, args, exc_info)  # type: ignore[arg-type]


def handler(clock: Clock) -> tuple[RepeatLimitingHandler, io.StringIO]:
    stream = io.StringIO()
    limiting = RepeatLimitingHandler(stream, burst=5, window=30, clock=clock)
    limiting.setFormatter(logging.Formatter("%(name)s: %(message)s"))
    return limiting, stream


def test_a_flood_of_one_record_is_shown_a_few_times_then_summed_up() -> None:
    clock = Clock()
    limiting, stream = handler(clock)
    for _ in range(1000):
        limiting.handle(record("socket.accept() out of system resource\nsocket: <socket fd=%d>", 7))
    assert stream.getvalue().count("out of system resource") == 5
    clock.now += 31  # the window ends: the next one of its kind brings the summary first
    limiting.handle(record("socket.accept() out of system resource\nsocket: <socket fd=%d>", 8))
    lines = stream.getvalue().splitlines()
    summary = [line for line in lines if "repeated" in line]
    assert summary == ["uvicorn.error: socket.accept() out of system resource ... repeated 995 more time(s) in 30s "
                       "(not shown)"]
    assert stream.getvalue().count("socket: <socket fd=8>") == 1


def test_different_records_are_counted_apart_and_the_summary_comes_when_the_log_closes() -> None:
    clock = Clock()
    limiting, stream = handler(clock)
    for index in range(20):
        limiting.handle(record("Invalid HTTP request received."))
        limiting.handle(record("bot '%s' failed: %s", f"bot-{index % 2}", "boom", name="leo.runtime"))
    text = stream.getvalue()
    assert text.count("Invalid HTTP request received.") == 5
    assert text.count("bot 'bot-0' failed") == 5 and text.count("bot 'bot-1' failed") == 5
    limiting.close()  # at exit: nothing counted is lost
    text = stream.getvalue()
    assert "Invalid HTTP request received. ... repeated 15 more time(s)" in text
    assert "bot 'bot-1' failed: boom ... repeated 5 more time(s)" in text


def test_the_summary_comes_when_the_window_ends_even_if_the_flood_stopped() -> None:
    limiting = RepeatLimitingHandler(io.StringIO(), burst=1, window=0.05, clock=Clock())  # one window, however slow
    stream = limiting.stream
    for _ in range(3):
        limiting.handle(record("Invalid HTTP request received."))
    from .conftest import wait_until

    wait_until(lambda: "repeated 2 more time(s)" in stream.getvalue(), what="the summary")


def test_a_summary_due_after_its_stream_closed_is_dropped_not_reported_as_an_error(
    capsys: pytest.CaptureFixture[str],
) -> None:
    # A CLI run inside another program (tests' CliRunner) closes the stream its handler wrote to;
    # the window's timer fires later and must not print "--- Logging error ---" into whatever
    # stderr is current then.
    limiting = RepeatLimitingHandler(io.StringIO(), burst=1, window=0.05, clock=Clock())
    for _ in range(3):
        limiting.handle(record("Invalid HTTP request received."))
    summary = next(iter(limiting._windows.values())).summary
    limiting.stream.close()
    assert summary is not None
    summary.join(5)
    assert "Logging error" not in capsys.readouterr().err


def test_a_text_log_line_escapes_controls_and_cannot_forge_a_line() -> None:
    formatter = TextLogFormatter("%(levelname)s %(name)s: %(message)s")
    outside = "boom \x1b]0;pwned\x07\x1b[2J\r\u202egnp.exe\n2026-12-01 00:00:00 INFO leo.runtime: all good"
    text = formatter.format(record("bot '%s' failed: %s", "erp", outside, name="leo.runtime", level=logging.ERROR))
    assert not any(ord(char) < 32 and char != "\n" for char in text) and "\u202e" not in text
    assert "\\x1b]0;pwned\\x07\\x1b[2J\\x0d\\u202egnp.exe" in text
    first, second = text.split("\n")
    assert first.startswith("ERROR leo.runtime: bot 'erp' failed: boom") and second.startswith("  2026-12-01")
    try:
        raise RuntimeError("in a traceback \x1b[31m too")
    except RuntimeError:
        with_trace = formatter.format(record("failed", exc_info=sys.exc_info()))
    assert "\x1b" not in with_trace and "\\x1b[31m" in with_trace
    assert with_trace.startswith("WARNING uvicorn.error: failed\n")
    assert all(line.startswith(" ") for line in with_trace.splitlines()[1:])  # the traceback, indented


def test_a_json_log_line_escapes_everything_and_hides_passwords() -> None:
    line = JsonLogFormatter().format(record("callback said %s at %s", "\x1b[2J\u009b\u202e", "http://u:secret@h/x"))
    assert line.isascii() and "secret" not in line
    assert json.loads(line)["message"] == "callback said \x1b[2J\u009b\u202e at http://u:***@h/x"
