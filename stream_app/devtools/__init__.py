"""stream_app.devtools."""
