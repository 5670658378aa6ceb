"""Read a range of a partition again, for orders whose writes the state store lost.

The worker keeps each partition's next offset in Redis with the state (written last in each
batch's final round trip). When Redis comes back without its last writes, the offsets it holds
are behind what the worker stored, or behind the consumer group's committed offsets at
start-up; the orders in between are read again here, with a consumer of its own (no group,
nothing committed), and applied once more: apply-once makes that safe.
"""

from __future__ import annotations

from collections.abc import Mapping

from aiokafka import TopicPartition

from stream_app.kafka.admin import committed_offsets, read_partitions
from stream_app.service.ports import RawMessage
from stream_app.settings import Settings

__all__ = ["behind_committed", "committed_positions", "read_range"]


async def read_range(settings: Settings, source: str, first: int, end: int) -> list[RawMessage]:
    """The messages of ``source`` (``topic:partition``) at offsets ``first`` .. ``end - 1``.

    Fewer come back when the topic no longer holds some of them.
    """
    topic, _, number = source.rpartition(":")
    partition = int(number)
    read = await read_partitions(settings, topic, {partition: (first, end)})
    return [
        RawMessage(record.key, record.value or b"", topic, partition, record.offset)
        for record in read.get(partition, [])
    ]


async def committed_positions(settings: Settings) -> dict[str, int]:
    """The workers' group's committed offset per orders-topic ``topic:partition`` (-1: none).

    Raises
    ------
    BrokerUnavailableError
        The broker does not answer.
    """
    partitions = [
        TopicPartition(settings.orders_topic, number) for number in range(settings.topic_partitions)
    ]
    committed = await committed_offsets(settings, settings.app_id, partitions)
    return {f"{tp.topic}:{tp.partition}": offset for tp, offset in committed.items()}


def behind_committed(
    stored: Mapping[str, int], committed: Mapping[str, int]
) -> dict[str, tuple[int, int]]:
    """Partitions whose committed offset is ahead of the offset the store holds.

    Both map ``topic:partition`` to an offset. Partitions the store holds nothing for (state
    from before offsets were kept) are left out.

    >>> behind_committed({"orders:0": 40, "orders:1": 90}, {"orders:0": 70, "orders:1": 90,
    ...                                                     "orders:2": 5})
    {'orders:0': (40, 70)}
    """
    behind = {}
    for name, offset in committed.items():
        held = stored.get(name)
        if held is not None and held < offset:
            behind[name] = (held, offset)
    return behind
