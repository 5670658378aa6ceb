"""A wiped store is noticed: the store epoch, waiting for a rebuild, sequences above it."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime

import pytest

from stream_app.exceptions import StoreLostError
from stream_app.service.ports import CustomerStore
from stream_app.service.processor import BatchProcessor, new_epoch
from stream_app.settings import Clock
from stream_app.store.memory import MemoryStore
from stream_app.store.redis_store import RedisStore
from tests.fakes import FrequencyModel, MemoryPublisher, messages, order_event, purchase_effect

WALL = datetime(2026, 1, 1, tzinfo=UTC).timestamp()


def processor(store: CustomerStore, wall: float = WALL) -> BatchProcessor:
    work = BatchProcessor(
        store, MemoryPublisher(), lambda: FrequencyModel(), Clock.EVENT, wall_clock=lambda: wall
    )
    work.lost_poll_s = 0.05
    return work


def order(event_id: str, customer: str, day: int) -> bytes:
    return order_event(event_id, customer, datetime(2011, 6, day, tzinfo=UTC))


async def wipe(store: CustomerStore) -> None:
    """Everything of the store gone, as after FLUSHALL or a Redis restarted without files."""
    if isinstance(store, RedisStore):
        names = [name async for name in store.client.scan_iter(match=f"{store.keys.prefix}:*")]
        if names:
            await store.client.delete(*names)
    else:
        assert isinstance(store, MemoryStore)
        store.__init__()  # type: ignore[misc]


async def test_a_new_store_gets_an_epoch_from_the_wall_clock(store: CustomerStore) -> None:
    work = processor(store)
    assert await work.open_epoch(consumed_before=False) == new_epoch(WALL)
    assert await store.epoch() == new_epoch(WALL)
    # A second worker, or a restart, works in the same one.
    assert await processor(store, WALL + 60).open_epoch(consumed_before=True) == new_epoch(WALL)


async def test_a_store_of_an_earlier_release_gets_epoch_zero(store: CustomerStore) -> None:
    await store.apply([purchase_effect("1", 1.0e9, ("10A", 1, 2.0))], clock_time=1.0e9)
    await store.add_counters({"events": 1})
    assert await processor(store).open_epoch(consumed_before=True) == 0


async def test_sequences_start_above_the_epoch(store: CustomerStore) -> None:
    work = processor(store)
    await work.open_epoch(consumed_before=False)
    await work.handle(messages(order("1", "c1", 1)))
    [change] = work.publisher.changes  # type: ignore[attr-defined]
    assert change.sequence == new_epoch(WALL) + 1


async def test_a_wiped_store_stops_orders_until_it_is_rebuilt(store: CustomerStore) -> None:
    work = processor(store)
    await work.open_epoch(consumed_before=False)
    await work.handle(messages(order("1", "c1", 1), order("2", "c1", 2)))
    old = work.publisher.changes[-1].sequence  # type: ignore[attr-defined]
    await wipe(store)

    waiting = asyncio.create_task(work.handle(messages(order("3", "c2", 3), first_offset=2)))
    await asyncio.sleep(0.3)
    assert not waiting.done()
    # Nothing was written on the wiped store meanwhile.
    assert await store.get("c2") is None and await store.get("c1") is None

    # The store is rebuilt (rfm bootstrap writes a new epoch): the batch goes on in it.
    rebuilt = new_epoch(WALL + 3600)
    await store.create_epoch(rebuilt)
    outcome = await asyncio.wait_for(waiting, timeout=5)
    assert outcome.applied == 1 and work.epoch == rebuilt
    newest = work.publisher.changes[-1]  # type: ignore[attr-defined]
    assert newest.customer_id == "c2" and newest.sequence == rebuilt + 1 > old


async def test_a_lost_store_at_start_is_waited_for(store: CustomerStore) -> None:
    work = processor(store)
    opening = asyncio.create_task(work.open_epoch(consumed_before=True))
    await asyncio.sleep(0.3)
    assert not opening.done()
    assert await store.epoch() is None
    await store.create_epoch(new_epoch(WALL))
    assert await asyncio.wait_for(opening, timeout=5) == new_epoch(WALL)


async def test_the_script_writes_nothing_in_another_epoch(private_redis_url: str) -> None:
    async with RedisStore.from_url(private_redis_url, prefix="epoch-script") as store:
        await store.create_epoch(7)
        with pytest.raises(StoreLostError, match="epoch is not 8"):
            await store.apply([purchase_effect("1", 1.0e9, ("10A", 1, 2.0))], epoch=8)
        assert await store.get("c1") is None
        result = await store.apply([purchase_effect("1", 1.0e9, ("10A", 1, 2.0))], epoch=7)
        assert result.applied == [True]


# ------------------------------------------------------------------ offsets kept with the state


async def test_offsets_are_stored_with_the_state(store: CustomerStore) -> None:
    work = processor(store)
    await work.handle(messages(order("1", "c1", 1), order("2", "c2", 2), partition=1))
    await work.handle(messages(order("3", "c1", 3), first_offset=7, partition=0))
    assert await store.offsets() == {"orders:1": 2, "orders:0": 8}


async def test_writes_the_store_lost_are_read_again(store: CustomerStore) -> None:
    sent = [order(str(n), f"c{n % 3}", 1 + n) for n in range(12)]
    batches = [messages(*sent[n : n + 4], first_offset=n, partition=2) for n in (0, 4, 8)]
    work = processor(store)
    await work.handle(batches[0])
    # Redis restarts without the writes of the second batch (its AOF lost its last second).
    snapshot = {c: await store.get(c) for c in ("c0", "c1", "c2")}
    await work.handle(batches[1])
    if isinstance(store, RedisStore):
        for state in snapshot.values():
            assert state is not None
            await store.put([state])
        await store.client.hset(store.keys.offsets, "orders:2", 4)
    else:
        assert isinstance(store, MemoryStore)
        await store.put([state for state in snapshot.values() if state is not None])
        store._offsets["orders:2"] = 4

    asked: list[tuple[str, int, int]] = []

    async def read_again(name: str, first: int, end: int) -> list:  # type: ignore[type-arg]
        asked.append((name, first, end))
        return [m for batch in batches for m in batch if first <= m.offset < end]

    work.read_again = read_again
    outcome = await work.handle(batches[2])
    assert asked == [("orders:2", 4, 8)]
    assert outcome.caught_up == 4

    alone = processor(await fresh_of(store))
    for batch in batches:
        await alone.handle(batch)
    for customer in ("c0", "c1", "c2"):
        mine, theirs = await store.get(customer), await alone.store.get(customer)
        assert mine is not None and theirs is not None
        assert (mine.orders, mine.frequency) == (theirs.orders, theirs.frequency)
    assert await store.offsets() == {"orders:2": 12}


async def fresh_of(store: CustomerStore) -> CustomerStore:
    if isinstance(store, RedisStore):
        return RedisStore(store.client, type(store.keys)(store.keys.prefix + "-alone"))
    return MemoryStore()
