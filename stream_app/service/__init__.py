"""stream_app.service."""
