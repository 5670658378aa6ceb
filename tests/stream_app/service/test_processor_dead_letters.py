"""The batch step cuts large refused messages and counts the publishes its publisher retried."""

from __future__ import annotations

import hashlib
from datetime import UTC, datetime

from stream_app.service.dead_letters import encoded_size
from stream_app.service.processor import BatchProcessor
from stream_app.settings import Clock
from stream_app.store.memory import MemoryStore
from tests.fakes import FrequencyModel, MemoryPublisher, messages, order_event


def make(dlq_max_payload: int) -> tuple[BatchProcessor, MemoryStore, MemoryPublisher]:
    store, publisher = MemoryStore(), MemoryPublisher()
    processor = BatchProcessor(
        store,
        publisher,
        model=FrequencyModel,
        clock=Clock.EVENT,
        retry_delay_s=0.001,
        dlq_max_payload=dlq_max_payload,
    )
    return processor, store, publisher


async def test_a_large_invalid_message_becomes_a_cut_dead_letter() -> None:
    huge = b'{"event_id": "' + b'\x00"' * 1_000_000
    good = order_event("1", "a", datetime(2011, 6, 1, tzinfo=UTC))
    processor, _, publisher = make(dlq_max_payload=4096)
    outcome = await processor.handle(messages(good, huge))
    assert (outcome.applied, outcome.dead_letters) == (1, 1)
    (letter,) = publisher.letters
    assert letter.truncated and encoded_size(letter.payload) <= 4096
    assert letter.payload_bytes == len(huge)
    assert letter.payload_sha256 == hashlib.sha256(huge).hexdigest()
    assert letter.reason.startswith("not JSON")
    assert (letter.partition, letter.offset) == (3, 1)


async def test_publish_retries_reach_the_counters_with_the_next_batch() -> None:
    processor, store, _ = make(dlq_max_payload=4096)
    processor.count_publish_retry()
    processor.count_publish_retry()
    await processor.handle(messages(order_event("1", "a", datetime(2011, 6, 1, tzinfo=UTC))))
    assert (await store.counters())["publish_retries"] == 2
    await processor.handle(messages(order_event("2", "a", datetime(2011, 6, 2, tzinfo=UTC))))
    assert (await store.counters())["publish_retries"] == 2
