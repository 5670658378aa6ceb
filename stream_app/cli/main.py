"""The ``rfm`` command."""

from __future__ import annotations

import sys

import click
from pydantic import ValidationError

from model_training.cli.synth import synth
from model_training.cli.train import train
from model_training.exceptions import RFMError
from stream_app.cli import stream as stream_cli
from stream_app.cli.dlq import dlq
from stream_app.cli.models import models, retrain_command
from stream_app.cli.serve import serve
from stream_app.cli.stack import stack
from stream_app.cli.status import status
from stream_app.logs import configure_logging
from stream_app.settings import Settings
from stream_app.store.client import redacted_url

__all__ = ["cli", "main", "settings_problem"]


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="rfm-segments", prog_name="rfm")
@click.pass_context
def cli(ctx: click.Context) -> None:
    """Real-time RFM customer segmentation."""
    # Built once, before any command: a wrong RFM_* value ends every command alike.
    settings = ctx.ensure_object(Settings)
    configure_logging(settings.log_format)


cli.add_command(stack)
cli.add_command(synth)
cli.add_command(train)
cli.add_command(models)
cli.add_command(retrain_command)
cli.add_command(dlq)
cli.add_command(status)
cli.add_command(serve)
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
    except ValidationError as exc:
        if exc.title != "Settings":
            raise
        click.echo(f"error: {settings_problem(exc)}", err=True)
        sys.exit(2)


def settings_problem(exc: ValidationError) -> str:
    """One line naming the first ``RFM_*`` variable that is wrong, and why.

    >>> from stream_app.settings import Settings
    >>> try:
    ...     Settings(topic_partitions=0)
    ... except ValidationError as exc:
    ...     print(settings_problem(exc))
    RFM_TOPIC_PARTITIONS=0: Input should be greater than or equal to 1
    """
    first = exc.errors()[0]
    message = first["msg"].removeprefix("Value error, ")
    if not first["loc"]:
        # A rule across settings: its message names the variables.
        return message
    field = "_".join(str(part) for part in first["loc"])
    return f"RFM_{field.upper()}={_shown(field, first['input'])}: {message}"


#: Settings whose value is never shown, even when it is the wrong one.
_SECRETS = frozenset({"kafka_sasl_password", "api_keys"})


def _shown(field: str, value: object) -> str:
    """A wrong setting's value as the error line shows it: secrets hidden."""
    if field in _SECRETS:
        return "**********"
    if field == "redis_url" and isinstance(value, str):
        return redacted_url(value)
    return str(value)
