"""The ``rfm`` command."""

from __future__ import annotations

import click

__all__ = ["cli", "main"]


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
def cli() -> None:
    """Real-time RFM customer segmentation."""


def main() -> None:
    """Entry point of the ``rfm`` console script."""
    cli()
