"""One error hierarchy for the whole runtime.

Every message says where, what and how to fix. The CLI turns any `LeoError` into exit code 1 and
one line on stderr; the HTTP server turns it into an ``application/problem+json`` answer.
"""

from __future__ import annotations

from dataclasses import dataclass


class LeoError(Exception):
    """Base of every error the runtime raises on purpose."""


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

    def __init__(self, message: str, path: tuple[str, ...] = ()) -> None:
        self.path = tuple(path)
        self.reason = message
        # Field paths are single keys ("a.b"); what follows the field is the operator.
        super().__init__(f"field '{path[0]}': {message}" if path else message)


class StoreError(LeoError):
    """The store cannot do what was asked (bad URL, unknown queue, schema too new, ...)."""


class LeaseLost(StoreError):
    """Another runtime took over a bot's lease; the current run's work was rolled back."""


class CheckpointMoved(StoreError):
    """The checkpoint was changed (reset) while a run was in flight; the run was rolled back."""


class BotError(LeoError):
    """A bot cannot be found, loaded or configured, or failed while processing."""


class UsageError(LeoError):
    """A command-line argument or API parameter is invalid."""


class InputError(UsageError):
    """Data handed in (a file's lines, a body, a value like a partner name or scope) is not
    acceptable: HTTP 422, CLI exit 1 (the command line was fine; what it carried was not)."""


class ConfigFileMissing(ConfigError, UsageError):
    """The pipelines file named (``-f``, LEO_PIPELINES or the default) is not there, or is not a
    file: a config error for the runtime, bad usage for the CLI (exit 2)."""


class NotFound(LeoError):
    """What was asked for does not exist (a partner name, an object key). HTTP 404, exit 1."""


class Conflict(LeoError):
    """The request clashes with what exists (a partner name already taken). HTTP 409, exit 1."""


class ObjectInputError(InputError):
    """An object that cannot be taken in (not a JSON object, no usable key, a key given twice in a
    full snapshot). ``where`` locates it (``FILE:LINE``, ``body: item 3``); nothing was written."""

    def __init__(self, reason: str, where: str | None = None) -> None:
        self.reason = reason
        self.where = where
        super().__init__(f"{where}: {reason}" if where else reason)
