"""The ``rfm`` command line, one module per command group."""

from stream_app.cli.main import cli, main

__all__ = ["cli", "main"]
