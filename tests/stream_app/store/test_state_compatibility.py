"""State written by earlier releases is read and continued by this code.

``data/redis_state_v0.json`` holds every Redis key that the store of release ``bc2ee58`` wrote
for a small synthetic shop: 70 orders and returns in batches of 10, the first five delivered
again, then a batch of 10 recorded but never published (a worker killed between the two: three
customers are left marked unannounced), then one decay step. The file also holds the events, so
the test can replay the same story into an in-memory store and compare.

``data/redis_state_v1.json`` holds the same story (every batch published) as release
``3057823`` wrote it: applied event ids in the ``orders`` set and their digests in the
``digests`` hash, before the set was dropped.
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

DATA = Path(__file__).parent / "data"
DUMP = json.loads((DATA / "redis_state_v0.json").read_text())
DUMP_V1 = json.loads((DATA / "redis_state_v1.json").read_text())


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


async def restore(store: RedisStore, dump: dict[str, Any] = DUMP) -> None:
    client = store.client
    for key, entry in dump["keys"].items():
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


async def test_a_store_with_the_orders_set_is_continued_exactly(private_redis_url: str) -> None:
    before, after = DUMP_V1["before"], DUMP_V1["after"]
    epoch = int(DUMP_V1["keys"]["rfm:epoch"]["value"])
    conflicting = json.loads(json.dumps(before[0]))
    conflicting["lines"][0]["quantity"] += 1
    redelivered = [*before[:10], conflicting]

    async def continue_story(processor: BatchProcessor) -> None:
        await processor.handle(messages(redelivered, 0))
        for first in range(0, len(after), 10):
            await processor.handle(messages(after[first : first + 10], 80 + first))

    expected_store = MemoryStore()
    expected = BatchProcessor(expected_store, MemoryPublisher(), ShopModel, Clock.EVENT)
    await expected_store.create_epoch(epoch)
    await expected.open_epoch(consumed_before=True)
    for first in range(0, 70, 10):
        await expected.handle(messages(before[first : first + 10], first))
    await expected.handle(messages(before[:5], 0))
    await expected.handle(messages(before[70:80], 70))
    await expected.decay()
    await continue_story(expected)

    async with RedisStore.from_url(private_redis_url, prefix="rfm") as store:
        left = [name async for name in store.client.scan_iter(match="rfm:*")]
        if left:  # another test's dump under the same prefix
            await store.client.delete(*left)
        await restore(store, DUMP_V1)
        publisher = MemoryPublisher()
        processor = BatchProcessor(store, publisher, ShopModel, Clock.EVENT)
        assert await processor.open_epoch(consumed_before=True) == epoch
        await continue_story(processor)
        # The redelivered events are duplicates; the one with other content is a conflict.
        [letter] = publisher.letters
        assert letter.payload == json.dumps(conflicting) and "conflict" in letter.reason

        customers = sorted({event["customer_id"] for event in before + after})
        for customer in customers:
            mine, theirs = await store.get(customer), await expected_store.get(customer)
            assert mine is not None and theirs is not None
            assert mine.orders == theirs.orders and mine.digests == theirs.digests, customer
            assert rounded(mine) == rounded(theirs), customer
            assert await store.history(customer) == await expected_store.history(customer)
            # The set is read, never written: what a customer had in it stays as it was.
            name = store.keys.orders(customer)
            old = DUMP_V1["keys"].get(name, {"value": []})["value"]
            assert sorted(await store.client.smembers(name)) == old, customer
        assert await store.clock() == await expected_store.clock()
        assert await store.due_count() == await expected_store.due_count()
        # A bulk write of those states leaves no set behind, and reads back the same.
        whole = [state for state in [await store.get(c) for c in customers] if state]
        await store.put(whole)
        for state in whole:
            assert not await store.client.exists(store.keys.orders(state.customer_id))
            assert await store.get(state.customer_id) == state
