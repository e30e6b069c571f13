"""One error hierarchy for the whole runtime.

Every message says where, what and how to fix. Each class carries what it means to a user as
two attributes, read by the CLI and the HTTP server (never an ordered chain of ``except``
clauses, whose order would decide the answer):

- ``exit_code``: what the CLI exits with (one line on stderr, no traceback): 1 when the command
  line was fine but what it points at is not, 2 for bad usage;
- ``http_status``: the status of its ``application/problem+json`` answer.

=====================  =========  ===========  ===================================================
class                  exit_code  http_status  meaning
=====================  =========  ===========  ===================================================
LeoError               1          400          any error raised on purpose
ConfigError            1          400          pipelines.yaml (or another config input) is invalid
QueryError             1          422          a query is malformed
StoreError             1          503          the store cannot do what was asked
BotError               1          500          a bot cannot be loaded, configured or run
UsageError             2          422          a command-line argument or API parameter is invalid
InputError             1          422          data handed in is not acceptable
ConfigFileMissing      2          400          the pipelines file named is not there
NotFound               2          404          what was asked for does not exist
Conflict               1          409          the request clashes with what exists
Gone                   1          410          it existed, but is past its retention
=====================  =========  ===========  ===================================================

A subclass inherits both from its first base unless it sets its own (the README's "Errors"
section lists them; tests/test_errors.py checks every subclass against this table).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import ClassVar


class LeoError(Exception):
    """Base of every error the runtime raises on purpose."""

    exit_code: ClassVar[int] = 1
    """What the CLI exits with: 1 (what the command points at is wrong) or 2 (bad usage)."""
    http_status: ClassVar[int] = 400
    """The status of the HTTP answer (problem+json)."""
    transient: bool = False
    """Set on an error that a retry is expected to cure (a file caught while it is written):
    the runner logs a bot's first such failure at INFO, and ERROR only if it persists."""


@dataclass(frozen=True)
class Problem:
    """One problem found in a file, located at a 1-based line and column."""

    file: str
    line: int
    column: int
    message: str
    severity: str = "error"  # "error" or "warning"

    def __str__(self) -> str:
        prefix = "warning: " if self.severity == "warning" else ""
        return f"{self.file}:{self.line}:{self.column}: {prefix}{self.message}"


class ConfigError(LeoError):
    """pipelines.yaml (or another configuration input) is invalid.

    `problems` holds every located problem; `str()` is the first one, so a single line is enough
    for the CLI while `leo validate` prints them all.
    """

    exit_code = 1
    http_status = 400

    def __init__(self, message: str | None = None, problems: list[Problem] | None = None) -> None:
        self.problems = list(problems or [])
        if message is None:
            errors = [p for p in self.problems if p.severity == "error"] or self.problems
            message = str(errors[0]) if errors else "invalid configuration"
            if len(errors) > 1:
                message += f" (and {len(errors) - 1} more problem{'s' if len(errors) > 2 else ''})"
        super().__init__(message)


class QueryError(LeoError):
    """A query (README, "Queries") is malformed.

    `path` locates the offending part inside the query mapping, as the keys leading to it
    (for example ``("quantity", "less")``), so callers can point at the exact YAML node.
    """

    exit_code = 1
    http_status = 422

    def __init__(self, message: str, path: tuple[str, ...] = ()) -> None:
        self.path = tuple(path)
        self.reason = message
        # Field paths are single keys ("a.b"); what follows the field is the operator.
        super().__init__(f"field '{path[0]}': {message}" if path else message)


class StoreError(LeoError):
    """The store cannot do what was asked (bad URL, unknown queue, schema too new, ...)."""

    exit_code = 1
    http_status = 503


class LeaseLost(StoreError):
    """Another runtime took over a bot's lease; the current run's work was rolled back."""


class CheckpointMoved(StoreError):
    """The checkpoint was changed (reset) while a run was in flight; the run was rolled back."""


class BotError(LeoError):
    """A bot cannot be found, loaded or configured, or failed while processing."""

    exit_code = 1
    http_status = 500


class UsageError(LeoError):
    """A command-line argument or API parameter is invalid."""

    exit_code = 2
    http_status = 422


class InputError(UsageError):
    """Data handed in (a file's lines, a body, a value like a partner name or scope) is not
    acceptable: HTTP 422, CLI exit 1 (the command line was fine; what it carried was not)."""

    exit_code = 1
    http_status = 422


class QuotaExceeded(InputError):
    """A partner asked for more than a limit of ``server.limits`` allows: HTTP 422, exit 1.

    ``limit`` names the setting (``streams``, ``webhooks``, ``partitions``,
    ``all_mode_min_interval``, ``batch_bytes``) and ``maximum`` its value; the message says what
    the partner has and how to get under the limit."""

    def __init__(self, limit: str, maximum: float, message: str) -> None:
        self.limit = limit
        self.maximum = maximum
        super().__init__(f"server.limits.{limit}: {message}")

    @property
    def problem_fields(self) -> dict[str, object]:
        """Extra members of the problem+json answer: which limit, and its value."""
        return {"limit": self.limit, "maximum": self.maximum}


class ConfigFileMissing(ConfigError, UsageError):
    """The pipelines file named (``-f``, LEO_PIPELINES or the default) is not there, or is not a
    file: a config error for the runtime, bad usage for the CLI (exit 2)."""

    exit_code = 2
    http_status = 400


class NotFound(LeoError):
    """What was asked for does not exist (a partner name, an object key). HTTP 404, exit 2: on
    the command line a name that names nothing there is bad usage, whatever it names."""

    exit_code = 2
    http_status = 404


def unknown_name(what: str, name: str, known: Iterable[str], see: str) -> UsageError:
    """The one error for a name the command line gives that names nothing there is (a bot, a
    queue, a partner, a webhook, a stream, an object type): exit 2, with a did-you-mean when a
    known name is close, and `see` (like ``leo queues list``) saying where the names are listed.
    The name is outside text: quoted short, controls escaped."""
    from .safetext import printable, shown

    return UsageError(f"unknown {what} {printable(shown(name))}{did_you_mean(name, known)}; {see}")


def did_you_mean(name: str, known: Iterable[str]) -> str:
    """`` (did you mean 'x'?)`` naming the known name closest to `name`, or nothing."""
    import difflib

    from .safetext import printable, shown

    close = difflib.get_close_matches(name, sorted(set(known)), n=1)
    return f" (did you mean {printable(shown(close[0]))}?)" if close else ""


class Conflict(LeoError):
    """The request clashes with what exists (a partner name already taken). HTTP 409, exit 1."""

    exit_code = 1
    http_status = 409


class Gone(LeoError):
    """What was asked for existed but is past its retention (a position, a batch). HTTP 410, exit 1."""

    exit_code = 1
    http_status = 410


class ObjectInputError(InputError):
    """An object that cannot be taken in (not a JSON object, no usable key, a key given twice in a
    full snapshot). ``where`` locates it (``FILE:LINE``, ``body: item 3``); nothing was written."""

    def __init__(self, reason: str, where: str | None = None) -> None:
        self.reason = reason
        self.where = where
        super().__init__(f"{where}: {reason}" if where else reason)
