"""``python -m stream_app`` runs the ``rfm`` command."""

from __future__ import annotations

from stream_app.cli.main import main

__all__: list[str] = []

main()
