"""Publish a file's order events to the orders topic and wait for the workers: ``rfm replay``.

The events themselves come from :mod:`stream_app.service.order_events`.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Mapping

from aiokafka import TopicPartition

from stream_app.exceptions import ReplayTimeoutError
from stream_app.kafka.admin import committed_offsets, stream_producer
from stream_app.settings import Settings

__all__ = ["publish_events", "wait_until_processed"]


async def publish_events(
    settings: Settings,
    events: list[tuple[bytes, bytes]],
    rate: float | None = None,
    on_progress: Callable[[int], None] | None = None,
    chunk: int = 2000,
) -> dict[TopicPartition, int]:
    """Publish events to the orders topic; return, per partition, the offset after the last.

    With ``rate`` (events per second) the events are paced; otherwise they go as fast as the
    broker takes them, batched by the producer.
    """
    ends: dict[TopicPartition, int] = {}
    async with stream_producer(
        settings, linger_ms=5, max_batch_size=256 * 1024, enable_idempotence=False
    ) as producer:
        started = time.monotonic()
        for first in range(0, len(events), chunk):
            block = events[first : first + chunk]
            if rate:
                futures = []
                for number, (key, value) in enumerate(block, start=first):
                    delay = started + number / rate - time.monotonic()
                    if delay > 0:
                        await asyncio.sleep(delay)
                    futures.append(await producer.send(settings.orders_topic, value, key=key))
            else:
                futures = [
                    await producer.send(settings.orders_topic, value, key=key)
                    for key, value in block
                ]
            for metadata in await asyncio.gather(*futures):
                partition = TopicPartition(metadata.topic, metadata.partition)
                ends[partition] = max(ends.get(partition, 0), metadata.offset + 1)
            if on_progress is not None:
                on_progress(len(block))
    return ends


async def wait_until_processed(
    settings: Settings,
    targets: Mapping[TopicPartition, int],
    timeout_s: float,
    poll_s: float = 0.5,
) -> float:
    """Wait until the workers' group has committed every target offset (lag 0).

    Returns the seconds waited. Raises :class:`ReplayTimeoutError` after ``timeout_s``.
    """
    started = time.monotonic()
    while True:
        committed = await committed_offsets(settings, settings.app_id, targets)
        behind = {tp: end - committed[tp] for tp, end in targets.items() if committed[tp] < end}
        if not behind:
            return time.monotonic() - started
        if time.monotonic() - started > timeout_s:
            lag = sum(behind.values())
            raise ReplayTimeoutError(
                f"the workers are still {lag} event(s) behind after {timeout_s:.0f}s"
            )
        await asyncio.sleep(poll_s)
