"""On a Redis Cluster the store epoch is kept in every hash slot: a node that lost its data
is noticed by the customers of its slots, and a rebuild gives the store a new epoch."""

from __future__ import annotations

import uuid

import pytest

from stream_app.exceptions import StoreLostError
from stream_app.store.client import cluster_client
from stream_app.store.keys import Keys, slot_of
from stream_app.store.redis_store import RedisStore
from tests.fakes import purchase_effect


async def test_a_slot_that_lost_its_epoch_stops_its_customers_until_a_rebuild(
    private_cluster_url: str,
) -> None:
    async with RedisStore(
        cluster_client(private_cluster_url), Keys(f"t{uuid.uuid4().hex[:8]}")
    ) as store:
        assert await store.create_epoch(5) == 5
        assert await store.create_epoch(6) == 5  # the store has one: kept
        lost, kept = (
            "c1",
            next(c for c in (f"c{n}" for n in range(2, 99)) if slot_of(c) != slot_of("c1")),
        )
        # As a node restarted without its data would leave it: that slot's epoch is gone.
        await store.client.delete(store.slot_keys.slot_epoch(slot_of(lost)))
        with pytest.raises(StoreLostError):
            await store.apply([purchase_effect("e1", 1.0e9, ("A", 1, 1.0), customer=lost)], epoch=5)
        applied = await store.apply(
            [purchase_effect("e2", 1.0e9, ("A", 1, 1.0), customer=kept)], epoch=5
        )
        assert applied.applied == [True]
        # `rfm bootstrap` writes a new epoch: every slot gets it, the lost one too.
        assert await store.create_epoch(7) == 7
        assert await store.epoch() == 7
        again = await store.apply(
            [purchase_effect("e1", 1.0e9, ("A", 1, 1.0), customer=lost)], epoch=7
        )
        assert again.applied == [True]
