"""Read the dead-letter topic from its beginning to its current end: ``rfm dlq list/export``."""

from __future__ import annotations

import time
from dataclasses import dataclass, field

from aiokafka import AIOKafkaConsumer, TopicPartition
from aiokafka.errors import KafkaError
from pydantic import ValidationError

from stream_app.core.events import DeadLetter
from stream_app.exceptions import BrokerUnavailableError
from stream_app.settings import Settings

__all__ = ["DeadLetterTopic", "read_dead_letters"]


@dataclass
class DeadLetterTopic:
    """What the dead-letter topic held: its dead letters, and where records were unreadable."""

    letters: list[DeadLetter] = field(default_factory=list)
    #: ``topic/partition/offset`` of each record that is not a dead letter.
    unreadable: list[str] = field(default_factory=list)


async def read_dead_letters(settings: Settings, stall_s: float = 30.0) -> DeadLetterTopic:
    """Every dead letter on ``settings.dlq_topic``, partition by partition in offset order.

    Reads without a consumer group (nothing is committed, no worker is disturbed) up to the
    end offsets found when it starts: dead letters written meanwhile are left for next time.

    Raises
    ------
    BrokerUnavailableError
        The broker does not answer, or reading makes no progress for ``stall_s`` seconds.
    """
    topic = settings.dlq_topic
    consumer = AIOKafkaConsumer(
        bootstrap_servers=settings.kafka_bootstrap,
        group_id=None,
        enable_auto_commit=False,
        auto_offset_reset="earliest",
        # A dead letter holds at most RFM_DLQ_MAX_PAYLOAD of payload (plus the rest of it).
        max_partition_fetch_bytes=max(1024 * 1024, 2 * settings.dlq_max_payload),
    )
    found = DeadLetterTopic()
    try:
        await consumer.start()
        partitions = consumer.partitions_for_topic(topic)
        if not partitions:
            await consumer._client.force_metadata_update()
            partitions = consumer.partitions_for_topic(topic)
        if not partitions:
            return found  # no topic: nothing was ever refused
        assigned = [TopicPartition(topic, number) for number in sorted(partitions)]
        consumer.assign(assigned)
        ends = await consumer.end_offsets(assigned)
        await consumer.seek_to_beginning(*assigned)
        remaining = {tp for tp in assigned if await consumer.position(tp) < ends[tp]}
        by_partition: dict[TopicPartition, list[DeadLetter]] = {tp: [] for tp in assigned}
        progress = time.monotonic()
        while remaining:
            batches = await consumer.getmany(*remaining, timeout_ms=1000)
            for tp, records in batches.items():
                for record in records:
                    if record.offset >= ends[tp]:
                        break
                    progress = time.monotonic()
                    try:
                        by_partition[tp].append(DeadLetter.model_validate_json(record.value or b""))
                    except ValidationError:
                        found.unreadable.append(f"{topic}/{tp.partition}/{record.offset}")
            for tp in list(remaining):
                if await consumer.position(tp) >= ends[tp]:
                    remaining.discard(tp)
            if remaining and time.monotonic() - progress > stall_s:
                raise BrokerUnavailableError(
                    f"reading {topic} at {settings.kafka_bootstrap} made no progress for "
                    f"{stall_s:g} s"
                )
        for tp in assigned:
            found.letters.extend(by_partition[tp])
        return found
    except KafkaError as exc:
        raise BrokerUnavailableError(
            f"Kafka at {settings.kafka_bootstrap} does not answer: {exc}"
        ) from exc
    finally:
        await consumer.stop()
