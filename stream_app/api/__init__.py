"""The Profile API over HTTP (``rfm serve``): FastAPI on uvicorn, reading the store."""

from stream_app.api.app import create_app

__all__ = ["create_app"]
