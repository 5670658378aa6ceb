"""``rfm status``: the stream at a glance."""

from __future__ import annotations

import asyncio
import json

import click

from stream_app.cli.base import current_settings
from stream_app.kafka.status import render, stream_status

__all__ = ["status"]


@click.command()
@click.option("--json", "as_json", is_flag=True, help="Print JSON, for scripts.")
def status(as_json: bool) -> None:
    """Workers, model served, consumer lag, due customers, dead letters, last retrain, clock.

    Exits with ``error:`` and code 2 when Redis or the broker cannot be reached.
    """
    current = asyncio.run(stream_status(current_settings()))
    if as_json:
        click.echo(json.dumps(current.to_json(), indent=2, default=str))
    else:
        click.echo(render(current))
