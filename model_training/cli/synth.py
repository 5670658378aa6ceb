"""The ``rfm synth`` command: write a synthetic transactions file."""

from __future__ import annotations

import time
from pathlib import Path

import click

from model_training.data.synth import DEFAULT_CUSTOMERS, generate_transactions, write_transactions
from model_training.exceptions import RFMError

__all__ = ["synth"]


@click.command("synth")
@click.option(
    "--output",
    "-o",
    required=True,
    type=click.Path(dir_okay=False, writable=True, path_type=Path),
    help="File to write: .csv or .csv.gz (Online Retail format).",
)
@click.option(
    "--customers",
    type=click.IntRange(min=1),
    default=DEFAULT_CUSTOMERS,
    show_default=True,
    help="Number of identified customers (anonymous lines come on top).",
)
@click.option("--seed", type=int, default=0, show_default=True, help="Random seed.")
def synth(output: Path, customers: int, seed: int) -> None:
    """Write a year of realistic synthetic transactions in the Online Retail format.

    The same seed always writes the same bytes.
    """
    started = time.perf_counter()
    frame = generate_transactions(customers, seed=seed)
    try:
        write_transactions(frame, output)
    except RFMError as exc:
        raise click.UsageError(str(exc)) from exc
    except OSError as exc:
        raise click.ClickException(f"cannot write {output}: {exc}") from exc
    elapsed = time.perf_counter() - started
    click.echo(
        f"wrote {len(frame):,} lines ({customers:,} customers, seed {seed}) "
        f"to {output} in {elapsed:.1f} s"
    )
