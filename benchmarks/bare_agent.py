"""A bare faust agent that only counts events: the framework's ceiling for the benchmark.

Run as ``python benchmarks/bare_agent.py`` with the same ``RFM_*`` settings as a worker.
"""

from __future__ import annotations

from typing import Any

import faust

from stream_app.settings import Settings


def main() -> None:
    settings = Settings()
    app = faust.App(
        settings.app_id,
        broker=settings.kafka_url,
        store="memory://",
        topic_partitions=settings.topic_partitions,
        broker_session_timeout=settings.session_timeout_s,
        broker_heartbeat_interval=min(3.0, settings.session_timeout_s / 3),
        consumer_auto_offset_reset="earliest",
        web_enabled=False,
    )
    orders = app.topic(
        settings.orders_topic,
        key_type=bytes,
        value_type=bytes,
        key_serializer="raw",
        value_serializer="raw",
    )
    counted = 0

    @app.agent(orders)  # type: ignore[untyped-decorator]
    async def count(stream: Any) -> None:
        nonlocal counted
        async for _ in stream:
            counted += 1

    faust.Worker(app, loglevel="info", quiet=True).execute_from_commandline()


if __name__ == "__main__":
    main()
