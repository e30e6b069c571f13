"""The log of `leo run`: one handler for leo's loggers, uvicorn's and asyncio's, whose lines are
bounded, never show a URL's password or a raw control character, and come at a bounded rate.

A log line may quote text from outside (a bot's exception, a callback's answer, a reload error
quoting the file): it goes through `safetext.printable`, and a line that follows a newline in
a message is indented, so quoted text can never forge a log line of its own.

A flood of one error (``socket.accept() out of system resource`` once per refused connection,
a protocol error per malformed request) is shown `REPEAT_BURST` times per `REPEAT_WINDOW`
seconds; the rest is counted and summed up in one line when the window ends.
"""

from __future__ import annotations

import json
import logging
import re
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import IO, Any

from .errors import UsageError
from .safetext import bounded, printable, redact_urls
from .timeutil import format_time

MAX_LOG_MESSAGE = 10_000
"""Characters of one message (and of one exception's text) at most: a reload error or a bot's
exception may quote a huge value."""

REPEAT_BURST = 5
"""Records of one kind (logger, level, first line of the message) shown per window."""
REPEAT_WINDOW = 30.0
"""Seconds of a window of `REPEAT_BURST` records; the ones past it are counted, not shown."""

SERVER_LOGGERS = ("uvicorn", "asyncio")
"""Loggers of the HTTP server and the event loop, which `leo run` logs beside its own."""

_LINE_START = re.compile(r"\n(?![ \t])")


def safe(text: str) -> str:
    """A message or exception text as a log shows it: URL passwords hidden, bounded."""
    return bounded(redact_urls(text), MAX_LOG_MESSAGE)


class JsonLogFormatter(logging.Formatter):
    """One JSON object per line (``ensure_ascii``: every control character is escaped)."""

    def format(self, record: logging.LogRecord) -> str:
        entry = {
            "time": format_time(int(record.created * 1000)),
            "level": record.levelname.lower(),
            "logger": record.name,
            "message": safe(record.getMessage()),
        }
        if record.exc_info:
            entry["exception"] = safe(self.formatException(record.exc_info))
        return json.dumps(entry)


class TextLogFormatter(logging.Formatter):
    """``TIME LEVEL LOGGER: message``; controls escaped, continuation lines indented."""

    def format(self, record: logging.LogRecord) -> str:
        return _LINE_START.sub("\n  ", printable(super().format(record)))

    def formatMessage(self, record: logging.LogRecord) -> str:
        return safe(super().formatMessage(record))

    def formatException(self, ei: Any) -> str:
        return safe(super().formatException(ei))


@dataclass
class _Window:
    started: float
    shown: int = 1
    suppressed: int = 0
    summary: threading.Timer | None = None


class RepeatLimitingHandler(logging.StreamHandler):  # type: ignore[type-arg]
    """A stream handler that shows `burst` records of one kind per `window` seconds; the others
    are counted, and when the window ends one line says how many were not shown."""

    def __init__(self, stream: IO[str] | None = None, *, burst: int = REPEAT_BURST, window: float = REPEAT_WINDOW,
                 clock: Callable[[], float] = time.monotonic) -> None:
        super().__init__(stream)
        self.burst = burst
        self.window = window
        self.clock = clock
        self._windows: dict[tuple[str, int, str], _Window] = {}
        self._guard = threading.Lock()

    def handle(self, record: logging.LogRecord) -> bool:  # type: ignore[override]
        if self._admit(record):
            return bool(super().handle(record))
        return False

    def _admit(self, record: logging.LogRecord) -> bool:
        try:
            first_line = record.getMessage().split("\n", 1)[0][:200]
        except Exception:  # a record whose arguments do not fit its format: let logging report it
            return True
        key = (record.name, record.levelno, first_line)
        now = self.clock()
        with self._guard:
            window = self._windows.get(key)
            if window is None or now - window.started >= self.window:
                if window is not None:
                    self._end(key, window)
                if len(self._windows) > 1000:  # kinds seen once long ago: forget them
                    self._forget_before(now - self.window)
                self._windows[key] = _Window(started=now)
                return True
            if window.shown < self.burst:
                window.shown += 1
                return True
            window.suppressed += 1
            if window.summary is None:  # sum up when the window ends, even if the flood stops
                window.summary = threading.Timer(max(window.started + self.window - now, 0), self._summarize, (key,))
                window.summary.daemon = True
                window.summary.start()
            return False

    def _summarize(self, key: tuple[str, int, str]) -> None:
        with self._guard:
            window = self._windows.pop(key, None)
            if window is None:
                return
            window.summary = None
            self._end(key, window)

    def _end(self, key: tuple[str, int, str], window: _Window) -> None:
        """Emit the summary of a window that held suppressed records (the guard is held)."""
        if window.summary is not None:
            window.summary.cancel()
        if window.suppressed and not getattr(self.stream, "closed", False):  # a summary due after its stream
            # closed (a CLI run inside another program, as tests do) is dropped, not reported as an error
            name, level, first_line = key
            summary = logging.LogRecord(name, level, __file__, 0, "%s ... repeated %d more time(s) in %gs (not shown)",
                                        (first_line, window.suppressed, self.window), None)
            super().handle(summary)

    def _forget_before(self, cutoff: float) -> None:
        for key, window in list(self._windows.items()):
            if window.started < cutoff:
                del self._windows[key]
                self._end(key, window)

    def flush_summaries(self) -> None:
        """Sum up every open window now (at exit, so no count is lost)."""
        with self._guard:
            for key, window in list(self._windows.items()):
                self._end(key, window)
            self._windows.clear()

    def close(self) -> None:
        self.flush_summaries()
        super().close()


def setup_logging(level: str, as_json: bool) -> RepeatLimitingHandler:
    """Log leo's records at `level`, and the HTTP server's and event loop's warnings, to stderr
    through one `RepeatLimitingHandler`."""
    numeric = logging.getLevelName(level.upper())
    if not isinstance(numeric, int) or level.upper() not in ("DEBUG", "INFO", "WARNING", "ERROR"):
        raise UsageError(f"--log-level must be debug, info, warning or error, not {level!r}")
    handler = RepeatLimitingHandler(sys.stderr)
    handler.setFormatter(
        JsonLogFormatter() if as_json else TextLogFormatter("%(asctime)s %(levelname)-7s %(name)s: %(message)s")
    )
    root = logging.getLogger("leo")
    root.handlers[:] = [handler]
    root.setLevel(numeric)
    root.propagate = False
    for name in SERVER_LOGGERS:
        logger = logging.getLogger(name)
        logger.handlers[:] = [handler]
        logger.setLevel(max(numeric, logging.WARNING))  # their info lines (started, stopped) say nothing new
        logger.propagate = False
    return handler


__all__ = ["JsonLogFormatter", "RepeatLimitingHandler", "TextLogFormatter", "safe", "setup_logging"]
