"""The indexes the Profile API reads: members per segment, flows and sizes per day.

Kept by the store in the step that records a segment change; run against both stores.
"""

from __future__ import annotations

import uuid
from dataclasses import replace
from datetime import UTC, datetime

import redis

from stream_app.service.ports import SegmentUpdate
from stream_app.store.keys import Keys
from stream_app.store.memory import MemoryStore
from stream_app.store.redis_store import RedisStore
from tests.fakes import purchase_effect

Store = MemoryStore | RedisStore


def day(number: int) -> float:
    return datetime(2011, 3, number, 12, tzinfo=UTC).timestamp()


def update(
    customer: str, segment: str, previous: str | None, sequence: int, on: int, reason: str = "order"
) -> SegmentUpdate:
    return SegmentUpdate(
        customer, segment, previous, day(on), "v1", sequence, f'"{customer}-{sequence}"',
        reason=reason,
    )  # fmt: skip


async def customers(store: Store, ids: list[str]) -> None:
    await store.apply([purchase_effect(f"e{c}", day(1), ("A", 1, 1.0), customer=c) for c in ids])


async def all_members(store: Store, segment: str, page: int = 3) -> list[str]:
    found: list[str] = []
    while True:
        ids = await store.segment_page(segment, found[-1] if found else "", page)
        found.extend(ids)
        if len(ids) < page:
            return found


async def test_members_flows_and_sizes_follow_the_changes(store: Store) -> None:
    ids = [f"c{number:02d}" for number in range(10)]
    await customers(store, ids)
    await store.segment_counts()  # the count exists (as the workers' metrics build it)
    await store.segment_page("new", "", 1)  # and the member index
    await store.record_each([update(c, "new", None, 1, on=1) for c in ids])
    await store.record_each([update(c, "loyal", "new", 2, on=2) for c in ids[:4]])
    await store.record_each([update(ids[0], "lost", "loyal", 3, on=2, reason="recency")])

    assert await all_members(store, "new") == ids[4:]
    assert await all_members(store, "loyal") == ids[1:4]
    assert await store.segment_page("loyal", "c01", 10) == ["c02", "c03"]
    assert await all_members(store, "lost") == ["c00"]
    assert await store.segment_page("nobody", "", 10) == []

    assert await store.flows() == {
        "2011-03-01": {("", "new", "order"): 10},
        "2011-03-02": {("new", "loyal", "order"): 4, ("loyal", "lost", "recency"): 1},
    }
    assert await store.flows(since="2011-03-02", until="2011-03-02") == {
        "2011-03-02": {("new", "loyal", "order"): 4, ("loyal", "lost", "recency"): 1},
    }
    assert await store.flows(until="2011-03-01") == {"2011-03-01": {("", "new", "order"): 10}}
    assert await store.daily_sizes() == {
        "2011-03-01": {"new": 10},
        "2011-03-02": {"new": 6, "loyal": 3, "lost": 1},
    }


async def test_a_repeated_or_refused_change_counts_once(store: Store) -> None:
    await customers(store, ["c1"])
    first = update("c1", "new", None, 1, on=1)
    assert await store.record_each([first]) == [True]
    assert await store.record_each([first]) == [True]  # a resend: stored, not counted again
    assert await store.record_each([update("c1", "loyal", "lost", 2, on=1)]) == [False]
    assert await store.flows() == {"2011-03-01": {("", "new", "order"): 1}}
    assert await all_members(store, "new") == ["c1"]


async def test_an_older_store_gets_its_member_index_built_once(
    private_redis_url: str, client: redis.Redis
) -> None:
    prefix = f"t{uuid.uuid4().hex[:8]}"
    keys = Keys(prefix)
    async with RedisStore.from_url(private_redis_url, prefix=prefix) as store:
        ids = [f"c{number:02d}" for number in range(30)]
        await customers(store, ids)
        await store.record_each([update(c, "new", None, 1, on=1) for c in ids])
        # As the released main leaves it: segments in the states, no member index.
        assert not client.exists(keys.indexed, keys.members("new"))
        # Changes recorded while there is no index do not start a partial one.
        await store.record_each([update(c, "loyal", "new", 2, on=2) for c in ids[:10]])
        assert not client.exists(keys.indexed, keys.members("loyal"))

        assert await all_members(store, "loyal", page=4) == ids[:10]
        assert await all_members(store, "new", page=7) == ids[10:]
        # From then on the script keeps it.
        await store.record_each([update(c, "lost", "loyal", 3, on=3) for c in ids[:4]])
        assert await all_members(store, "loyal") == ids[4:10]
        assert client.zrange(keys.members("lost"), 0, -1) == ids[:4]


async def test_a_bulk_write_drops_the_index_and_it_is_built_again(
    private_redis_url: str, client: redis.Redis
) -> None:
    prefix = f"t{uuid.uuid4().hex[:8]}"
    keys = Keys(prefix)
    async with RedisStore.from_url(private_redis_url, prefix=prefix) as store:
        await customers(store, ["a", "b"])
        await store.segment_page("new", "", 10)
        await store.record_each([update(c, "new", None, 1, on=1) for c in ("a", "b")])
        state = await store.get("a")
        assert state is not None
        await store.put([replace(state, segment="loyal")])
        assert not client.exists(keys.indexed, keys.members("new"))
        assert await store.segment_page("new", "", 10) == ["b"]
        assert await store.segment_page("loyal", "", 10) == ["a"]
