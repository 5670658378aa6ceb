"""Customers per segment in a store written by an older release, which kept no count."""

from __future__ import annotations

import uuid

import redis

from stream_app.service.ports import SegmentUpdate
from stream_app.store.keys import Keys
from stream_app.store.redis_store import RedisStore
from tests.fakes import purchase_effect


def _update(customer: str, segment: str, previous: str | None, sequence: int) -> SegmentUpdate:
    return SegmentUpdate(customer, segment, previous, 0.0, "v1", sequence, f'"{sequence}"')


async def test_a_store_without_the_count_is_counted_once_then_kept(
    private_redis_url: str, client: redis.Redis
) -> None:
    prefix = f"t{uuid.uuid4().hex[:8]}"
    keys = Keys(prefix)
    async with RedisStore.from_url(private_redis_url, prefix=prefix) as store:
        customers = [f"c{number}" for number in range(30)]
        await store.apply(
            [purchase_effect(f"e{c}", 1.0e9, ("A", 1, 1.0), customer=c) for c in customers]
        )
        await store.record_each([_update(c, "new", None, 1) for c in customers])
        # As an older release leaves it: segments in the states, no count.
        client.delete(keys.segments)
        # Changes recorded while there is no count do not start a partial one.
        await store.record_each([_update(c, "loyal", "new", 2) for c in customers[:10]])
        assert not client.exists(keys.segments)

        assert await store.segment_counts() == {"new": 20, "loyal": 10}
        assert client.exists(keys.segments)
        # From then on the script keeps it.
        await store.record_each([_update(c, "lost", "loyal", 3) for c in customers[:4]])
        assert client.hgetall(keys.segments) == {"": "1", "new": "20", "loyal": "6", "lost": "4"}
        assert await store.segment_counts() == {"new": 20, "loyal": 6, "lost": 4}
