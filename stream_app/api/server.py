"""Run the Profile API with uvicorn (``rfm serve``)."""

from __future__ import annotations

import logging

import uvicorn

from stream_app.api.app import create_app
from stream_app.settings import Settings
from stream_app.store.client import redacted_url

__all__ = ["serve"]

log = logging.getLogger(__name__)


def serve(settings: Settings, host: str, port: int) -> None:
    """Serve the API on ``host:port`` until stopped (SIGINT or SIGTERM).

    uvicorn's access log is off: request lines carry the page's ``?key=`` (never logged).
    """
    keys = settings.api_key_set
    log.info(
        "serving the Profile API on http://%s:%d (Redis %s, %s)",
        host,
        port,
        redacted_url(settings.redis_url),
        f"{len(keys)} API key(s)" if keys else "no API key needed",
    )
    if not keys and host not in ("127.0.0.1", "::1", "localhost"):
        log.warning(
            "the API serves personal data on %s without a key: set RFM_API_KEYS and put it "
            "behind TLS",
            host,
        )
    uvicorn.run(
        create_app(settings),
        host=host,
        port=port,
        log_config=None,
        access_log=False,
        timeout_graceful_shutdown=5,
    )
