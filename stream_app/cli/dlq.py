"""``rfm dlq``: list, export and resubmit the dead letters of the orders topic."""

from __future__ import annotations

import asyncio
import time
from datetime import UTC, datetime
from pathlib import Path

import click

from stream_app.cli.base import current_settings
from stream_app.core.events import DeadLetter
from stream_app.kafka.dead_letter_topic import read_dead_letters
from stream_app.kafka.replay import publish_events
from stream_app.service.dead_letters import matches
from stream_app.service.resubmission import read_resubmission
from stream_app.settings import Settings

__all__ = ["dlq"]


def _since(value: str | None) -> datetime | None:
    if value is None:
        return None
    try:
        moment = datetime.fromisoformat(value)
    except ValueError as exc:
        raise click.BadParameter(f"{value!r} is not an ISO date like 2024-05-01") from exc
    return moment if moment.tzinfo is not None else moment.replace(tzinfo=UTC)


def _selected(settings: Settings, since: str | None, reason: str | None) -> list[DeadLetter]:
    """The dead letters on the topic now, filtered; warns about unreadable records."""
    moment = _since(since)
    found = asyncio.run(read_dead_letters(settings))
    for where in found.unreadable:
        click.echo(f"warning: {where} is not a dead letter, skipped", err=True)
    return [letter for letter in found.letters if matches(letter, moment, reason)]


_since_option = click.option(
    "--since", default=None, help="Only dead letters refused at or after this ISO date (UTC)."
)
_reason_option = click.option(
    "--reason", default=None, help="Only dead letters whose reason contains this (any case)."
)


@click.group()
def dlq() -> None:
    """The dead-letter topic (RFM_DLQ_TOPIC): what the workers refused, and why."""


@dlq.command("list")
@_since_option
@_reason_option
def dlq_list(since: str | None, reason: str | None) -> None:
    """Print one tab-separated line per dead letter.

    Columns: when it was refused, why, where it came from (topic/partition/offset), its key,
    and the size of the original message ("cut" when the dead letter keeps only its
    beginning) with its SHA-256.
    """
    letters = _selected(current_settings(), since, reason)
    for letter in letters:
        size = "-" if letter.payload_bytes is None else f"{letter.payload_bytes} B"
        if letter.truncated:
            size += " cut"
        click.echo(
            "\t".join(
                [
                    letter.failed_at.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
                    letter.reason,
                    f"{letter.topic}/{letter.partition}/{letter.offset}",
                    letter.key if letter.key is not None else "-",
                    size,
                    letter.payload_sha256 or "-",
                ]
            )
        )
    click.echo(f"{len(letters)} dead letter(s)", err=True)


@dlq.command("export")
@click.option("--output", required=True, type=click.Path(path_type=Path, dir_okay=False))
@_since_option
@_reason_option
def dlq_export(output: Path, since: str | None, reason: str | None) -> None:
    """Write the dead letters to a file, one JSON object per line.

    Fix an event in the file (its ``payload``), or replace the line by the fixed event
    itself, and send it again with ``rfm dlq resubmit``.
    """
    letters = _selected(current_settings(), since, reason)
    with output.open("w", encoding="utf-8") as file:
        for letter in letters:
            file.write(letter.model_dump_json() + "\n")
    click.echo(f"wrote {len(letters)} dead letter(s) to {output}")


@dlq.command("resubmit")
@click.option(
    "--input",
    "input_path",
    required=True,
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
)
def dlq_resubmit(input_path: Path) -> None:
    """Publish the order events of a file to the orders topic, keyed by customer id.

    Each line is a dead letter (as ``rfm dlq export`` writes it; its payload is the event)
    or an order event object. Every line is validated as a worker would; if any is invalid,
    each such line is reported and nothing is published (exit code 2). An event whose id
    was applied before changes nothing (it counts as a duplicate).
    """
    settings = current_settings()
    with input_path.open(encoding="utf-8", errors="replace") as file:
        result = read_resubmission(file, settings.product_rule, settings.limits, time.time())
    if result.problems:
        for line, why in result.problems:
            click.echo(f"error: {input_path}:{line}: {why}", err=True)
        raise SystemExit(2)
    if not result.events:
        click.echo(f"no events in {input_path}: nothing published")
        return
    asyncio.run(publish_events(settings, [(event.key, event.value) for event in result.events]))
    click.echo(f"published {len(result.events)} order event(s) to {settings.orders_topic}")
