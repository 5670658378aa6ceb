"""Re-score every customer from a command-line tool, publishing the changes to Kafka."""

from __future__ import annotations

from stream_app.core.scoring import Reason, SegmentModel
from stream_app.kafka.admin import stream_producer
from stream_app.kafka.publisher import ProducerPublisher
from stream_app.service.processor import BatchProcessor
from stream_app.settings import Settings
from stream_app.store.redis_store import RedisStore

__all__ = ["rescore_everyone"]


async def rescore_everyone(
    settings: Settings, store: RedisStore, model: SegmentModel | None, reason: Reason
) -> int:
    """Score every customer with ``model`` at the stream clock; return how many moved.

    Changes are recorded (compare-and-set, as the workers do: running workers may go on
    meanwhile), published to the changes topic, and every customer gets a new due time.
    Without a model nothing is scored.
    """
    if model is None:
        return 0
    async with stream_producer(settings) as producer:
        processor = BatchProcessor(
            store,
            ProducerPublisher(producer, settings.changes_topic, settings.dlq_topic),
            lambda: model,
            clock=settings.clock,
            rule=settings.product_rule,
            limits=settings.limits,
        )
        processor.epoch = await store.epoch()
        return await processor.rescore_all(reason)
