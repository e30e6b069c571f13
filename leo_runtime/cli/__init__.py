"""`leo`: the operator's command line (typer), one module per command group.

Every command takes ``-f/--file`` (default ./pipelines.yaml, env LEO_PIPELINES), ``--store``
(env LEO_STORE) and ``--json``. Exit 0 on success, 1 on a user or config error (one line, no
traceback), 2 on bad usage, an unknown name included (README, "The CLI"; `common.handles_errors`).
Each command imports what it uses when it runs: ``leo --help`` imports neither the models nor
the store, and no command but ``run`` the HTTP server (tests/test_cli_rules.py).
"""

from __future__ import annotations

from . import (  # noqa: F401  (registers the commands)
    bots,
    checkpoints,
    deadletters,
    ingest,
    partners,
    project,
    queues,
    run,
    status,
    storecopy,
    streams,
    testrun,
    webhooks,
)
from .app import app


def main() -> None:
    """Console-script entry point."""
    app()


__all__ = ["app", "main"]
