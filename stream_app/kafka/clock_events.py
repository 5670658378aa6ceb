"""Move the event-time clock: ``rfm clock advance`` (a clock event) and ``rfm clock set``."""

from __future__ import annotations

from datetime import datetime

from stream_app.core.events import ClockEvent
from stream_app.core.scoring import SegmentModel
from stream_app.kafka.admin import stream_producer
from stream_app.kafka.rescore import rescore_everyone
from stream_app.settings import Settings
from stream_app.store.redis_store import RedisStore

__all__ = ["publish_clock_event", "set_clock"]


async def publish_clock_event(settings: Settings, moment: datetime) -> None:
    """Publish a clock event on the orders topic.

    The clock is shared by all workers (it lives in Redis), so one partition is enough: the
    worker that reads it raises every partition's watermark, and every worker's decay step
    sees the new time.
    """
    event = ClockEvent(kind="clock", occurred_at=moment)
    async with stream_producer(settings) as producer:
        await producer.send_and_wait(
            settings.orders_topic, event.model_dump_json().encode(), key=b"clock", partition=0
        )


async def set_clock(settings: Settings, moment: datetime, model: SegmentModel | None) -> int:
    """Set the event-time clock to ``moment``, back or forward, and re-score every customer.

    No partition watermark stays above ``moment``. Every customer is scored with ``model`` at
    the new clock (changes with reason ``recency``, published to the changes topic) and gets
    a new due time. Returns how many customers changed segment (0 without a model).
    """
    async with RedisStore.from_settings(settings) as store:
        await store.ping()
        await store.set_clock(moment.timestamp())
        return await rescore_everyone(settings, store, model, "recency")
