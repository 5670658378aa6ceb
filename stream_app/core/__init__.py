"""stream_app.core."""
