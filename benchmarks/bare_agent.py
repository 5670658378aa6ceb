"""A bare faust agent that only counts events: the framework's ceiling for the benchmark.

Run as ``python benchmarks/bare_agent.py`` with the same ``RFM_*`` settings as a worker.
"""

from __future__ import annotations

from typing import Any

import faust

from stream_app.kafka.worker import faust_options, raw_topic, shorten_fetch_wait
from stream_app.settings import Settings


def main() -> None:
    settings = Settings()
    shorten_fetch_wait(settings.fetch_wait_ms)  # the same consumer as the worker's
    app = faust.App(settings.app_id, **faust_options(settings))
    orders = raw_topic(app, settings.orders_topic, settings.topic_partitions)
    counted = 0

    @app.agent(orders)  # type: ignore[untyped-decorator]
    async def count(stream: Any) -> None:
        nonlocal counted
        async for _ in stream:
            counted += 1

    faust.Worker(app, loglevel="info", quiet=True).execute_from_commandline()


if __name__ == "__main__":
    main()
