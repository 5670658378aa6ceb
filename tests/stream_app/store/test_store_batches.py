"""The batch calls the processor makes, on both stores, and their cost in Redis round trips."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import replace
from datetime import UTC, datetime, timedelta

import pytest
from redis.asyncio.connection import Connection

from stream_app.service.ports import SegmentUpdate
from stream_app.store.memory import MemoryStore
from stream_app.store.redis_store import RedisStore
from tests.fakes import purchase_effect, return_effect

Store = MemoryStore | RedisStore


def at(day: int) -> float:
    return (datetime(2011, 1, 1, 12, tzinfo=UTC) + timedelta(days=day)).timestamp()


def update(customer: str, segment: str, sequence: int = 1) -> SegmentUpdate:
    return SegmentUpdate(customer, segment, None, at(9), "v1", sequence, f'{{"c": "{customer}"}}')


async def test_apply_reads_back_the_touched_customers_and_moves_the_clock(store: Store) -> None:
    result = await store.apply(
        [
            purchase_effect("1", at(3), ("A", 2, 1.5), customer="b"),
            purchase_effect("2", at(4), ("A", 1, 4.0), customer="a"),
            return_effect("C3", at(5), ("A", 1, 1.5), customer="b"),
        ],
        clock_time=at(5),
    )
    assert result.applied == [True, True, True]
    assert result.clock == at(5)
    assert await store.clock() == at(5)
    # In the order each customer first appears, and the same as a separate read.
    assert [state.customer_id for state in result.states] == ["b", "a"]
    assert result.states == [state for state in await store.load(["b", "a"]) if state]
    assert result.states[0].monetary == pytest.approx(1.5)


async def test_the_clock_never_moves_back_and_a_clock_alone_is_applied(store: Store) -> None:
    await store.apply([], clock_time=at(8))
    result = await store.apply([purchase_effect("1", at(3), ("A", 1, 1.0))], clock_time=at(3))
    assert result.clock == at(8)
    assert (await store.apply([])).clock is None


async def test_a_customer_spread_over_chunks_is_read_after_all_their_events(store: Store) -> None:
    if isinstance(store, RedisStore):
        store.chunk_size = 2
    effects = [
        purchase_effect(str(n), at(1 + n), ("A", 1, 1.0), customer="a" if n % 2 else f"x{n}")
        for n in range(7)
    ]
    result = await store.apply(effects)
    [a] = [state for state in result.states if state.customer_id == "a"]
    assert a.frequency == 3
    assert a.last_purchase == at(6)
    assert len(result.states) == 5


async def test_record_each_sets_and_forgets_due_times(store: Store) -> None:
    await store.apply(
        [purchase_effect(str(n), at(2), ("A", 1, 1.0), customer=c) for n, c in enumerate("abc")]
    )
    await store.schedule({"c": at(20)})
    stored = await store.record_each(
        [update("a", "new"), update("b", "new")], {"a": at(30), "b": None, "c": None}
    )
    assert stored == [True, True]
    assert await store.due_count() == 1
    assert await store.pop_due(at(31), 10) == ["a"]
    assert await store.record_each([], {"b": at(40)}) == []
    assert await store.due_count() == 2


async def test_mark_announced_clears_marks_and_adds_counters(store: Store) -> None:
    await store.apply([purchase_effect("1", at(2), ("A", 1, 1.0))])
    await store.record_each([update("c1", "new")])
    state = await store.get("c1")
    assert state is not None and state.unannounced
    await store.mark_announced(["c1"], {"events": 2, "batches": 1, "duplicates": 0})
    state = await store.get("c1")
    assert state is not None and not state.unannounced
    await store.mark_announced([], {"events": 3})
    assert await store.counters() == {"events": 5, "batches": 1}


@pytest.fixture
def round_trips(monkeypatch: pytest.MonkeyPatch) -> Iterator[list[int]]:
    """Counts what the Redis client sends: one packed send is one round trip."""
    sent = [0]
    original = Connection.send_packed_command

    async def counting(self: Connection, command: object, check_health: bool = True) -> None:
        sent[0] += 1
        await original(self, command, check_health)  # type: ignore[arg-type]

    monkeypatch.setattr(Connection, "send_packed_command", counting)
    yield sent


async def test_each_batch_call_is_one_round_trip(
    private_redis_url: str, round_trips: list[int]
) -> None:
    async with RedisStore.from_url(private_redis_url, prefix="trips") as store:
        store.chunk_size = 3  # several script calls in each round trip
        await store.ping()
        effects = [
            purchase_effect(str(n), at(2), ("A", 1, 1.0), customer=f"c{n % 5}") for n in range(10)
        ]
        updates = [update(f"c{n}", "new") for n in range(5)]
        ids = [f"c{n}" for n in range(5)]
        # Warm up: scripts loaded once (after a Redis restart they are loaded again).
        await store.apply(effects[:1], clock_time=at(2))
        await store.record_each([], {"c0": at(9)})
        await store.mark_announced(["c0"], {"x": 1})
        await store.load(["c0"])
        for call in (
            lambda: store.apply(effects, clock_time=at(3)),
            lambda: store.record_each(updates, {"c0": at(40), "c1": None}),
            lambda: store.mark_announced(ids, {"events": 10, "batches": 1}),
            lambda: store.load(ids),
        ):
            before = round_trips[0]
            await call()
            assert round_trips[0] - before == 1


async def test_scripts_unknown_to_redis_are_loaded_and_run_once(
    private_redis_url: str, round_trips: list[int]
) -> None:
    async with RedisStore.from_url(private_redis_url, prefix="flushed") as store:
        await store.apply([purchase_effect("1", at(2), ("A", 1, 1.0))])
        await store.client.script_flush()  # as after a Redis restart
        result = await store.apply(
            [
                purchase_effect("1", at(2), ("A", 1, 1.0)),
                purchase_effect("2", at(3), ("A", 2, 1.0)),
            ],
            clock_time=at(3),
        )
        assert result.applied == [False, True]
        state = await store.get("c1")
        assert state is not None
        assert replace(state, items={}, orders=frozenset()) == result.states[0]
        assert state.frequency == 2 and state.items["A"].bought == 3


async def test_an_update_sent_again_reads_as_stored(store: Store) -> None:
    # A resend after a lost reply must not look like a lost race: its change is published.
    await store.apply([purchase_effect("1", at(2), ("A", 1, 1.0))])
    first = update("c1", "new")
    assert await store.record_each([first]) == [True]
    assert await store.record_each([first]) == [True]
    assert await store.history("c1") == [first.history_entry]
    rival = SegmentUpdate("c1", "loyal", None, at(9), "v1", 1, '{"c": "other"}')
    assert await store.record_each([rival]) == [False]
