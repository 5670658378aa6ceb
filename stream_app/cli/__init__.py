"""The ``rfm`` command line, one module per command group.

Thin over the library: each command parses its options, builds the settings once, calls the
service, the adapters or :mod:`model_training`, and turns our errors into one ``error: ...``
line with exit code 2. It may import every layer; nothing imports it but the ``rfm`` entry
point.
"""

from stream_app.cli.main import cli, main

__all__ = ["cli", "main"]
