"""The ``rfm`` command."""

from __future__ import annotations

import sys

import click

from model_training.cli import train
from model_training.exceptions import RFMError
from model_training.synth_cli import synth
from stream_app import stream_cli
from stream_app.models_cli import models, retrain_command
from stream_app.stack_cli import stack

__all__ = ["cli", "main"]


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
def cli() -> None:
    """Real-time RFM customer segmentation."""


cli.add_command(stack)
cli.add_command(synth)
cli.add_command(train)
cli.add_command(models)
cli.add_command(retrain_command)
for command in (
    stream_cli.worker,
    stream_cli.replay,
    stream_cli.bootstrap,
    stream_cli.customer,
    stream_cli.segments,
    stream_cli.export,
    stream_cli.watch,
    stream_cli.schemas,
    stream_cli.demo,
    stream_cli.clock,
):
    cli.add_command(command)


def main() -> None:
    """Entry point of the ``rfm`` console script.

    Errors the project raises on purpose (bad input, unreachable services) end with one
    ``error: ...`` line and exit code 2, without a traceback.
    """
    try:
        cli.main(prog_name="rfm")
    except RFMError as exc:
        click.echo(f"error: {exc}", err=True)
        sys.exit(2)
