"""Small Kafka chores shared by the tools: create topics, publish to them, read a group's
committed offsets, read ranges of a topic's partitions."""

from __future__ import annotations

import time
from collections.abc import AsyncIterator, Iterable, Mapping
from contextlib import asynccontextmanager
from typing import Any

from aiokafka import AIOKafkaProducer, ConsumerRecord, TopicPartition
from aiokafka.admin import NewTopic
from aiokafka.errors import KafkaError

from stream_app.exceptions import BrokerUnavailableError, TopicCreationError
from stream_app.kafka.connection import admin_client, consumer, producer, started
from stream_app.settings import Settings

__all__ = [
    "committed_offsets",
    "ensure_stream_topics",
    "ensure_topics",
    "read_partitions",
    "stream_producer",
]

_TOPIC_ALREADY_EXISTS = 36


async def ensure_topics(settings: Settings, names: Iterable[str], partitions: int) -> list[str]:
    """Create the topics that do not exist yet (existing ones are left as they are).

    Returns the names of the topics created.

    Raises
    ------
    BrokerUnavailableError
        The broker does not answer.
    BrokerAccessError
        The broker refused this client (credentials, TLS).
    TopicCreationError
        The broker refused to create one of them.
    """
    bootstrap = settings.kafka_bootstrap
    admin = admin_client(settings)
    try:
        await started(settings, admin)
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
        settings,
        [settings.orders_topic, settings.changes_topic, settings.dlq_topic],
        settings.topic_partitions,
    )


@asynccontextmanager
async def stream_producer(settings: Settings, **options: Any) -> AsyncIterator[AIOKafkaProducer]:
    """A started producer (``acks="all"``, ``RFM_KAFKA_COMPRESSION``, plus ``options``) for
    the stream's topics.

    The topics are created first if missing; the producer is stopped on exit, and Kafka
    errors inside the block become :class:`BrokerUnavailableError`.
    """
    await ensure_stream_topics(settings)
    options.setdefault("compression_type", settings.compression_type)
    client = producer(settings, acks="all", **options)
    try:
        yield await started(settings, client)
    except KafkaError as exc:
        raise BrokerUnavailableError(
            f"cannot publish to {settings.kafka_bootstrap}: {exc}"
        ) from exc
    finally:
        await client.stop()


async def committed_offsets(
    settings: Settings, group: str, partitions: Iterable[TopicPartition]
) -> Mapping[TopicPartition, int]:
    """The offsets ``group`` has committed (-1 where it has committed none)."""
    bootstrap = settings.kafka_bootstrap
    reader = consumer(settings, group_id=group, enable_auto_commit=False)
    try:
        await started(settings, reader)
        result = {}
        for partition in partitions:
            offset = await reader.committed(partition)
            result[partition] = -1 if offset is None else int(offset)
        return result
    except KafkaError as exc:
        raise BrokerUnavailableError(f"Kafka at {bootstrap} does not answer: {exc}") from exc
    finally:
        await reader.stop()


async def read_partitions(
    settings: Settings,
    topic: str,
    ranges: Mapping[int, tuple[int | None, int | None]] | None = None,
    stall_s: float = 30.0,
    max_partition_fetch_bytes: int = 1024 * 1024,
) -> dict[int, list[ConsumerRecord[bytes, bytes]]]:
    """The records of ``topic``'s partitions in offset ranges, read without a consumer group.

    Parameters
    ----------
    ranges
        Partition -> ``(first offset, offset after the last)``; None for the beginning or the
        end of what the partition holds when reading starts. None: every partition, whole.
        A range reaching past what the topic holds gives the records it holds.
    stall_s
        Longest wait for the next record.

    Returns
    -------
    dict
        Partition -> its records in offset order (nothing is committed, no worker is
        disturbed). A topic that does not exist has none.

    Raises
    ------
    BrokerUnavailableError
        The broker does not answer, or reading makes no progress for ``stall_s`` seconds.
    """
    reader = consumer(
        settings,
        group_id=None,
        enable_auto_commit=False,
        auto_offset_reset="earliest",
        max_partition_fetch_bytes=max_partition_fetch_bytes,
    )
    try:
        await started(settings, reader)
        if ranges is None:
            partitions = reader.partitions_for_topic(topic)
            if not partitions:
                await reader._client.force_metadata_update()
                partitions = reader.partitions_for_topic(topic)
            ranges = dict.fromkeys(sorted(partitions or ()), (None, None))
        assigned = [TopicPartition(topic, number) for number in ranges]
        if not assigned:
            return {}
        reader.assign(assigned)
        held = await reader.end_offsets(assigned)
        ends: dict[TopicPartition, int] = {}
        for tp in assigned:
            first, end = ranges[tp.partition]
            ends[tp] = held[tp] if end is None else min(end, held[tp])
            if first is None:
                await reader.seek_to_beginning(tp)
            else:
                reader.seek(tp, first)
        read: dict[TopicPartition, list[ConsumerRecord[bytes, bytes]]] = {tp: [] for tp in assigned}
        remaining = {tp for tp in assigned if await reader.position(tp) < ends[tp]}
        progress = time.monotonic()
        while remaining:
            batches = await reader.getmany(*remaining, timeout_ms=1000)
            for tp, records in batches.items():
                kept = [record for record in records if record.offset < ends[tp]]
                read[tp].extend(kept)
                if kept:
                    progress = time.monotonic()
            for tp in list(remaining):
                if await reader.position(tp) >= ends[tp]:
                    remaining.discard(tp)
            if remaining and time.monotonic() - progress > stall_s:
                raise BrokerUnavailableError(
                    f"reading {topic} at {settings.kafka_bootstrap} made no progress for "
                    f"{stall_s:g} s"
                )
        return {tp.partition: records for tp, records in read.items()}
    except KafkaError as exc:
        raise BrokerUnavailableError(
            f"Kafka at {settings.kafka_bootstrap} does not answer: {exc}"
        ) from exc
    finally:
        await reader.stop()
