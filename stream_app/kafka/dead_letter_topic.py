"""Read the dead-letter topic from its beginning to its current end: ``rfm dlq list/export``."""

from __future__ import annotations

from dataclasses import dataclass, field

from pydantic import ValidationError

from stream_app.core.events import DeadLetter
from stream_app.kafka.admin import read_partitions
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
    read = await read_partitions(
        settings,
        topic,
        stall_s=stall_s,
        # A dead letter holds at most RFM_DLQ_MAX_PAYLOAD of payload (plus the rest of it).
        max_partition_fetch_bytes=max(1024 * 1024, 2 * settings.dlq_max_payload),
    )
    found = DeadLetterTopic()
    for partition, records in read.items():
        for record in records:
            try:
                found.letters.append(DeadLetter.model_validate_json(record.value or b""))
            except ValidationError:
                found.unreadable.append(f"{topic}/{partition}/{record.offset}")
    return found
