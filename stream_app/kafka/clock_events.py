"""Move the event-time clock without orders: ``rfm clock advance``."""

from __future__ import annotations

from datetime import datetime

from stream_app.core.events import ClockEvent
from stream_app.kafka.admin import stream_producer
from stream_app.settings import Settings

__all__ = ["publish_clock_event"]


async def publish_clock_event(settings: Settings, moment: datetime) -> None:
    """Publish a clock event on the orders topic.

    The clock is shared by all workers (it lives in Redis), so one partition is enough: the
    worker that reads it moves the clock, and every worker's decay step sees the new time.
    """
    event = ClockEvent(kind="clock", occurred_at=moment)
    async with stream_producer(settings) as producer:
        await producer.send_and_wait(
            settings.orders_topic, event.model_dump_json().encode(), key=b"clock", partition=0
        )
