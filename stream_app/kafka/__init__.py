"""stream_app.kafka."""
