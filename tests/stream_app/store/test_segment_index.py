"""The indexes the Profile API reads: members per segment, flows and sizes per day.

Kept by the store in the step that records a segment change; run against both stores.
"""

from __future__ import annotations

import uuid
from dataclasses import replace
from datetime import UTC, datetime

import numpy as np
import numpy.typing as npt
import redis

from stream_app.service.ports import SegmentUpdate
from stream_app.service.processor import BatchProcessor
from stream_app.store.keys import Keys, slot_of
from stream_app.store.memory import MemoryStore
from stream_app.store.redis_store import RedisStore
from tests.fakes import FrequencyModel, MemoryPublisher, purchase_effect

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


def in_page_order(store: Store, ids: list[str]) -> list[str]:
    """``ids`` in the order the store pages them: by id; on a cluster by hash slot, then id."""
    if isinstance(store, RedisStore) and store.cluster:
        return sorted(ids, key=lambda customer: (slot_of(customer), customer))
    return sorted(ids)


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

    assert await all_members(store, "new") == in_page_order(store, ids[4:])
    loyal = in_page_order(store, ids[1:4])
    assert await all_members(store, "loyal") == loyal
    assert await store.segment_page("loyal", loyal[0], 10) == loyal[1:]
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


class Everyone:
    """A model that puts everyone in ``new``."""

    version = "v-new"

    def predict_segments(self, rfm: npt.NDArray[np.float64]) -> npt.NDArray[np.str_]:
        return np.full(len(rfm), "new")


async def test_the_rescore_after_a_retrain_moves_the_index_along(store: Store) -> None:
    ids = [f"c{number:02d}" for number in range(40)]
    # Even-numbered customers order twice: FrequencyModel puts them in `loyal`.
    await store.apply(
        [
            purchase_effect(f"{c}-{order}", day(1 + order), ("A", 1, 5.0), customer=c)
            for number, c in enumerate(ids)
            for order in range(2 if number % 2 == 0 else 1)
        ]
    )
    await store.advance_clock(day(5))
    await store.ensure_indexes()
    publisher = MemoryPublisher()
    await BatchProcessor(store, publisher, Everyone).rescore_all("order", batch_size=7)  # type: ignore[arg-type]
    assert await all_members(store, "new", page=9) == in_page_order(store, ids)
    await BatchProcessor(store, publisher, FrequencyModel).rescore_all("retrain", batch_size=7)  # type: ignore[arg-type]
    assert await all_members(store, "loyal", page=9) == in_page_order(store, ids[::2])
    assert await all_members(store, "new", page=9) == in_page_order(store, ids[1::2])
    assert await store.flows() == {
        "2011-03-05": {("", "new", "order"): 40, ("new", "loyal", "retrain"): 20}
    }


async def test_load_rfm_reads_what_rfm_needs(store: Store) -> None:
    await store.apply(
        [purchase_effect("e1", day(2), ("A", 3, 2.5), customer="c1", country="France")]
    )
    await store.record_each([update("c1", "new", None, 1, on=2)])
    light, missing = await store.load_rfm(["c1", "nobody"])
    (full,) = await store.load(["c1"])
    assert missing is None and light is not None and full is not None
    assert light.rfm(day(9)) == full.rfm(day(9)) == (7, 1, 7.5)
    assert (light.country, light.segment, light.has_rfm) == ("France", "new", True)
