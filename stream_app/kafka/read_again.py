"""Read a range of a partition again, for orders whose writes the state store lost.

The worker keeps each partition's next offset in Redis with the state (written last in each
batch's final round trip). When Redis comes back without its last writes, the offsets it holds
are behind what the worker stored, or behind the consumer group's committed offsets at
start-up; the orders in between are read again here, with a consumer of its own (no group,
nothing committed), and applied once more: apply-once makes that safe.
"""

from __future__ import annotations

import time
from collections.abc import Mapping

from aiokafka import AIOKafkaConsumer, TopicPartition

from stream_app.kafka.admin import committed_offsets
from stream_app.service.ports import RawMessage
from stream_app.settings import Settings

__all__ = ["behind_committed", "read_range"]

#: Longest quiet wait for the rest of a range (the topic may no longer hold it).
_QUIET_S = 5.0


async def read_range(settings: Settings, source: str, first: int, end: int) -> list[RawMessage]:
    """The messages of ``source`` (``topic:partition``) at offsets ``first`` .. ``end - 1``.

    Fewer come back when the topic no longer holds some of them.
    """
    topic, _, number = source.rpartition(":")
    partition = TopicPartition(topic, int(number))
    consumer = AIOKafkaConsumer(
        bootstrap_servers=settings.kafka_bootstrap,
        group_id=None,
        enable_auto_commit=False,
        auto_offset_reset="earliest",
    )
    await consumer.start()
    try:
        consumer.assign([partition])
        consumer.seek(partition, first)
        read: list[RawMessage] = []
        quiet_since = time.monotonic()
        while time.monotonic() - quiet_since < _QUIET_S:
            batches = await consumer.getmany(partition, timeout_ms=500)
            records = batches.get(partition, [])
            if records:
                quiet_since = time.monotonic()
            for record in records:
                if record.offset >= end:
                    return read
                read.append(
                    RawMessage(
                        record.key, record.value or b"", topic, partition.partition, record.offset
                    )
                )
            if await consumer.position(partition) >= end:
                return read
        return read
    finally:
        await consumer.stop()


async def behind_committed(
    settings: Settings, stored: Mapping[str, int]
) -> dict[str, tuple[int, int]]:
    """Orders-topic partitions whose committed offset is ahead of the offset the store holds.

    ``stored`` maps ``topic:partition`` to the next offset the store holds. Partitions the
    store holds nothing for (state from before offsets were kept) are left out.
    """
    partitions = [
        TopicPartition(settings.orders_topic, number) for number in range(settings.topic_partitions)
    ]
    committed = await committed_offsets(settings.kafka_bootstrap, settings.app_id, partitions)
    behind = {}
    for partition, offset in committed.items():
        name = f"{partition.topic}:{partition.partition}"
        held = stored.get(name)
        if held is not None and held < offset:
            behind[name] = (held, offset)
    return behind
