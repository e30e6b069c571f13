"""The `leo` Typer application and its command groups (each group's commands live in its own module)."""

from __future__ import annotations

import typer

app = typer.Typer(
    name="leo",
    help="leo-runtime: change-data delivery through declarative pipelines of small bots.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
)
bots_app = typer.Typer(help="Built-in and installed bots; pause and resume.", no_args_is_help=True)
queues_app = typer.Typer(help="Inspect and feed queues.", no_args_is_help=True)
checkpoints_app = typer.Typer(help="Where each bot is in its input queues.", no_args_is_help=True)
partners_app = typer.Typer(help="Partner accounts: tokens and scopes.", no_args_is_help=True)
app.add_typer(bots_app, name="bots")
app.add_typer(queues_app, name="queues")
app.add_typer(checkpoints_app, name="checkpoints")
app.add_typer(partners_app, name="partners")
deadletters_app = typer.Typer(help="Events bots gave up on (on_error.dead_letter); send them back.", no_args_is_help=True)
app.add_typer(deadletters_app, name="deadletters")
webhooks_app = typer.Typer(help="Partner webhooks and batcher bots: batches and deliveries.", no_args_is_help=True)
app.add_typer(webhooks_app, name="webhooks")
streams_app = typer.Typer(help="Partner streams: partitions, checkpoints, heads and lags; reset.", no_args_is_help=True)
app.add_typer(streams_app, name="streams")
