"""Small Kafka chores shared by the tools: create topics, publish to them, read a group's
committed offsets."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterable, Mapping
from contextlib import asynccontextmanager
from typing import Any

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from aiokafka.errors import KafkaError

from stream_app.exceptions import BrokerUnavailableError, TopicCreationError
from stream_app.settings import Settings

__all__ = ["committed_offsets", "ensure_stream_topics", "ensure_topics", "stream_producer"]

_TOPIC_ALREADY_EXISTS = 36


async def ensure_topics(bootstrap: str, names: Iterable[str], partitions: int) -> list[str]:
    """Create the topics that do not exist yet (existing ones are left as they are).

    Returns the names of the topics created.

    Raises
    ------
    BrokerUnavailableError
        The broker does not answer.
    TopicCreationError
        The broker refused to create one of them.
    """
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
    try:
        await admin.start()
        existing = set(await admin.list_topics())
        missing = [NewTopic(name, partitions, 1) for name in names if name not in existing]
        if not missing:
            return []
        response = await admin.create_topics(missing)
        for topic, code, message in response.topic_errors:
            if code not in (0, _TOPIC_ALREADY_EXISTS):
                raise TopicCreationError(f"cannot create topic {topic}: {message}")
        # Another client may have created one meanwhile (already exists).
        return [topic for topic, code, _ in response.topic_errors if code == 0]
    except KafkaError as exc:
        raise BrokerUnavailableError(f"Kafka at {bootstrap} does not answer: {exc}") from exc
    finally:
        await admin.close()


async def ensure_stream_topics(settings: Settings) -> list[str]:
    """Create the orders, segment-changes and dead-letter topics if they do not exist.

    Returns the names of the topics created (see :func:`ensure_topics`).
    """
    return await ensure_topics(
        settings.kafka_bootstrap,
        [settings.orders_topic, settings.changes_topic, settings.dlq_topic],
        settings.topic_partitions,
    )


@asynccontextmanager
async def stream_producer(settings: Settings, **options: Any) -> AsyncIterator[AIOKafkaProducer]:
    """A started producer (``acks="all"`` plus ``options``) for the stream's topics.

    The topics are created first if missing; the producer is stopped on exit, and Kafka
    errors inside the block become :class:`BrokerUnavailableError`.
    """
    await ensure_stream_topics(settings)
    producer = AIOKafkaProducer(bootstrap_servers=settings.kafka_bootstrap, acks="all", **options)
    try:
        await producer.start()
        yield producer
    except KafkaError as exc:
        raise BrokerUnavailableError(
            f"cannot publish to {settings.kafka_bootstrap}: {exc}"
        ) from exc
    finally:
        await producer.stop()


async def committed_offsets(
    bootstrap: str, group: str, partitions: Iterable[TopicPartition]
) -> Mapping[TopicPartition, int]:
    """The offsets ``group`` has committed (-1 where it has committed none)."""
    consumer = AIOKafkaConsumer(
        bootstrap_servers=bootstrap, group_id=group, enable_auto_commit=False
    )
    try:
        await consumer.start()
        result = {}
        for partition in partitions:
            offset = await consumer.committed(partition)
            result[partition] = -1 if offset is None else int(offset)
        return result
    except KafkaError as exc:
        raise BrokerUnavailableError(f"Kafka at {bootstrap} does not answer: {exc}") from exc
    finally:
        await consumer.stop()
