"""The `leo` Typer application and its command groups (each group's commands live in its own module).

Help is click's plain text (``rich_markup_mode=None``): typer's rich help imports rich's markdown,
traceback and pretty-printing modules, which cost more than the rest of ``leo --help``
(benchmarks/cli_startup.py). Every option that takes a value names it with a metavar (``FILE``,
``URL``, ``SECONDS``), never typer's ``<str>``/``<bool>`` labels (tests/test_cli_rules.py).
"""

from __future__ import annotations

import typer


def group(help: str, **settings: object) -> typer.Typer:
    """A command group of `leo` (or `leo` itself) with plain help."""
    return typer.Typer(help=help, no_args_is_help=True, rich_markup_mode=None, **settings)  # type: ignore[arg-type]


app = group(
    "leo-runtime: change-data delivery through declarative pipelines of small bots.",
    name="leo",
    pretty_exceptions_enable=False,
    add_completion=False,
)
bots_app = group("Built-in and installed bots; pause and resume.")
queues_app = group("Inspect and feed queues.")
checkpoints_app = group("Where each bot is in its input queues.")
partners_app = group("Partner accounts: tokens and scopes.")
deadletters_app = group("Events bots gave up on (on_error.dead_letter); send them back.")
webhooks_app = group("Partner webhooks and batcher bots: batches and deliveries.")
streams_app = group("Partner streams: partitions, checkpoints, heads and lags; reset.")
app.add_typer(bots_app, name="bots")
app.add_typer(queues_app, name="queues")
app.add_typer(checkpoints_app, name="checkpoints")
app.add_typer(partners_app, name="partners")
app.add_typer(deadletters_app, name="deadletters")
app.add_typer(webhooks_app, name="webhooks")
app.add_typer(streams_app, name="streams")
store_app = typer.Typer(help="The store itself: copy a deployment's state to another store.", no_args_is_help=True)
app.add_typer(store_app, name="store")
