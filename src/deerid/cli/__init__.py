"""The `deerid` command line: a thin adapter over the pipeline and the store.

One runtime context per process (deerid.cli.root.context) and one place where
errors become a line (the root group). Commands are registered here, in the order `--help`
lists them."""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Annotated

import typer

from deerid.cli.db import backup, db_app, restore
from deerid.cli.deer import deer_app, report
from deerid.cli.deployments import deployments_app
from deerid.cli.evaluate import calibrate, eval_
from deerid.cli.export import export_app
from deerid.cli.ingest import ingest, reid
from deerid.cli.models import models_app, reembed
from deerid.cli.root import app, context, exit_on_sigterm
from deerid.cli.serve import serve, worker
from deerid.cli.status import config, overview, status
from deerid.cli.training import adapt, train

__all__ = ["app"]


def main(
    ctx: typer.Context,
    verbose: Annotated[bool, typer.Option("--verbose", "-v", help="Log what happens.")] = False,
) -> None:
    logging.basicConfig(
        level=logging.INFO if verbose else logging.WARNING, format="%(levelname)s %(message)s"
    )
    exit_on_sigterm()
    if ctx.invoked_subcommand is None:
        # The main job: show what is stored, then serve the dashboard (Ctrl-C stops it).
        overview(context(ctx))
        serve(ctx)


app.callback(invoke_without_command=True)(main)

app.add_typer(deer_app, name="deer")
app.add_typer(db_app, name="db")
app.add_typer(models_app, name="models")
app.add_typer(export_app, name="export")
app.add_typer(deployments_app, name="deployments")

command: Callable[..., None]  # the commands' signatures differ
for command in (status, config, ingest, report, reid, worker):
    app.command()(command)
app.command("eval")(eval_)
for command in (calibrate, train, adapt, reembed, serve, backup, restore):
    app.command()(command)
