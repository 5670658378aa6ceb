"""State written by earlier releases is read and continued by this code.

``data/redis_state_v0.json`` holds every Redis key that the store of release ``bc2ee58`` wrote
for a small synthetic shop: 70 orders and returns in batches of 10, the first five delivered
again, then a batch of 10 recorded but never published (a worker killed between the two: three
customers are left marked unannounced), then one decay step. The file also holds the events, so
the test can replay the same story into an in-memory store and compare.
"""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

from stream_app.core.state import CustomerState
from stream_app.service.ports import RawMessage
from stream_app.service.processor import BatchProcessor
from stream_app.settings import Clock
from stream_app.store.memory import MemoryStore
from stream_app.store.redis_store import RedisStore
from tests.fakes import MemoryPublisher
from tests.fakes import messages as shop_messages

DUMP = json.loads((Path(__file__).parent / "data" / "redis_state_v0.json").read_text())


class ShopModel:
    """The model the dump was written with: repeat buyers are loyal, or at risk after 30 days."""

    version = "v-freq"

    def predict_segments(self, rfm: npt.NDArray[np.float64]) -> npt.NDArray[np.str_]:
        repeat = np.where(rfm[:, 0] > 30, "at_risk", "loyal")
        return np.where(rfm[:, 1] >= 2, repeat, "new")


def messages(events: list[dict[str, Any]], first: int) -> list[RawMessage]:
    return shop_messages(*(json.dumps(event).encode() for event in events), first_offset=first)


def rounded(state: CustomerState) -> CustomerState:
    return replace(
        state,
        spent=round(state.spent, 6),
        returned_matched=round(state.returned_matched, 6),
        items={
            sku: replace(totals, returned_value=round(totals.returned_value, 6))
            for sku, totals in state.items.items()
        },
    )


async def restore(store: RedisStore) -> None:
    client = store.client
    for key, entry in DUMP["keys"].items():
        value = entry["value"]
        if entry["type"] == "hash":
            await client.hset(key, mapping=value)
        elif entry["type"] == "set":
            await client.sadd(key, *value)
        elif entry["type"] == "list":
            await client.rpush(key, *value)
        elif entry["type"] == "zset":
            await client.zadd(key, {member: score for member, score in value})
        else:
            await client.set(key, value)


async def test_a_dump_of_the_previous_release_is_continued_exactly(private_redis_url: str) -> None:
    before, after = DUMP["before"], DUMP["after"]
    expected_store, expected_publisher = MemoryStore(), MemoryPublisher()
    expected = BatchProcessor(expected_store, expected_publisher, ShopModel, Clock.EVENT)
    for first in range(0, 70, 10):
        await expected.handle(messages(before[first : first + 10], first))
    await expected.handle(messages(before[:5], 0))
    await expected.handle(messages(before[70:80], 70))
    await expected.decay()
    for first in range(0, len(after), 10):
        await expected.handle(messages(after[first : first + 10], 80 + first))

    async with RedisStore.from_url(private_redis_url) as store:
        await restore(store)
        pending = [
            state
            for batch in [s async for s in store.scan()]
            for state in batch
            if state.unannounced
        ]
        assert len(pending) == 3
        publisher = MemoryPublisher()
        processor = BatchProcessor(store, publisher, ShopModel, Clock.EVENT)
        # A store of that release has no epoch: it holds state, so it gets epoch 0 and its
        # sequence numbers carry on (a worker whose group committed offsets starts on it).
        assert await processor.open_epoch(consumed_before=True) == 0
        assert await store.epoch() == 0
        # A restarted worker publishes what was recorded but not published, then the broker
        # delivers the unacknowledged batch again, then what came after.
        assert await processor.announce_pending() == 3
        assert {change.customer_id for change in publisher.changes} == {
            s.customer_id for s in pending
        }
        await processor.handle(messages(before[70:80], 70))
        for first in range(0, len(after), 10):
            await processor.handle(messages(after[first : first + 10], 80 + first))

        customers = sorted({event["customer_id"] for event in before + after})
        for customer in customers:
            mine, theirs = await store.get(customer), await expected_store.get(customer)
            assert mine is not None and theirs is not None
            # Events applied before the release kept digests have none: the rest match.
            assert mine.digests.items() <= theirs.digests.items(), customer
            # Lua and Python add the same floats in the same order up to the last bit.
            assert rounded(replace(mine, digests={})) == rounded(replace(theirs, digests={}))
            assert await store.history(customer) == await expected_store.history(customer)
        assert await store.clock() == await expected_store.clock()
        assert await store.due_count() == await expected_store.due_count()
        # Consumers keeping the highest sequence per customer hear what the store holds.
        last: dict[str, Any] = {}
        for change in publisher.changes:
            if change.sequence >= last.get(change.customer_id, change).sequence:
                last[change.customer_id] = change
        for customer, change in last.items():
            state = await store.get(customer)
            assert state is not None
            assert (change.segment, change.sequence) == (state.segment, state.sequence)
