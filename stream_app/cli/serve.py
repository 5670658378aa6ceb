"""``rfm serve``: the Profile API over HTTP."""

from __future__ import annotations

import click

from stream_app.cli.base import current_settings

__all__ = ["serve"]


@click.command()
@click.option("--host", default=None, help="Address to bind (default RFM_API_HOST, 127.0.0.1).")
@click.option("--port", type=int, default=None, help="Port (default RFM_API_PORT, 8000).")
def serve(host: str | None, port: int | None) -> None:
    """Serve the Profile API: customers, segments, flows, models, the stream and the page.

    Customer data is personal data: keep it on loopback, or set RFM_API_KEYS and put it
    behind TLS.
    """
    from stream_app.api.server import serve as run

    settings = current_settings()
    run(settings, host or settings.api_host, settings.api_port if port is None else port)
