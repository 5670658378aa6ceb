"""stream_app.store."""
